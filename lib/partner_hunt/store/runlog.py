"""What a run did, and the run-log table that keeps it: one row per command, success or failure."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from partner_hunt.config import Config, config_fingerprint
from partner_hunt.core.tables import RUN_LOG_DDL, window_key
from partner_hunt.store import faults, files, io
from partner_hunt.store.errors import first_line
from partner_hunt.store.locations import Locations


class RunLogError(RuntimeError):
    """The run finished, but its run-log row could not be written."""


@dataclass
class AnalystOutputs:
    """What a run wrote beside its results (evidence, alerts), for the terminal and the notebook.

    `alerts_raised` counts the window's alerts this run raised (new or again); `alerts_withdrawn`
    those of the window it withdrew because its results no longer raise them.
    """

    evidence: str | None = None
    evidence_rows: int = 0
    alerts: str | None = None
    alerts_jsonl: str | None = None
    alerts_raised: int = 0
    alerts_withdrawn: int = 0
    top_alerts: list[Row] = field(default_factory=list)
    withdrawn_alerts: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class RunReport:
    """One run: its identity and window (fixed when it starts) and what it did (filled as it goes)."""

    run_id: str
    command: str
    config_hash: str
    locations: Locations
    mode: str
    variant: str
    window_start: datetime | None
    window_end: datetime | None
    started_at: datetime
    source_version: int | None = None
    rows_read: int = 0
    rows_quarantined: int = 0
    quarantine_by_reason: dict[str, int] = field(default_factory=dict)
    recipient_rows: int = 0
    result_rows: int = 0
    days_computed: list[date] = field(default_factory=list)
    top_rows: list[Row] = field(default_factory=list)
    status: str = "running"
    error: str | None = None
    finished_at: datetime | None = None
    skipped_files: list[str] = field(default_factory=list)
    analyst_outputs: AnalystOutputs | None = None
    job_run_id: str | None = None
    # `run --incremental` only: "incremental" (the changed days) or "full" (the whole window), and why.
    refresh_kind: str | None = None
    refresh_reason: str | None = None
    # `hunt.own_domains: auto` only: each tenant's own domains, as derived from the window's events.
    own_domains: dict[str, list[str]] | None = None
    # `ingest` only: the export folder it read and its counts (`tables.INGEST_COUNTS`).
    ingest_input: str | None = None
    ingest_counts: dict[str, int] | None = None
    # Commands that compute partials: the version of each signal table read (`signals.SignalTable.key`).
    signal_versions: dict[str, int] | None = None

    @property
    def rows_used(self) -> int:
        """Rows read and not quarantined."""
        return self.rows_read - self.rows_quarantined

    @property
    def duration_seconds(self) -> float:
        """Seconds from start to finish (to now while running)."""
        end = self.finished_at or datetime.now(timezone.utc)
        return (end - self.started_at).total_seconds()

    def window_key(self) -> dict[str, object]:
        """The columns that identify this run's window in the results, evidence and alerts tables."""
        return window_key(self.mode, (self.window_start, self.window_end))


def config_hash(config: Config) -> str:
    """A short, stable hash of the effective config (after flag overrides), run identity excluded."""
    settings = {k: v for k, v in config_fingerprint(config).items() if k != "job_run_id"}
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def new_report(
    config: Config, command: str, window: tuple[datetime | None, datetime | None] | None = None
) -> RunReport:
    """A fresh report for a run that is about to start; the window defaults to the config's."""
    start, end = window if window is not None else (config.hunt.start, config.hunt.end)
    return RunReport(
        run_id=str(uuid.uuid4()),
        command=command,
        config_hash=config_hash(config),
        locations=Locations.from_config(config),
        mode=config.hunt.mode,
        variant=config.hunt.count_options().variant,
        window_start=start,
        window_end=end,
        started_at=datetime.now(timezone.utc),
        job_run_id=config.job_run_id,
    )


@dataclass(frozen=True)
class Watermarks:
    """What the earlier runs of a command read: the source's version, and each signal table's."""

    source: int | None
    signals: dict[str, int]


