"""The input side of a run: the source read under its contract, row accounting, the bad-row
ceiling and the quarantine. Every source row a run reads is counted once: used or quarantined."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from partner_hunt import hunt, io, privacy, schema
from partner_hunt.config import Config
from partner_hunt.locations import Locations
from partner_hunt.runlog import RunReport


class BadInputError(RuntimeError):
    """Too much of the input is malformed to trust the result; nothing was written."""


def requirements(config: Config) -> schema.Requirements:
    """The optional source columns this config needs."""
    h = config.hunt
    return schema.Requirements(
        sender=h.mode == "corrected",
        message_id=h.effective_count_messages or h.effective_dedupe_edits,
        keep_sender=config.evidence.enabled,
    )


def read_source(spark: SparkSession, config: Config, locations: Locations) -> tuple[DataFrame, int | None]:
    """Read the source's needed columns after checking the contract; also its Delta version."""
    # Pin the version we report, so the run log's version is exactly what was read; a missing
    # table is named by read_table.
    version = io.table_version(spark, locations.source) if io.table_exists(spark, locations.source) else None
    source_df = io.read_table(spark, locations.source, version=version)
    req = requirements(config)
    schema.check_contract(source_df.schema, str(locations.source), req)
    return source_df.select(*schema.needed_columns(source_df.schema, req)), version


def filter_source_window(source_df: DataFrame, start: datetime | None, end: datetime | None) -> DataFrame:
    """Keep the raw rows of a window where Timestamp is a real timestamp, so Delta can skip files.

    Rows with a null Timestamp are kept: they belong to no window and must be quarantined, not lost.
    """
    if isinstance(source_df.schema["Timestamp"].dataType, T.TimestampType) and (start or end):
        # One predicate, so the source is scanned once; Parquet and Delta skipping handle the OR.
        ts = F.col("Timestamp")
        return source_df.filter(hunt.in_window(ts, start, end) | ts.isNull())
    return source_df


def filter_canonical_window(canonical_df: DataFrame, start: datetime | None, end: datetime | None) -> DataFrame:
    """Keep canonical rows in `[start, end)` and every row whose time could not be read."""
    ts = F.col("Timestamp")
    return canonical_df.filter(hunt.in_window(ts, start, end) | ts.isNull())


@dataclass
class Prepared:
    """A run's canonical events (quarantined rows included, flagged) and their quarantined rows."""

    canonical_df: DataFrame
    # Only the columns the hunt reads (`schema.hunt_columns`), so the scan prunes the rest.
    hunt_df: DataFrame
    _bad_df: DataFrame | None = None

    @property
    def bad_df(self) -> DataFrame:
        """The quarantined rows, cached: they are counted per reason, then written."""
        if self._bad_df is None:
            self._bad_df = schema.filter_bad_rows(self.canonical_df).cache()
        return self._bad_df

    def release(self) -> None:
        """Drop the cached quarantined rows."""
        if self._bad_df is not None:
            self._bad_df.unpersist()


def prepare(source_df: DataFrame, config: Config, window_filter: Callable[[DataFrame], DataFrame]) -> Prepared:
    """Canonicalise the source rows that `window_filter` keeps."""
    req = requirements(config)
    canonical_df = window_filter(source_df.transform(schema.to_canonical, req))
    return Prepared(canonical_df, canonical_df.select(*schema.hunt_columns(req)))


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
    report: RunReport, prepared: Prepared, config: Config, counts_df: DataFrame, committed: Sequence[date] = ()
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
    enforce_bad_fraction(batch, config.quality.max_bad_fraction, list(committed))
    return quarantined


def write_quarantine(bad_df: DataFrame, report: RunReport, record: str = "redacted") -> None:
    """Append this run's quarantined rows, with their reason and the original record.

    `record` is `quality.quarantine_record`: the record as read (`full`), with e-mail local parts
    hashed and display names dropped (`redacted`), or not kept (`none`).
    """
    io.append(
        bad_df.select(
            F.lit(report.run_id).alias("RunId"),
            F.lit(report.started_at).cast("timestamp").alias("QuarantinedAt"),
            F.lit(str(report.locations.source)).alias("Source"),
            F.col("QuarantineReason").alias("Reason"),
            "TenantId",
            "Timestamp",
            "TeamsMessageId",
            "ReportId",
            privacy.source_record(F.col("SourceRecord"), record).alias("SourceRecord"),
        ),
        report.locations.quarantine,
    )
