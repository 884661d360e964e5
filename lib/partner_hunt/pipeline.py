"""One run end to end: read -> normalise -> hunt -> write, plus the quarantine and the run log."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from partner_hunt import analyst, hunt, io, partials, schema
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
    analyst_outputs: analyst.AnalystOutputs | None = None
    # The scheduler's id of the run that started us (Databricks `{{job.run_id}}`), to find its log.
    job_run_id: str | None = None

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
        T.StructField("Variant", T.StringType()),
        T.StructField("WindowStart", T.TimestampType()),
        T.StructField("WindowEnd", T.TimestampType()),
        T.StructField("DaysComputed", T.ArrayType(T.DateType())),
        T.StructField("RowsRead", T.LongType()),
        T.StructField("RowsUsed", T.LongType()),
        T.StructField("RowsQuarantined", T.LongType()),
        T.StructField("QuarantineByReason", T.MapType(T.StringType(), T.LongType())),
        T.StructField("RecipientRowsExploded", T.LongType()),
        T.StructField("ResultRows", T.LongType()),
        T.StructField("SkippedFiles", T.ArrayType(T.StringType())),
        T.StructField("JobRunId", T.StringType()),
    ]
)


def config_hash(config: Config) -> str:
    """A short, stable hash of the effective config (after flag overrides)."""
    text = json.dumps(config_fingerprint(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def variant_of(config: Config) -> str:
    """The partials variant key of a config (mode plus the switches that change daily counts)."""
    h = config.hunt
    return partials.variant(
        h.mode, h.effective_normalize_domains, h.effective_count_messages, h.effective_dedupe_edits
    )


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
    """Window the raw source where its Timestamp is a real timestamp, so Delta can skip files.

    Rows with a null Timestamp are kept: they belong to no window and must be quarantined, not lost.
    """
    if isinstance(source_df.schema["Timestamp"].dataType, T.TimestampType) and (start or end):
        # One predicate, so the source is scanned once; Parquet and Delta skipping handle the OR.
        return source_df.filter(_window_condition(F.col("Timestamp"), start, end) | F.col("Timestamp").isNull())
    return source_df


def _window_condition(ts: Column, start: datetime | None, end: datetime | None) -> Column:
    cond = F.lit(True)
    if start is not None:
        cond = cond & (ts >= F.lit(start))
    if end is not None:
        cond = cond & (ts < F.lit(end))
    return cond


def filter_canonical_window(canonical_df: DataFrame, start: datetime | None, end: datetime | None) -> DataFrame:
    """Keep rows in `[start, end)` and every row whose time could not be read."""
    ts = F.col("Timestamp")
    return canonical_df.filter(_window_condition(ts, start, end) | ts.isNull())


def explode_events(canonical_df: DataFrame, config: Config) -> DataFrame:
    """Exploded (message, domain) rows of the counted canonical events, before exclusions, plus
    one accounting row (null `Domain`) for every other row read, quarantined ones included.

    Needs the columns of `schema.hunt_columns`; gives those `hunt.explode_hunt_domains` gives,
    with `FirstOfRow` and `QuarantineReason`, for `ACCOUNTING`.
    """
    h = config.hunt
    good = F.col("QuarantineReason").isNull()
    counted = good & hunt.is_hunt_row()
    if h.effective_dedupe_edits:
        # Older versions of an edited message are read, not counted: flagged rather than dropped.
        # Ranked among good rows only, so a malformed later version never hides a good one.
        canonical_df = canonical_df.transform(hunt.with_latest_edit_flag, "_IsLatestEdit", good)
        counted = counted & F.col("_IsLatestEdit")
    return canonical_df.transform(hunt.explode_hunt_domains, h.mode, h.effective_normalize_domains, counted)


def filter_exclusions(domains_df: DataFrame, config: Config) -> DataFrame:
    """Drop the configured own domains, global and per tenant. Needs `TenantId` and `Domain`."""
    return domains_df.transform(
        hunt.filter_excluded_domains, config.hunt.exclude_domains, config.hunt.effective_normalize_domains
    ).transform(filter_tenant_exclusions, config)


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
        variant=variant_of(config),
        window_start=config.hunt.start,
        window_end=config.hunt.end,
        started_at=datetime.now(timezone.utc),
    )


def count_reasons(bad_df: DataFrame) -> dict[str, int]:
    """Quarantined rows per reason code (bounded: one row per code)."""
    rows = bad_df.groupBy("QuarantineReason").count().collect()
    return {r["QuarantineReason"]: int(r["count"]) for r in rows}


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
    )
    io.append(spark.createDataFrame([row], RUN_LOG_SCHEMA), report.locations.run_log)


def _tracked(
    spark: SparkSession, config: Config, command: str, body: Callable[[RunReport], None], job_run_id: str | None = None
) -> RunReport:
    """Run `body` with a fresh report; always append the run log, with the error on failure."""
    locations = Locations.from_config(config)
    report = new_report(config, command, locations)
    report.job_run_id = job_run_id
    skip = config.quality.skip_corrupt_files
    try:
        # Unreadable source files fail naming the file, or are skipped and listed.
        with io.reading_files(spark, locations.source, skip):
            if skip:
                report.skipped_files = io.unreadable_files(spark, locations.source)
            body(report)
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


@dataclass
class _Prepared:
    """A run's canonical events and its exploded rows with their accounting rows."""

    canonical_df: DataFrame
    domains_df: DataFrame
    _bad_df: DataFrame | None = None

    @property
    def bad_df(self) -> DataFrame:
        """The quarantined rows, cached: they are counted per reason, then written."""
        if self._bad_df is None:
            self._bad_df = schema.filter_bad_rows(self.canonical_df).cache()
        return self._bad_df

    def release(self) -> None:
        if self._bad_df is not None:
            self._bad_df.unpersist()


