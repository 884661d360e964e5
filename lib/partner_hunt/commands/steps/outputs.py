"""A run's analyst outputs: the evidence table and the alerts (Delta, and OCSF JSON Lines).

Orchestration below the commands: it decides what to read and write for one window and calls
the pure transforms of `evidence.py` and `alerts.py`; every table read and write goes through
`io.py`. Both tables are keyed on the window, and every run of a window leaves that window's
evidence, alerts and alert JSON Lines consistent with its new results: evidence rows replaced as a
whole, alerts the results no longer raise withdrawn (not deleted), the JSON Lines rewritten.
"""

from __future__ import annotations

from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import Window as SparkWindow
from pyspark.sql import functions as F

from partner_hunt.config import Config
from partner_hunt.core import alerts, caching, evidence, hunt
from partner_hunt.core.tables import ALERT_COLUMNS, window_key
from partner_hunt.store import io, jsonl, merge
from partner_hunt.store.predicates import Retirement, equality_predicate
from partner_hunt.store.runlog import AnalystOutputs, RunReport

Window = tuple[datetime | None, datetime | None]


def jsonl_window_folder(window: Window) -> str:
    """The partition value naming a window in the JSON Lines folder, e.g. 20260301T000000Z_20260308T000000Z."""

    def bound(value: datetime | None) -> str:
        return value.strftime("%Y%m%dT%H%M%SZ") if value else "open"

    return f"{bound(window[0])}_{bound(window[1])}"


def write_results(results_df: DataFrame, report: RunReport, predicate: str, top: int) -> list[Row]:
    """Replace the rows `predicate` selects in the results table; return the top rows to show."""
    io.replace_where(results_df, report.locations.output, predicate)
    # Bounded: at most `top` rows of an aggregate, for the terminal table.
    return results_df.transform(hunt.sort_results).limit(top).collect() if top else []


def write_outputs(
    spark: SparkSession,
    config: Config,
    report: RunReport,
    window: Window,
    day_counts_df: DataFrame | None,
    results_df: DataFrame,
    done_days: Collection[date] | None = None,
    risk_df: DataFrame | None = None,
) -> AnalystOutputs:
    """Write the evidence and the alerts of one window just written to the results table.

    `day_counts_df` is the window's `hunt.count_domains(by_day=True, evidence=True)` rows, from the
    run's own pass over the source (None skips the evidence, e.g. for results rolled up from daily
    partials); `results_df` is the window's results rows, with the results table's columns.
    `done_days`, when the command already read the partials' markers, are the days they hold for
    this variant (this run's included): the spike rule's baseline coverage then needs no job.
    `risk_df` holds the partners' risk scores, for the `risk` rule (None: the rule is off).
    """
    outputs = AnalystOutputs()
    evidence_notes: list[str] = []
    # The evidence and the alerts are separate tables read from the same rows: their commits
    # (mostly waiting on Delta's log and small jobs) overlap. Each step's notes keep their order.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="partner-hunt-evidence") as pool:
        evidence_f = None
        if config.evidence.enabled and day_counts_df is not None:
            evidence_f = pool.submit(_write_evidence, config, report, window, day_counts_df, results_df)
            outputs.evidence = str(report.locations.evidence)
            outputs.evidence_rows = report.result_rows
        elif config.evidence.enabled:
            evidence_notes.append("evidence not written: it needs the raw events of the window (use `run`)")
            evidence_f = pool.submit(_prune_evidence, spark, report, window, results_df, evidence_notes)
        alert_notes: list[str] = []
        if config.alerts.enabled:
            _write_alerts(spark, config, report, window, results_df, outputs, alert_notes, done_days, risk_df)
        if evidence_f is not None:
            evidence_f.result()
    outputs.notes.extend(evidence_notes + alert_notes)
    return outputs


def evidence_of(config: Config, day_counts_df: DataFrame, results_df: DataFrame) -> DataFrame:
    """The evidence rows of one window, from the run's per-day counts (see `write_outputs`)."""
    h = config.hunt
    return evidence.evidence_from_counts(
        day_counts_df,
        results_df,
        normalize=h.effective_normalize_domains,
        count_messages=h.effective_count_messages,
        sample_size=config.evidence.sample_size,
        include_senders=config.evidence.include_sender_addresses,
    )


