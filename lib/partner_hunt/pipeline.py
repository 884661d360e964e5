"""One run end to end: read -> normalise -> hunt -> write, plus the quarantine and the run log."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from pyspark.sql import DataFrame, Observation, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from partner_hunt import hunt, io, schema
from partner_hunt.config import Config, config_fingerprint
from partner_hunt.io import TableRef


class BadInputError(RuntimeError):
    """Too much of the input is malformed to trust the result; nothing was written."""


@dataclass(frozen=True)
class Locations:
    """Where a run reads and writes; state tables default to siblings of the results table."""

    source: TableRef
    output: TableRef
    partials: TableRef
    run_log: TableRef
    quarantine: TableRef
    evidence: TableRef
    alerts: TableRef

    @classmethod
    def from_config(cls, config: Config) -> "Locations":
        output = TableRef.parse(config.output)
        state = config.state
        return cls(
            source=TableRef.parse(config.source),
            output=output,
            partials=io.resolve(state.partials, output.sibling("partials")),
            run_log=io.resolve(state.run_log, output.sibling("run_log")),
            quarantine=io.resolve(state.quarantine, output.sibling("quarantine")),
            evidence=io.resolve(state.evidence, output.sibling("evidence")),
            alerts=io.resolve(state.alerts, output.sibling("alerts")),
        )


@dataclass
class RunReport:
    """What a run did, for the terminal summary and the run log."""

    run_id: str
    command: str
    config_hash: str
    locations: Locations
    mode: str
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

    @property
    def rows_used(self) -> int:
        return self.rows_read - self.rows_quarantined

    @property
    def duration_seconds(self) -> float:
        end = self.finished_at or datetime.now(timezone.utc)
        return (end - self.started_at).total_seconds()


RUN_LOG_SCHEMA = T.StructType(
    [
        T.StructField("RunId", T.StringType()),
        T.StructField("Command", T.StringType()),
        T.StructField("ConfigHash", T.StringType()),
        T.StructField("Status", T.StringType()),
        T.StructField("Error", T.StringType()),
        T.StructField("StartedAt", T.TimestampType()),
        T.StructField("FinishedAt", T.TimestampType()),
        T.StructField("DurationSeconds", T.DoubleType()),
        T.StructField("Source", T.StringType()),
        T.StructField("SourceVersion", T.LongType()),
        T.StructField("Output", T.StringType()),
        T.StructField("Mode", T.StringType()),
        T.StructField("WindowStart", T.TimestampType()),
        T.StructField("WindowEnd", T.TimestampType()),
        T.StructField("DaysComputed", T.ArrayType(T.DateType())),
        T.StructField("RowsRead", T.LongType()),
        T.StructField("RowsUsed", T.LongType()),
        T.StructField("RowsQuarantined", T.LongType()),
        T.StructField("QuarantineByReason", T.MapType(T.StringType(), T.LongType())),
        T.StructField("RecipientRowsExploded", T.LongType()),
        T.StructField("ResultRows", T.LongType()),
    ]
)


def config_hash(config: Config) -> str:
    """A short, stable hash of the effective config (after flag overrides)."""
    text = json.dumps(config_fingerprint(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def requirements(config: Config) -> schema.Requirements:
    """The optional source columns this config needs."""
    h = config.hunt
    return schema.Requirements(
        sender=h.mode == "corrected",
        message_id=h.effective_count_messages or h.effective_dedupe_edits,
    )


def read_source(spark: SparkSession, config: Config, locations: Locations) -> tuple[DataFrame, int | None]:
    """Read the source's needed columns after checking the contract; also its Delta version."""
    source_df = io.read_table(spark, locations.source)
    req = requirements(config)
    schema.check_contract(source_df.schema, str(locations.source), req)
    version = io.table_version(spark, locations.source)
    if version is not None:
        # Pin the version we report, so the run log's version is exactly what was read.
        source_df = io.read_table(spark, locations.source, version=version)
    return source_df.select(*schema.needed_columns(source_df.schema, req)), version