def _prepare(source_df: DataFrame, config: Config, window_filter: Callable[[DataFrame], DataFrame]) -> _Prepared:
    """Canonicalise and explode the source rows that `window_filter` keeps."""
    req = requirements(config)
    canonical_df = window_filter(source_df.transform(schema.to_canonical, req))
    domains_df = canonical_df.select(*schema.hunt_columns(req)).transform(explode_events, config)
    return _Prepared(canonical_df, domains_df)


RECIPIENT_ROWS, ROWS_READ, ROWS_QUARANTINED = "RecipientRows", "RowsRead", "RowsQuarantined"
ACCOUNTING = (RECIPIENT_ROWS, ROWS_READ, ROWS_QUARANTINED)


def accounting_columns() -> list[Column]:
    """Aggregates that ride along with the domain counts: every source row of the window reaches
    that aggregation once (see `explode_events`), so no second pass and no `observe` is needed."""
    first = F.col(hunt.FIRST_OF_ROW)
    return [
        F.count_if(F.col("Domain").isNotNull()).alias(RECIPIENT_ROWS),
        F.count_if(first).alias(ROWS_READ),
        F.count_if(first & F.col("QuarantineReason").isNotNull()).alias(ROWS_QUARANTINED),
    ]


def accounting_totals(counts_df: DataFrame) -> dict[str, int]:
    """The accounting columns summed over aggregated rows (bounded: one row back)."""
    row = counts_df.agg(*[F.sum(name).alias(name) for name in ACCOUNTING]).collect()[0]
    return {name: int(row[name] or 0) for name in ACCOUNTING}


def _account(report: RunReport, prepared: _Prepared, config: Config, totals: dict[str, int]) -> int:
    """Add a finished action's row accounting to the report, apply the bad-row ceiling, and
    return how many of these rows were quarantined."""
    rows_read, quarantined = totals[ROWS_READ], totals[ROWS_QUARANTINED]
    reasons = count_reasons(prepared.bad_df) if quarantined else {}
    batch = dataclasses.replace(report, rows_read=rows_read, rows_quarantined=quarantined, quarantine_by_reason=reasons)
    enforce_bad_fraction(batch, config.quality.max_bad_fraction)
    report.rows_read += rows_read
    report.rows_quarantined += quarantined
    for code, count in reasons.items():
        report.quarantine_by_reason[code] = report.quarantine_by_reason.get(code, 0) + count
    report.recipient_rows += totals[RECIPIENT_ROWS]
    return quarantined


def count_domains(domains_df: DataFrame, config: Config) -> DataFrame:
    """Both sides' counts per (TenantId, Domain), before exclusions, with the `ACCOUNTING` columns.

    Exclusions depend only on the group keys, so they are applied to these few rows afterwards
    rather than to every exploded row. The accounting rows form one group per tenant with a null
    Domain and no counts, which the inner join drops.
    """
    return domains_df.transform(
        hunt.aggregate_sides, ["TenantId", "Domain"], config.hunt.effective_count_messages, extra=accounting_columns()
    )