def _write_evidence(
    config: Config, report: RunReport, window: Window, day_counts_df: DataFrame, results_df: DataFrame
) -> None:
    evidence_df = evidence_of(config, day_counts_df, results_df)
    key = window_key(report.mode, window)
    io.replace_where(evidence_df, report.locations.evidence, equality_predicate(key))


def _prune_evidence(spark: SparkSession, report: RunReport, window: Window, results_df: DataFrame, notes: list[str]) -> None:
    """Drop the window's evidence rows (from an earlier `run`) whose domain its new results lack."""
    ref = report.locations.evidence
    table_df = io.read_table_if_exists(spark, ref)
    if table_df is None:
        return
    key = window_key(report.mode, window)
    stored_df = io.filter_window(table_df, key)
    keys_df = results_df.select(F.col("TenantId").alias("_tenant"), F.col("SenderFromDomain").alias("_domain"))
    on = F.col("TenantId").eqNullSafe(F.col("_tenant")) & F.col("SenderFromDomain").eqNullSafe(F.col("_domain"))
    # Bounded: evidence rows of one window, at most its results rows.
    stale = stored_df.join(F.broadcast(keys_df), on=on, how="left_anti").count()
    if stale:
        io.replace_where(
            stored_df.join(F.broadcast(keys_df), on=on, how="left_semi"), ref, equality_predicate(key)
        )
        notes.append(f"{stale} evidence row(s) of this window removed: their domain left the results")


def _baseline(
    spark: SparkSession,
    config: Config,
    report: RunReport,
    window: Window,
    notes: list[str],
    done_days: Collection[date] | None = None,
) -> tuple[DataFrame | None, float | None]:
    """The spike rule's per-domain baseline and the window's length in days, or (None, None) and a note."""
    settings = config.alerts
    if settings.spike_factor is None:
        return None, None
    start, end = window
    if start is None or end is None:
        notes.append("spike rule skipped: it needs a window with both --start and --end")
        return None, None
    partials_df = io.read_table_if_exists(spark, report.locations.partials)
    if partials_df is None:
        notes.append(f"spike rule skipped: no daily partials at {report.locations.partials} (run `backfill` first)")
        return None, None
    # Every command checked the partials' source before its first write (`check_partials`, or
    # the markers in backfill and refresh), so it is not read again here.
    base_end = start.date()
    base_start = base_end - timedelta(days=settings.spike_baseline_days)
    if done_days is not None:
        days = sum(1 for d in set(done_days) if base_start <= d < base_end)
    else:
        # One row: the number of baseline days that were computed.
        days = int(alerts.covered_days(partials_df, report.variant, base_start, base_end).collect()[0]["Days"])
    if days < settings.spike_min_baseline_days:
        notes.append(
            f"spike rule skipped: partials cover {days} of the {settings.spike_baseline_days} days before "
            f"the window (alerts.spike_min_baseline_days={settings.spike_min_baseline_days})"
        )
        return None, None
    window_days = (end - start).total_seconds() / 86_400
    return alerts.baseline_rates(partials_df, report.variant, base_start, base_end, days), window_days


