"""`run --incremental`: recompute only the days whose source data changed, then the trailing window."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from partner_hunt import checks, faults, hunt, io, partials, quality, runlog, schema
from partner_hunt.backfill import Markers, OnBatch, compute_in_batches, read_markers, write_window_reports
from partner_hunt.config import Config
from partner_hunt.locations import Locations
from partner_hunt.runlog import RunReport

COMMAND = "run --incremental"


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
            & (F.col("Command") == COMMAND)
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


def refresh_window(config: Config, now: datetime | None = None) -> tuple[date, date]:
    """The trailing window: it ends at `hunt.end` if set, else at the next UTC midnight (today
    included), and starts `hunt.trailing_days` earlier, or at `hunt.start` if set."""
    h = config.hunt
    now = now or datetime.now(timezone.utc)
    end = partials.as_day(h.end) if h.end else now.astimezone(timezone.utc).date() + timedelta(days=1)
    start = partials.as_day(h.start) if h.start else end - timedelta(days=h.trailing_days)
    return start, end


def days_to_compute(window_days: list[date], done: set[date], changed: set[date] | None) -> list[date]:
    """The days a refresh recomputes: every day when the changes are unknown, else the window's
    missing days and every changed day that is committed or in the window."""
    if changed is None:
        return list(window_days)
    todo = {d for d in window_days if d not in done} | {d for d in changed if d in done or d in window_days}
    return sorted(todo)


def run_incremental(
    spark: SparkSession, config: Config, now: datetime | None = None, on_batch: OnBatch | None = None
) -> RunReport:
    """Recompute only the days whose source data changed, then refresh the trailing window."""
    start, end = refresh_window(config, now)
    window = (partials.day_start(start), partials.day_start(end))
    checks.check_locations(spark, config)
    with runlog.tracked(spark, config, COMMAND, window) as report:
        _refresh(spark, config, report, start, end, on_batch)
    return report


def _refresh(
    spark: SparkSession, config: Config, report: RunReport, start: date, end: date, on_batch: OnBatch | None
) -> None:
    # Three independent reads of three tables' metadata: each is mostly waiting on Delta's log
    # and the driver's planning, so a nightly refresh of one day overlaps them.
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="partner-hunt-read") as pool:
        markers_f = pool.submit(read_markers, spark, report.locations)
        source_f = pool.submit(quality.read_source, spark, config, report.locations)
        last_f = pool.submit(last_incremental_version, spark, report.locations, report.variant)
        markers, (source_df, report.source_version), last_incremental = (
            markers_f.result(), source_f.result(), last_f.result()
        )
    markers.check_source(report.locations)
    previous = incremental_watermark(last_incremental, markers, report.variant)
    changed = None
    if previous is not None and report.source_version is not None:
        zoned = isinstance(source_df.schema["Timestamp"].dataType, T.TimestampType)
        changed = io.changed_days(
            spark, report.locations.source, previous, report.source_version, _source_days,
            day_column="Timestamp" if zoned else None,
        )
    todo = days_to_compute(partials.days_between(start, end), markers.done_days(report.variant), changed)
    compute_in_batches(spark, config, report, source_df, todo, max(1, len(todo)), len(todo), on_batch)
    faults.point("before-report")
    write_window_reports(spark, config, report, [(start, end)])


def _source_days(files_df: DataFrame) -> DataFrame:
    """The distinct UTC days of some source rows (Timestamp in any accepted shape)."""
    canonical = files_df.transform(schema.to_canonical, schema.Requirements())
    return canonical.select(hunt.utc_day(F.col("Timestamp")).alias("Day")).filter(F.col("Day").isNotNull()).distinct()