def results_from_counts(counts_df: DataFrame, config: Config, report: RunReport) -> DataFrame:
    """From `count_domains` rows to the results table's rows for this run's window."""
    return (
        counts_df.transform(filter_exclusions, config)
        .transform(hunt.finalize_results, config.hunt.include_ratio)
        .transform(with_run_columns, report)
    )


def _write_results(results_df: DataFrame, report: RunReport, config: Config, predicate: str) -> None:
    """Replace the window's rows in the results table and keep the top rows for the terminal."""
    io.replace_where(results_df, report.locations.output, predicate)
    # Bounded: at most `top` rows of an aggregate, for the terminal table.
    top = config.hunt.top
    report.top_rows = results_df.transform(hunt.sort_results).limit(top).collect() if top else []


def run(spark: SparkSession, config: Config, command: str = "run", job_run_id: str | None = None) -> RunReport:
    """Run the hunt over the configured window from the raw source and write results and logs."""
    return _tracked(spark, config, command, lambda report: _run(spark, config, report), job_run_id)


def _run(spark: SparkSession, config: Config, report: RunReport) -> None:
    h = config.hunt
    source_df, report.source_version = read_source(spark, config, report.locations)
    prepared = _prepare(
        source_df.transform(filter_source_window, h.start, h.end),
        config,
        lambda df: filter_canonical_window(df, h.start, h.end),
    )
    # One row per (tenant, domain), so caching it is cheap; materialising it fills the row
    # accounting, and the bad-fraction check can then refuse before any write.
    # The cache is dropped whatever happens: a failed run's cached plan would otherwise be reused
    # by the next identical run, with the failed run's settings (e.g. not skipping corrupt files).
    counts_df = count_domains(prepared.domains_df, config).cache()
    try:
        _account(report, prepared, config, accounting_totals(counts_df))
        results_df = results_from_counts(counts_df, config, report)
        report.result_rows = results_df.count()
        _write_results(results_df, report, config, io.equality_predicate(window_key(report)))
        if report.rows_quarantined:
            write_quarantine(prepared.bad_df, report)
    finally:
        prepared.release()
        counts_df.unpersist()
    good_df = prepared.canonical_df.transform(schema.filter_quarantined)
    # The analyst outputs read the committed window back rather than reuse the plan above.
    written_df = io.read_window_rows(spark, report.locations.output, window_key(report))
    report.analyst_outputs = analyst.write_outputs(spark, config, report, good_df, written_df)


# ---------------------------------------------------------------- daily partials, backfill, incremental


@dataclass(frozen=True)
class Markers:
    """The partials table's marker rows (one per computed day and variant): what is done, from
    which source, at which source version. Read once per run; bounded by days x variants."""

    rows: tuple[Row, ...] = ()

    def check_source(self, locations: "Locations") -> None:
        """Refuse to mix partials computed from another source into this partials table."""
        others = sorted({r["Source"] for r in self.rows if r["Source"] != str(locations.source)})
        if others:
            raise PartialsMismatchError(
                f"partials table '{locations.partials}' was computed from source '{others[0]}', not "
                f"'{locations.source}'; give this hunt its own output (or state.partials) location"
            )

    def done_days(self, variant_key: str) -> set[date]:
        """Days whose partials are committed for this variant."""
        return {r["Day"] for r in self.rows if r["Variant"] == variant_key}

    def oldest_version(self, variant_key: str) -> int | None:
        """The oldest source version any committed day of this variant was computed from."""
        versions = [r["SourceVersion"] for r in self.rows if r["Variant"] == variant_key and r["SourceVersion"] is not None]
        return min(versions) if versions else None


def read_markers(spark: SparkSession, locations: Locations) -> Markers:
    """The partials table's marker rows, or none when the table does not exist yet."""
    if not io.table_exists(spark, locations.partials):
        return Markers()
    rows = (
        io.read_table(spark, locations.partials)
        .filter(F.col("Domain").isNull())
        .select("Day", "Variant", "Source", "SourceVersion")
        .collect()
    )
    return Markers(tuple(rows))


class PartialsMismatchError(RuntimeError):
    """The partials table belongs to another source."""