def _write_alerts(
    spark: SparkSession,
    config: Config,
    report: RunReport,
    window: Window,
    results_df: DataFrame,
    outputs: AnalystOutputs,
    notes: list[str],
    done_days: Collection[date] | None = None,
    risk_df: DataFrame | None = None,
) -> None:
    settings = config.alerts
    baseline_df, window_days = _baseline(spark, config, report, window, notes, done_days)
    alerts_df = alerts.build_alerts(
        results_df,
        raised_at=report.started_at,
        run_id=report.run_id,
        baseline_df=baseline_df,
        window_days=window_days,
        min_inbound_threats=settings.min_inbound_threats,
        min_ratio=settings.min_ratio,
        ratio_min_inbound=settings.ratio_min_inbound,
        spike_factor=settings.spike_factor,
        spike_min_inbound=settings.spike_min_inbound,
        high_inbound_threats=settings.high_inbound_threats,
        risk_df=risk_df,
        risk_min_score=config.risk.alert_min_score,
    )
    ref = report.locations.alerts
    key = window_key(report.mode, window)
    # One MERGE: new alerts inserted, re-raised ones updated (New again, FirstRaisedAt kept), and
    # the window's alerts these results no longer raise withdrawn, so no reader sees a mix.
    retire = Retirement(
        scope=key,
        values=alerts.withdrawal(report.run_id, report.started_at),
        unless={"Status": alerts.STATUS_RESOLVED},
    )
    stored_df = io.read_table_if_exists(spark, ref)
    # A table written by an earlier version (without the lifecycle's columns) is widened by the MERGE.
    comparable = stored_df if stored_df is not None and set(ALERT_COLUMNS) <= set(stored_df.columns) else None
    # Bounded: the window's alerts, a row or none per partner domain.
    if comparable is not None and not alerts.changed(alerts_df, io.filter_window(comparable, key)).limit(1).collect():
        # Nothing to raise again, change or withdraw: the stored alerts (their status included,
        # which an analyst may have moved on) stand, and no commit is made.
        notes.append("alerts unchanged: the window's stored alerts already hold what this run found")
    else:
        merge.upsert(alerts_df, ref, "AlertId", alerts.PRESERVED_ON_UPDATE, retire)
    outputs.alerts = str(ref)
    # Read back so that re-raised alerts carry their stored first-raised time.
    window_df = caching.cached(io.read_window_rows(spark, ref, key).transform(alerts.with_status))
    try:
        raised = (F.col("RunId") == F.lit(report.run_id)) & (F.col("Status") == F.lit(alerts.STATUS_NEW))
        withdrawn = F.col("WithdrawnByRunId") == F.lit(report.run_id)
        outputs.alerts_raised, outputs.top_alerts, outputs.alerts_withdrawn, outputs.withdrawn_alerts = _counts_and_tops(
            window_df, raised, withdrawn, config.hunt.top
        )
        _write_alert_jsonl(config, report, window, window_df, outputs, notes)
    finally:
        caching.release(window_df)


def _counts_and_tops(
    window_df: DataFrame, raised: Column, withdrawn: Column, top: int
) -> tuple[int, list[Row], int, list[Row]]:
    """How many of the window's alerts this run raised and withdrew, and the `top` of each in
    `alerts.alert_order`, from one job (a count and two sorted limits would be three)."""
    order = alerts.alert_order()
    group = SparkWindow.partitionBy("_Raised")
    ranked_df = (
        window_df.filter(raised | withdrawn)
        .withColumn("_Raised", F.coalesce(raised, F.lit(False)))
        .withColumn("_Count", F.count(F.lit(1)).over(group.rowsBetween(SparkWindow.unboundedPreceding, SparkWindow.unboundedFollowing)))
        .withColumn("_Rank", F.row_number().over(group.orderBy(*order).rowsBetween(SparkWindow.unboundedPreceding, SparkWindow.currentRow)))
        .filter(F.col("_Rank") <= F.lit(max(top, 1)))
    )
    columns = window_df.columns
    # Bounded: at most `top` (or one) rows of each of the two groups.
    rows = sorted(ranked_df.collect(), key=lambda r: r["_Rank"])
    counts = {r["_Raised"]: int(r["_Count"]) for r in rows}

    def shown(is_raised: bool) -> list[Row]:
        return [Row(**{c: r[c] for c in columns}) for r in rows if r["_Raised"] == is_raised][:top]

    return counts.get(True, 0), shown(True), counts.get(False, 0), shown(False)


def _write_alert_jsonl(
    config: Config, report: RunReport, window: Window, window_df: DataFrame, outputs: AnalystOutputs, notes: list[str]
) -> None:
    """Rewrite the window's JSON Lines partition: every alert of the window, active or withdrawn.

    Written on every run, even when nothing is raised, so that a SIEM tailing the folder sees a
    withdrawal as a Resolved finding; a window with no alert at all gets an empty partition.
    """
    folder = report.locations.alerts_jsonl
    if folder is None:
        notes.append("alert JSON Lines not written: set alerts.jsonl for a catalog-table output")
        return
    partition = f"{folder}/mode={report.mode}/window={jsonl_window_folder(window)}"
    # The partition's own folder, overwritten whole: dynamic partition overwrite leaves a partition
    # that no row is written to untouched, and a window whose last alert is gone must not keep it.
    jsonl.write_jsonl(window_df.transform(alerts.to_ocsf), partition)
    outputs.alerts_jsonl = partition