def filter_source_window(source_df: DataFrame, start: datetime | None, end: datetime | None) -> DataFrame:
    """Window the raw source where its Timestamp is a real timestamp, so Delta can skip files.

    Rows with a null Timestamp are kept: they belong to no window and must be quarantined, not lost.
    """
    if isinstance(source_df.schema["Timestamp"].dataType, T.TimestampType) and (start or end):
        in_window = hunt.filter_window(source_df, start, end)
        return in_window.unionByName(source_df.filter(F.col("Timestamp").isNull()))
    return source_df


def filter_canonical_window(canonical_df: DataFrame, start: datetime | None, end: datetime | None) -> DataFrame:
    """Keep rows in `[start, end)` and every row whose time could not be read."""
    ts = F.col("Timestamp")
    cond = F.lit(True)
    if start is not None:
        cond = cond & (ts >= F.lit(start))
    if end is not None:
        cond = cond & (ts < F.lit(end))
    return canonical_df.filter(cond | ts.isNull())


def hunt_from_canonical(
    good_df: DataFrame, config: Config, keys: tuple[str, ...] = ("TenantId", "Domain")
) -> DataFrame:
    """Counts per key from quarantine-free canonical rows, with every switch of the config applied."""
    h = config.hunt
    normalize = h.effective_normalize_domains
    events_df = good_df.transform(hunt.filter_latest_edits) if h.effective_dedupe_edits else good_df
    domains_df = (
        events_df.transform(hunt.filter_hunt_rows)
        .transform(hunt.explode_hunt_domains, h.mode, normalize)
        .transform(hunt.filter_excluded_domains, h.exclude_domains, normalize)
        .transform(filter_tenant_exclusions, config)
    )
    return domains_df


def filter_tenant_exclusions(domains_df: DataFrame, config: Config) -> DataFrame:
    """Drop each tenant's own domains (config `tenants.exclude_domains`)."""
    per_tenant = config.tenants.exclude_domains
    if not per_tenant:
        return domains_df
    normalize = config.hunt.effective_normalize_domains
    pairs = [(tenant, domain) for tenant, domains in per_tenant.items() for domain in domains]
    excluded = F.array(*[F.struct(F.lit(t).alias("t"), F.lit(d).alias("d")) for t, d in pairs])
    if normalize:
        from partner_hunt.domains import normalized

        excluded = F.transform(excluded, lambda e: F.struct(e["t"].alias("t"), normalized(e["d"]).alias("d")))
    key = F.struct(F.col("TenantId").alias("t"), F.col("Domain").alias("d"))
    return domains_df.filter(~F.array_contains(excluded, key))


def with_run_columns(results_df: DataFrame, report: RunReport) -> DataFrame:
    """Add the window, mode and run identity columns to result rows."""
    return results_df.select(
        *hunt.RESULT_COLUMNS,
        F.lit(report.window_start).cast("timestamp").alias("WindowStart"),
        F.lit(report.window_end).cast("timestamp").alias("WindowEnd"),
        F.lit(report.mode).alias("Mode"),
        F.lit(report.run_id).alias("RunId"),
        F.lit(report.started_at).cast("timestamp").alias("ComputedAt"),
    )


def window_key(report: RunReport) -> dict[str, Any]:
    """The columns that identify one window's rows in the results table."""
    return {"WindowStart": report.window_start, "WindowEnd": report.window_end, "Mode": report.mode}


def new_report(config: Config, command: str, locations: Locations) -> RunReport:
    """A fresh report for a run that is about to start."""
    return RunReport(
        run_id=str(uuid.uuid4()),
        command=command,
        config_hash=config_hash(config),
        locations=locations,
        mode=config.hunt.mode,
        window_start=config.hunt.start,
        window_end=config.hunt.end,
        started_at=datetime.now(timezone.utc),
    )


def quality_metrics(observed_rows: int, reasons: dict[str, int]) -> tuple[int, dict[str, int]]:
    """Total quarantined rows and the non-zero counts per reason."""
    nonzero = {k: v for k, v in reasons.items() if v}
    return sum(nonzero.values()), nonzero