def compute_days(
    spark: SparkSession, config: Config, report: RunReport, source_df: DataFrame, days: list[date]
) -> None:
    """Compute and commit the partials of `days` in one atomic replace (idempotent)."""
    if not days:
        return
    prepared = _prepare(
        source_df.filter(partials.days_filter(F.col("Timestamp"), days))
        if isinstance(source_df.schema["Timestamp"].dataType, T.TimestampType)
        else source_df,
        config,
        # Rows whose time cannot be read belong to no day; `run` over a window quarantines them.
        lambda df: df.filter(partials.days_filter(F.col("Timestamp"), days)),
    )
    # Aggregated rows only, cached so that the accounting is known before anything is written;
    # dropped whatever happens (see `_run`).
    counts_df = prepared.domains_df.transform(
        partials.daily_counts, config.hunt.effective_count_messages, accounting_columns()
    ).cache()
    try:
        quarantined = _account(report, prepared, config, accounting_totals(counts_df))
        daily_df = (
            counts_df.filter(F.col("Domain").isNotNull())
            .transform(partials.with_markers, report.variant, report.mode, days)
            .withColumns(
                {
                    "Source": F.lit(str(report.locations.source)),
                    "SourceVersion": F.lit(report.source_version).cast("long"),
                    "RunId": F.lit(report.run_id),
                    "ComputedAt": F.lit(report.started_at).cast("timestamp"),
                }
            )
        )
        predicate = f"{io.in_predicate('Day', days)} AND {io.equality_predicate({'Variant': report.variant})}"
        io.replace_where(daily_df, report.locations.partials, predicate, partition_by=["Day"])
        if quarantined:
            write_quarantine(prepared.bad_df, report)
    finally:
        prepared.release()
        counts_df.unpersist()
    report.days_computed.extend(days)


def write_window_reports(
    spark: SparkSession, config: Config, report: RunReport, windows: list[tuple[date, date]]
) -> None:
    """Roll the partials up into one results window each, written in a single commit."""
    partials_df = io.read_table(spark, report.locations.partials)
    frames = []
    for start, end in windows:
        window_report = dataclasses.replace(
            report, window_start=partials.day_start(start), window_end=partials.day_start(end)
        )
        frames.append(
            partials.rollup(partials_df, report.variant, start, end)
            .transform(filter_exclusions, config)
            .transform(hunt.finalize_results, config.hunt.include_ratio)
            .transform(with_run_columns, window_report)
        )
    results_df = frames[0]
    for frame in frames[1:]:
        results_df = results_df.unionByName(frame)
    results_df = results_df.cache()
    try:
        report.result_rows = results_df.count()
        predicate = " OR ".join(
            f"({io.equality_predicate({'WindowStart': partials.day_start(s), 'WindowEnd': partials.day_start(e), 'Mode': report.mode})})"
            for s, e in windows
        )
        last_start, last_end = windows[-1]
        report.window_start, report.window_end = partials.day_start(last_start), partials.day_start(last_end)
        last_only = results_df.filter(F.col("WindowEnd") == F.lit(report.window_end))
        io.replace_where(results_df, report.locations.output, predicate)
        top = config.hunt.top
        report.top_rows = last_only.transform(hunt.sort_results).limit(top).collect() if top else []
        # Alerts for the last window (the spike rule has its partials here); evidence needs raw events.
        report.analyst_outputs = analyst.write_outputs(spark, config, report, None, last_only)
    finally:
        results_df.unpersist()


def _batches(days: list[date], size: int) -> list[list[date]]:
    return [days[i : i + size] for i in range(0, len(days), size)]


def backfill(
    spark: SparkSession,
    config: Config,
    start: date,
    end: date,
    force: bool = False,
    trailing_days: int | None = None,
    batch_days: int = 1,
    on_batch: Callable[[list[date], int, int], None] | None = None,
    job_run_id: str | None = None,
) -> RunReport:
    """Compute the missing daily partials of `[start, end)`, then write the window report(s).

    Resumable: each batch of days commits on its own, so a killed backfill restarts at the first
    uncommitted day. With `trailing_days`, one window of that length ending on each day is written
    instead of the single `[start, end)` window.
    """
    if end <= start:
        raise ValueError(f"backfill end {end} must be after start {start}")

    def body(report: RunReport) -> None:
        report.window_start, report.window_end = partials.day_start(start), partials.day_start(end)
        markers = read_markers(spark, report.locations)
        markers.check_source(report.locations)
        source_df, report.source_version = read_source(spark, config, report.locations)
        first = start - timedelta(days=(trailing_days - 1)) if trailing_days else start
        wanted = partials.days_between(first, end)
        done = set() if force else markers.done_days(report.variant)
        todo = [d for d in wanted if d not in done]
        finished = len(wanted) - len(todo)
        for batch in _batches(todo, max(1, batch_days)):
            compute_days(spark, config, report, source_df, batch)
            finished += len(batch)
            if on_batch:
                on_batch(batch, finished, len(wanted))
        if trailing_days:
            windows = [(d + timedelta(days=1) - timedelta(days=trailing_days), d + timedelta(days=1)) for d in partials.days_between(start, end)]
        else:
            windows = [(start, end)]
        write_window_reports(spark, config, report, windows)

    return _tracked(spark, config, "backfill", body, job_run_id)