def watermarks(spark: SparkSession, locations: Locations, variant_key: str, command: str) -> Watermarks:
    """From one read of the run log, for this variant's succeeded runs:

    - `source`: the source version the last run of `command` read;
    - `signals`: per signal table, the version up to which every computed day's signals are
      current: what the last run of `command` read; before the first, the oldest version any
      backfill read. A table missing here was not read when some day was computed.
    """
    run_log_df = io.read_table_if_exists(spark, locations.run_log)
    if run_log_df is None:
        return Watermarks(None, {})
    signal_versions = F.col("SignalVersions") if "SignalVersions" in run_log_df.columns else F.lit(None).cast("map<string,bigint>")
    # Bounded: one row per run of this variant.
    rows = (
        run_log_df.filter(
            (F.col("Status") == "succeeded")
            & (F.col("Source") == F.lit(str(locations.source)))
            & (F.col("Variant") == F.lit(variant_key))
            & F.col("Command").isin(command, "backfill")
        )
        .orderBy(F.col("StartedAt").desc())
        .select("Command", "SourceVersion", signal_versions.alias("SignalVersions"))
        .collect()
    )
    own = [row for row in rows if row["Command"] == command]
    versions = [int(row["SourceVersion"]) for row in own if row["SourceVersion"] is not None]
    source = max(versions) if versions else None
    if own:
        return Watermarks(source, {k: int(v) for k, v in (own[0]["SignalVersions"] or {}).items()})
    if not rows:
        return Watermarks(source, {})
    backfilled = [row["SignalVersions"] or {} for row in rows]
    keys = set.intersection(*(set(v) for v in backfilled))
    return Watermarks(source, {k: min(int(v[k]) for v in backfilled) for k in keys})


def latest_own_domains(spark: SparkSession, locations: Locations) -> dict[str, list[str]]:
    """The own domains the newest succeeded run derived (`hunt.own_domains: auto`), if any."""
    log_df = io.read_table_if_exists(spark, locations.run_log)
    if log_df is None or "OwnDomains" not in log_df.columns:
        return {}
    rows = (
        log_df.filter((F.col("Status") == "succeeded") & F.col("OwnDomains").isNotNull())
        .orderBy(F.col("StartedAt").desc()).limit(1).collect()
    )
    return {t: list(d) for t, d in rows[0]["OwnDomains"].items()} if rows else {}


def write_run_log(spark: SparkSession, report: RunReport) -> None:
    """Append the run's one row to the run-log table."""
    row = (
        report.run_id,
        report.command,
        report.config_hash,
        report.status,
        report.error,
        report.started_at,
        report.finished_at,
        report.duration_seconds,
        str(report.locations.source),
        report.source_version,
        str(report.locations.output),
        report.mode,
        report.variant,
        report.window_start,
        report.window_end,
        list(report.days_computed),
        report.rows_read,
        report.rows_used,
        report.rows_quarantined,
        dict(report.quarantine_by_reason),
        report.recipient_rows,
        report.result_rows,
        list(report.skipped_files),
        report.job_run_id,
        report.refresh_kind,
        report.refresh_reason,
        {t: list(d) for t, d in report.own_domains.items()} if report.own_domains is not None else None,
        report.ingest_input,
        dict(report.ingest_counts) if report.ingest_counts is not None else None,
        dict(report.signal_versions) if report.signal_versions is not None else None,
    )
    io.append(spark.createDataFrame([row], RUN_LOG_DDL), report.locations.run_log)


@contextmanager
def tracked(
    spark: SparkSession,
    config: Config,
    command: str,
    window: tuple[datetime | None, datetime | None] | None = None,
) -> Iterator[RunReport]:
    """Scope of one run: yields its report, and always appends its run-log row.

    Unreadable source files inside the scope fail naming the file, or are skipped and listed. A
    failed run's row carries the error; if the row itself cannot be written, a failed run says so
    beside its own error, and a run that otherwise succeeded fails with `RunLogError`.
    """
    report = new_report(config, command, window)
    skip = config.quality.skip_corrupt_files
    try:
        with files.reading_files(spark, report.locations.source, skip):
            if skip:
                report.skipped_files = files.unreadable_files(spark, report.locations.source)
            yield report
    except Exception as exc:
        report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
        report.finished_at = datetime.now(timezone.utc)
        try:
            write_run_log(spark, report)
        except Exception as log_exc:  # noqa: BLE001 - the run's own error stays the one raised
            exc.add_note(f"the run log {report.locations.run_log} was not written either: {log_exc}")
        raise
    report.status = "succeeded"
    report.finished_at = datetime.now(timezone.utc)
    faults.point("before-run-log")
    try:
        write_run_log(spark, report)
    except Exception as exc:
        raise RunLogError(
            f"the run's tables were written, but its run-log row could not be appended to "
            f"{report.locations.run_log}: {type(exc).__name__}: {first_line(exc)}"
        ) from exc