def observe_quality(canonical_df: DataFrame, observation: Observation) -> DataFrame:
    """Attach row accounting to the plan; it is filled by the action that computes the result."""
    reason = F.col("QuarantineReason")
    return canonical_df.observe(
        observation,
        F.count(F.lit(1)).alias("rows_read"),
        *[F.count_if(reason == F.lit(code)).alias(code) for code in schema.REASONS],
    )


def enforce_bad_fraction(report: RunReport, max_bad_fraction: float) -> None:
    """Fail before any write when the quarantined share exceeds the ceiling."""
    if report.rows_read and report.rows_quarantined / report.rows_read > max_bad_fraction:
        share = report.rows_quarantined / report.rows_read
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(report.quarantine_by_reason.items()))
        raise BadInputError(
            f"{report.rows_quarantined} of {report.rows_read} rows ({share:.2%}) are malformed, above "
            f"quality.max_bad_fraction={max_bad_fraction:.2%} ({reasons}); results and partials were not changed"
        )


def write_quarantine(bad_df: DataFrame, report: RunReport) -> None:
    """Append this run's quarantined rows, with their reason and the original record."""
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
            "SourceRecord",
        ),
        report.locations.quarantine,
    )


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
        report.window_start,
        report.window_end,
        list(report.days_computed),
        report.rows_read,
        report.rows_used,
        report.rows_quarantined,
        dict(report.quarantine_by_reason),
        report.recipient_rows,
        report.result_rows,
    )
    io.append(spark.createDataFrame([row], RUN_LOG_SCHEMA), report.locations.run_log)


def run(spark: SparkSession, config: Config, command: str = "run") -> RunReport:
    """Run the hunt over the configured window and write results, quarantine and run log."""
    locations = Locations.from_config(config)
    report = new_report(config, command, locations)
    try:
        _run(spark, config, report)
        report.status = "succeeded"
        return report
    except Exception as exc:
        report.status = "failed"
        report.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        report.finished_at = datetime.now(timezone.utc)
        _log_quietly(spark, report)


def _log_quietly(spark: SparkSession, report: RunReport) -> None:
    """Write the run log; a failure here must not hide the run's own error."""
    try:
        write_run_log(spark, report)
    except Exception as exc:  # noqa: BLE001 - the run's outcome matters more than its log
        report.error = (report.error or "") + f" (run log not written: {exc})"


def _run(spark: SparkSession, config: Config, report: RunReport) -> None:
    h = config.hunt
    source_df, report.source_version = read_source(spark, config, report.locations)
    canonical_df = (
        source_df.transform(filter_source_window, h.start, h.end)
        .transform(schema.to_canonical, requirements(config))
        .transform(filter_canonical_window, h.start, h.end)
    )
    quality = Observation("quality")
    exploded = Observation("exploded")
    domains_df = hunt_from_canonical(
        canonical_df.transform(observe_quality, quality).transform(schema.filter_quarantined), config
    ).observe(exploded, F.count(F.lit(1)).alias("recipient_rows"))
    results_df = (
        domains_df.transform(hunt.aggregate_sides, ["TenantId", "Domain"], h.effective_count_messages)
        .transform(hunt.finalize_results, h.include_ratio)
        .transform(with_run_columns, report)
    )
    # The result is one row per (tenant, domain), so caching it is cheap; materialising it first
    # fills the row accounting, and the bad-fraction check can then refuse before any write.
    results_df = results_df.cache()
    report.result_rows = results_df.count()
    metrics = quality.get
    report.rows_read = int(metrics.get("rows_read", 0))
    report.rows_quarantined, report.quarantine_by_reason = quality_metrics(
        report.rows_read, {code: int(metrics.get(code, 0)) for code in schema.REASONS}
    )
    report.recipient_rows = int(exploded.get.get("recipient_rows", 0))
    enforce_bad_fraction(report, config.quality.max_bad_fraction)

    io.replace_where(results_df, report.locations.output, io.equality_predicate(window_key(report)))
    if report.rows_quarantined:
        write_quarantine(schema.filter_bad_rows(canonical_df), report)
    # Bounded: at most `top` rows of an aggregate, for the terminal table.
    report.top_rows = results_df.transform(hunt.sort_results).limit(h.top).collect() if h.top else []
    results_df.unpersist()