def last_incremental_version(spark: SparkSession, locations: Locations, variant_key: str) -> int | None:
    """The source version the last succeeded incremental run of this variant checked up to."""
    if not io.table_exists(spark, locations.run_log):
        return None
    rows = (
        io.read_table(spark, locations.run_log)
        .filter(
            (F.col("Status") == "succeeded")
            & (F.col("Source") == F.lit(str(locations.source)))
            & (F.col("Variant") == F.lit(variant_key))
            & (F.col("Command") == "run --incremental")
        )
        .agg(F.max("SourceVersion").alias("v"))
        .collect()
    )
    return int(rows[0]["v"]) if rows and rows[0]["v"] is not None else None


def incremental_watermark(last_incremental: int | None, markers: Markers, variant_key: str) -> int | None:
    """The source version up to which every committed day of this variant is known to be current.

    An incremental run checks all committed days against every commit since the previous
    watermark, so its version becomes the next watermark. Before the first incremental run, the
    oldest version any backfilled day was computed from is the safe place to start looking.
    """
    return last_incremental if last_incremental is not None else markers.oldest_version(variant_key)


def run_incremental(
    spark: SparkSession,
    config: Config,
    trailing_days: int = 30,
    now: datetime | None = None,
    on_batch: Callable[[list[date], int, int], None] | None = None,
    job_run_id: str | None = None,
) -> RunReport:
    """Recompute only the days whose source data changed, then refresh the trailing window.

    The window ends at `hunt.end` if set, else at the next UTC midnight (today included); it
    starts `trailing_days` earlier, or at `hunt.start` if set.
    """
    h = config.hunt
    now = now or datetime.now(timezone.utc)
    end = partials.as_day(h.end) if h.end else (now.astimezone(timezone.utc).date() + timedelta(days=1))
    start = partials.as_day(h.start) if h.start else end - timedelta(days=trailing_days)

    def body(report: RunReport) -> None:
        report.window_start, report.window_end = partials.day_start(start), partials.day_start(end)
        # Three independent reads of three tables' metadata: each is mostly waiting on Delta's log
        # and the driver's planning, so a nightly refresh of one day overlaps them.
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="partner-hunt-read") as pool:
            markers_f = pool.submit(read_markers, spark, report.locations)
            source_f = pool.submit(read_source, spark, config, report.locations)
            last_f = pool.submit(last_incremental_version, spark, report.locations, report.variant)
            markers, (source_df, report.source_version), last_incremental = (
                markers_f.result(), source_f.result(), last_f.result()
            )
        markers.check_source(report.locations)
        window_days = partials.days_between(start, end)
        done = markers.done_days(report.variant)
        previous = incremental_watermark(last_incremental, markers, report.variant)
        changed = None
        if previous is not None and report.source_version is not None:
            zoned = isinstance(source_df.schema["Timestamp"].dataType, T.TimestampType)
            changed = io.changed_days(
                spark, report.locations.source, previous, report.source_version, _source_days,
                day_column="Timestamp" if zoned else None,
            )
        if changed is None:
            # No trustworthy change history (first run, or the log was cleaned): recompute the window.
            todo = set(window_days)
        else:
            todo = {d for d in window_days if d not in done} | {d for d in changed if d in done or d in window_days}
        todo_sorted = sorted(todo)
        finished = 0
        for batch in _batches(todo_sorted, max(1, len(todo_sorted))):
            compute_days(spark, config, report, source_df, batch)
            finished += len(batch)
            if on_batch:
                on_batch(batch, finished, len(todo_sorted))
        write_window_reports(spark, config, report, [(start, end)])

    return _tracked(spark, config, "run --incremental", body, job_run_id)


def _source_days(files_df: DataFrame) -> DataFrame:
    """The distinct UTC days of some source rows (Timestamp in any accepted shape)."""
    canonical = files_df.transform(schema.to_canonical, schema.Requirements())
    return canonical.select(hunt.utc_day(F.col("Timestamp")).alias("Day")).filter(F.col("Day").isNotNull()).distinct()
