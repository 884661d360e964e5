"""Analyst outputs of a run: the evidence table, alerts (Delta + OCSF JSON Lines), and the mode diff.

This is orchestration, like `pipeline.py`: it decides what to read and write and calls the pure
transforms of `evidence.py`, `alerts.py` and `diff.py`; every table read and write goes through
`io.py`. `write_outputs` is called once by a run, after its results are written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from partner_hunt import alerts, diff, evidence, io
from partner_hunt.config import Config, with_overrides


@dataclass
class AnalystOutputs:
    """What `write_outputs` wrote, for the terminal summary and the notebook."""

    evidence: str | None = None
    evidence_rows: int = 0
    alerts: str | None = None
    alerts_jsonl: str | None = None
    alerts_raised: int = 0
    top_alerts: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def window_key(report: Any) -> dict[str, Any]:
    """The columns that identify a run's window in the results, evidence and alerts tables."""
    return {"WindowStart": report.window_start, "WindowEnd": report.window_end, "Mode": report.mode}


def jsonl_location(config: Config, output: io.TableRef) -> str | None:
    """`alerts.jsonl`, else a folder beside a path output; None for a catalog output with no path set."""
    if config.alerts.jsonl:
        # A folder for Spark's writer (a Volume, dbfs:/, abfss://): never checked on this disk.
        return io.folder_location(config.alerts.jsonl)
    return output.sibling("alerts_jsonl").location if output.is_path else None


def jsonl_window_folder(report: Any) -> str:
    """The partition value naming a window in the JSON Lines folder, e.g. 20260301T000000Z_20260308T000000Z."""

    def bound(value: datetime | None) -> str:
        return value.strftime("%Y%m%dT%H%M%SZ") if value else "open"

    return f"{bound(report.window_start)}_{bound(report.window_end)}"


def write_outputs(
    spark: SparkSession, config: Config, report: Any, events_df: DataFrame | None, results_df: DataFrame
) -> AnalystOutputs:
    """Write the evidence and the alerts of the window just written to the results table.

    `events_df` is the window's canonical, quarantine-free events (None skips the evidence, e.g.
    for results rolled up from daily partials); `results_df` is the window's results rows, with
    the results table's columns. Both tables are keyed on the window, so reruns replace or update,
    never duplicate.
    """
    outputs = AnalystOutputs()
    locations = report.locations
    if config.evidence.enabled and events_df is not None:
        _write_evidence(config, report, events_df, results_df)
        outputs.evidence = str(locations.evidence)
        outputs.evidence_rows = report.result_rows
    elif config.evidence.enabled:
        outputs.notes.append("evidence not written: it needs the raw events of the window (use `run`)")
    if config.alerts.enabled:
        _write_alerts(spark, config, report, results_df, outputs)
    return outputs


def _write_evidence(config: Config, report: Any, events_df: DataFrame, results_df: DataFrame) -> None:
    h = config.hunt
    evidence_df = evidence.evidence_from_events(
        events_df,
        results_df,
        mode=h.mode,
        normalize=h.effective_normalize_domains,
        dedupe_edits=h.effective_dedupe_edits,
        count_messages=h.effective_count_messages,
        sample_size=config.evidence.sample_size,
        include_senders=config.evidence.include_sender_addresses,
    )
    io.replace_where(evidence_df, report.locations.evidence, io.equality_predicate(window_key(report)))


def _baseline(spark: SparkSession, config: Config, report: Any, notes: list[str]) -> tuple[DataFrame | None, float | None]:
    """The spike rule's per-domain baseline and the window's length in days, or (None, None) and a note."""
    settings = config.alerts
    if settings.spike_factor is None:
        return None, None
    start, end = report.window_start, report.window_end
    if start is None or end is None:
        notes.append("spike rule skipped: it needs a window with both --start and --end")
        return None, None
    if not io.table_exists(spark, report.locations.partials):
        notes.append(f"spike rule skipped: no daily partials at {report.locations.partials} (run `backfill` first)")
        return None, None
    partials_df = io.read_table(spark, report.locations.partials)
    base_end = start.date()
    base_start = base_end - timedelta(days=settings.spike_baseline_days)
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
    spark: SparkSession, config: Config, report: Any, results_df: DataFrame, outputs: AnalystOutputs
) -> None:
    settings = config.alerts
    baseline_df, window_days = _baseline(spark, config, report, outputs.notes)
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
    )
    ref = report.locations.alerts
    io.upsert(alerts_df, ref, "AlertId", alerts.PRESERVED_ON_UPDATE)
    outputs.alerts = str(ref)
    # Read back so that re-raised alerts carry their stored first-raised time.
    raised_df = io.read_window_rows(spark, ref, window_key(report)).filter(F.col("RunId") == F.lit(report.run_id))
    # Bounded: one row per alert of one window, at most the window's results rows.
    outputs.alerts_raised = raised_df.count()
    top = config.hunt.top
    outputs.top_alerts = raised_df.transform(alerts.sort_alerts).limit(top).collect() if top else []
    folder = jsonl_location(config, report.locations.output)
    if folder is None:
        outputs.notes.append("alert JSON Lines not written: set alerts.jsonl for a catalog-table output")
    elif outputs.alerts_raised:
        ocsf_df = raised_df.transform(alerts.to_ocsf).withColumns(
            {"mode": F.lit(report.mode), "window": F.lit(jsonl_window_folder(report))}
        )
        io.write_jsonl(ocsf_df, folder, partition_by=["mode", "window"])
        outputs.alerts_jsonl = f"{folder}/mode={report.mode}/window={jsonl_window_folder(report)}"


