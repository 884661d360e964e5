"""Every source row a command reads is counted once, used or quarantined: the accounting on the
run's report, and the bad-row ceiling that stops a command before its first write."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from partner_hunt.core import hunt
from partner_hunt.core.quality import Prepared
from partner_hunt.store.runlog import RunReport


class BadInputError(RuntimeError):
    """Too much of the input is malformed to trust the result; nothing was written."""


def accounting_totals(counts_df: DataFrame) -> dict[str, int]:
    """The accounting columns of `hunt.count_domains` summed (bounded: one row back)."""
    row = counts_df.agg(*[F.sum(name).alias(name) for name in hunt.ACCOUNTING]).collect()[0]
    return {name: int(row[name] or 0) for name in hunt.ACCOUNTING}


def count_reasons(bad_df: DataFrame) -> dict[str, int]:
    """Quarantined rows per reason code (bounded: one row per code)."""
    rows = bad_df.groupBy("QuarantineReason").count().collect()
    return {r["QuarantineReason"]: int(r["count"]) for r in rows}


def enforce_bad_fraction(report: RunReport, max_bad_fraction: float, committed: Sequence[date] = ()) -> None:
    """Fail before this batch's writes when its quarantined share exceeds the ceiling; the message
    names the days earlier batches of the same command already committed."""
    if report.rows_read and report.rows_quarantined / report.rows_read > max_bad_fraction:
        share = report.rows_quarantined / report.rows_read
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(report.quarantine_by_reason.items()))
        if committed:
            days = ", ".join(d.isoformat() for d in sorted(committed))
            outcome = (
                f"the partials of {days} were already committed by this run and are kept (a rerun resumes "
                "after them); the results and the other days' partials were not changed"
            )
        else:
            outcome = "results and partials were not changed"
        raise BadInputError(
            f"{report.rows_quarantined} of {report.rows_read} rows ({share:.2%}) are malformed, above "
            f"quality.max_bad_fraction={max_bad_fraction:.2%} ({reasons}); {outcome}"
        )


def account(
    report: RunReport, prepared: Prepared, max_bad_fraction: float, counts_df: DataFrame, committed: Sequence[date] = ()
) -> int:
    """Add the row accounting of `counts_df` to the report, apply the bad-row ceiling to these
    rows, and return how many of them were quarantined.

    The counts go on the report first, so a run that the ceiling stops logs what it read.
    """
    totals = accounting_totals(counts_df)
    rows_read, quarantined = totals[hunt.ROWS_READ], totals[hunt.ROWS_QUARANTINED]
    reasons = count_reasons(prepared.bad_df) if quarantined else {}
    report.rows_read += rows_read
    report.rows_quarantined += quarantined
    for code, count in reasons.items():
        report.quarantine_by_reason[code] = report.quarantine_by_reason.get(code, 0) + count
    report.recipient_rows += totals[hunt.RECIPIENT_ROWS]
    batch = dataclasses.replace(report, rows_read=rows_read, rows_quarantined=quarantined, quarantine_by_reason=reasons)
    enforce_bad_fraction(batch, max_bad_fraction, list(committed))
    return quarantined