# ---------------------------------------------------------------- the mode diff


@dataclass
class ModeDiff:
    """Both runs of `partner-hunt diff` and their comparison (bounded rows, for the terminal)."""

    reports: dict[str, Any]
    status_counts: dict[str, int]
    rows: list[Row]
    switches: dict[str, str]
    statuses: tuple[str, ...] = diff.STATUS_ORDER
    explanation: str = diff.EXPLANATION


def describe_switches(config: Config) -> str:
    """The effective hunt switches of a config, in words."""
    h = config.hunt
    inbound = "recipients' domains (published query)" if h.mode == "kql" else "sender's domain"
    return (
        f"inbound domain = {inbound}; normalise domains = {h.effective_normalize_domains}; "
        f"count = {'distinct messages' if h.effective_count_messages else 'message x recipient rows'}; "
        f"drop re-emitted edits = {h.effective_dedupe_edits}"
    )


def run_diff(spark: SparkSession, config: Config, command: str = "diff") -> ModeDiff:
    """Run the hunt in `kql` and `corrected` mode over the same window, then compare the results.

    Each run writes its results (keyed by window and mode, so this is idempotent) but no evidence
    or alerts: a diff is for understanding, not for paging anyone.
    """
    from partner_hunt import pipeline  # pipeline calls write_outputs: imported late to avoid a cycle

    quiet = dataclasses.replace(
        config,
        evidence=dataclasses.replace(config.evidence, enabled=False),
        alerts=dataclasses.replace(config.alerts, enabled=False),
    )
    reports, frames, switches = {}, {}, {}
    for mode in ("kql", "corrected"):
        mode_config = with_overrides(quiet, {"hunt.mode": mode})
        reports[mode] = pipeline.run(spark, mode_config, command=f"{command} ({mode})")
        frames[mode] = io.read_window_rows(spark, reports[mode].locations.output, window_key(reports[mode]))
        switches[mode] = describe_switches(mode_config)
    diff_df = diff.compare_modes(frames["kql"], frames["corrected"]).cache()
    # Bounded: at most four statuses, and `top` rows.
    counts = {r["Status"]: int(r["Domains"]) for r in diff.status_counts(diff_df).collect()}
    top = config.hunt.top or 20
    rows = diff_df.transform(diff.filter_disagreements).transform(diff.sort_diff).limit(top).collect()
    diff_df.unpersist()
    return ModeDiff(reports=reports, status_counts=counts, rows=rows, switches=switches)


# ---------------------------------------------------------------- notebook helpers


def notebook_config(
    source: str,
    output: str,
    start: str | None = None,
    end: str | None = None,
    mode: str = "kql",
    top: int = 10,
    config_path: str | None = None,
) -> Config:
    """A validated config for a notebook: the YAML file if given, then these values on top."""
    from partner_hunt.config import load_config

    return with_overrides(
        load_config(config_path),
        {"source": source, "output": output, "hunt.start": start or None, "hunt.end": end or None, "hunt.mode": mode, "hunt.top": top},
    )


def focus_domain(report: Any, domain: str | None = None) -> tuple[str | None, str] | None:
    """(TenantId, domain) worth a closer look: `domain` if given, else the top alert's, else the
    top result's by inbound threats. The tenant is None when `domain` is in no shown row."""
    outputs = getattr(report, "analyst_outputs", None)
    shown = [*(outputs.top_alerts if outputs else []), *report.top_rows]
    if domain:
        tenants = [r["TenantId"] for r in shown if r["SenderFromDomain"] == domain]
        return (tenants[0] if tenants else None), domain
    if outputs and outputs.top_alerts:
        top = outputs.top_alerts[0]
        return top["TenantId"], top["SenderFromDomain"]
    if report.top_rows:
        top = max(report.top_rows, key=lambda r: (r["IncomingTeamsMessagesWithThreats"], r["OutboundTeamsMessages"]))
        return top["TenantId"], top["SenderFromDomain"]
    return None


def read_evidence(spark: SparkSession, report: Any, tenant: str | None = None, domain: str | None = None) -> DataFrame:
    """The evidence rows of the report's window, optionally of one (tenant, domain)."""
    evidence_df = io.read_window_rows(spark, report.locations.evidence, window_key(report))
    if tenant is not None:
        evidence_df = evidence_df.filter(F.col("TenantId") == F.lit(tenant))
    if domain is not None:
        evidence_df = evidence_df.filter(F.col("SenderFromDomain") == F.lit(domain))
    return evidence_df


def daily_trend(spark: SparkSession, report: Any, tenant: str | None, domain: str) -> list[Row]:
    """(Day, OutboundTeamsMessages, IncomingTeamsMessagesWithThreats) of one domain, by day."""
    trend_df = read_evidence(spark, report, tenant, domain).select(F.inline("DailyCounts")).orderBy("Day")
    # Bounded: one row per day of the window.
    return trend_df.collect()


def read_alerts(spark: SparkSession, report: Any) -> DataFrame:
    """The alert rows of the report's window, most severe first."""
    return io.read_window_rows(spark, report.locations.alerts, window_key(report)).transform(alerts.sort_alerts)
