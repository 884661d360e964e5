"""`backfill`: daily partial aggregates over a range of days, resumable, then the window reports.

The hunt's counts are additive over UTC days (see `partials.py`), so each day is computed once
into the partials table and any day-aligned window is rolled up from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from partner_hunt import checks, faults, hunt, io, outputs, partials, partner_table, quality, runlog
from partner_hunt.config import Config
from partner_hunt.locations import Locations
from partner_hunt.outputs import PartialsMismatchError as PartialsMismatchError
from partner_hunt.runlog import RunReport

OnBatch = Callable[[list[date], int, int], None]


@dataclass(frozen=True)
class Markers:
    """The partials table's marker rows (one per computed day and variant): what is done, from
    which source, at which source version. Read once per run; bounded by days x variants."""

    rows: tuple[Row, ...] = ()

    def check_source(self, locations: Locations) -> None:
        """Refuse to mix partials computed from another source into this partials table."""
        outputs.check_partials_source((r["Source"] for r in self.rows), locations)

    def done_days(self, variant_key: str) -> set[date]:
        """Days whose partials are committed for this variant."""
        return {r["Day"] for r in self.rows if r["Variant"] == variant_key}

    def oldest_version(self, variant_key: str) -> int | None:
        """The oldest source version any committed day of this variant was computed from."""
        versions = [r["SourceVersion"] for r in self.rows if r["Variant"] == variant_key and r["SourceVersion"] is not None]
        return min(versions) if versions else None


def read_markers(spark: SparkSession, locations: Locations) -> Markers:
    """The partials table's marker rows, or none when the table does not exist yet."""
    partials_df = io.read_table_if_exists(spark, locations.partials)
    if partials_df is None:
        return Markers()
    rows = (
        partials_df.filter(F.col("Domain").isNull())
        .select("Day", "Variant", "Source", "SourceVersion")
        .collect()
    )
    return Markers(tuple(rows))


def compute_days(
    spark: SparkSession,
    config: Config,
    report: RunReport,
    source_df: DataFrame,
    days: list[date],
    timeless: bool = False,
) -> None:
    """Compute and commit the partials of `days` in one atomic replace (idempotent).

    With `timeless`, the source rows whose Timestamp cannot be read are read too: they belong to
    no day, so a command quarantines and counts them once, in one of its batches.
    """
    if not days:
        return
    ts = F.col("Timestamp")
    in_days = partials.days_filter(ts, days)
    wanted = (in_days | ts.isNull()) if timeless else in_days
    zoned = isinstance(source_df.schema["Timestamp"].dataType, T.TimestampType)
    prepared = quality.prepare(source_df.filter(wanted) if zoned else source_df, config, lambda df: df.filter(wanted))
    # Aggregated rows only, cached so that the accounting is known before anything is written;
    # dropped whatever happens (see `pipeline._run`).
    counts_df = hunt.count_domains(prepared.hunt_df, by_day=True, **config.hunt.count_options()).cache()
    try:
        quarantined = quality.account(report, prepared, config, counts_df, committed=report.days_computed)
        # Rows with no day form a null-Day group with a null Domain, which `with_markers` leaves out.
        daily_df = counts_df.transform(partials.with_markers, report.variant, report.mode, days).withColumns(
            {
                "Source": F.lit(str(report.locations.source)),
                "SourceVersion": F.lit(report.source_version).cast("long"),
                "RunId": F.lit(report.run_id),
                "ComputedAt": F.lit(report.started_at).cast("timestamp"),
            }
        )
        # The quarantine before the partials: once a day's partials are committed a rerun skips
        # that day, so its quarantined rows must already be kept.
        if quarantined:
            quality.write_quarantine(prepared.bad_df, report, config.quality.quarantine_record)
        predicate = f"{io.in_predicate('Day', days)} AND {io.equality_predicate({'Variant': report.variant})}"
        io.replace_where(daily_df, report.locations.partials, predicate, partition_by=["Day"])
    finally:
        prepared.release()
        counts_df.unpersist()
    report.days_computed.extend(days)
    faults.point("after-partials-commit")


def compute_in_batches(
    spark: SparkSession,
    config: Config,
    report: RunReport,
    source_df: DataFrame,
    todo: list[date],
    batch_days: int,
    total: int,
    on_batch: OnBatch | None = None,
) -> None:
    """Compute `todo` in batches of `batch_days`, each its own commit, reporting progress of `total`."""
    finished = total - len(todo)
    for i in range(0, len(todo), max(1, batch_days)):
        batch = todo[i : i + max(1, batch_days)]
        compute_days(spark, config, report, source_df, batch, timeless=i == 0)
        finished += len(batch)
        if on_batch:
            on_batch(batch, finished, total)


def write_window_reports(
    spark: SparkSession,
    config: Config,
    report: RunReport,
    windows: list[tuple[date, date]],
    markers: Markers | None = None,
) -> None:
    """Roll the partials up into one results window each, written in a single commit; the last
    window's rows are shown and get the analyst outputs. `markers`, read by the command before
    it computed `report.days_computed`, say which days the partials hold without another job."""
    partials_df = io.read_table(spark, report.locations.partials)
    frames = []
    for start, end in windows:
        window = (partials.day_start(start), partials.day_start(end))
        frames.append(
            partials.rollup(partials_df, report.variant, start, end)
            .transform(lambda df: hunt.finish_results(df, **config.finish_options()))
            .transform(runlog.with_run_columns, report, window)
        )
    results_df = frames[0]
    for frame in frames[1:]:
        results_df = results_df.unionByName(frame)
    results_df = results_df.cache()
    try:
        report.result_rows = results_df.count()
        last = (partials.day_start(windows[-1][0]), partials.day_start(windows[-1][1]))
        last_df = results_df.filter(F.col("WindowEnd") == F.lit(last[1]))
        top = config.hunt.top
        report.top_rows = last_df.transform(hunt.sort_results).limit(top).collect() if top else []
        # The analyst outputs before the results, which are the run's last commit (see `pipeline._run`).
        # Evidence needs raw events; alerts come from the rolled-up rows (the spike rule's partials are here).
        done = None if markers is None else markers.done_days(report.variant) | set(report.days_computed)
        report.analyst_outputs = outputs.write_outputs(spark, config, report, last, None, last_df, done)
        predicate = " OR ".join(
            f"({io.equality_predicate(outputs.window_key(report.mode, (partials.day_start(s), partials.day_start(e))))})"
            for s, e in windows
        )
        io.replace_where(results_df, report.locations.output, predicate)
        faults.point("after-results-commit")
    finally:
        results_df.unpersist()


def backfill(
    spark: SparkSession,
    config: Config,
    start: date,
    end: date,
    force: bool = False,
    on_batch: OnBatch | None = None,
    partners_window: tuple[date, date] | None = None,
) -> RunReport:
    """Compute the missing daily partials of `[start, end)`, then write the window report(s).

    Resumable: each batch of `hunt.backfill_batch_days` days commits on its own, so a killed
    backfill restarts at the first uncommitted day. With `hunt.backfill_trailing_days`, one window
    of that length ending on each day is written instead of the single `[start, end)` window.
    The partners table is then rewritten with `partners_window` as its latest window (default: the
    last window reported).
    """
    if end <= start:
        raise ValueError(f"backfill end {end} must be after start {start}")
    trailing = config.hunt.backfill_trailing_days
    window = (partials.day_start(start), partials.day_start(end))
    checks.check_locations(spark, config)
    with runlog.tracked(spark, config, "backfill", window) as report:
        markers = read_markers(spark, report.locations)
        markers.check_source(report.locations)
        source_df, report.source_version = quality.read_source(spark, config, report.locations)
        first = start - timedelta(days=trailing - 1) if trailing else start
        wanted = partials.days_between(first, end)
        done = set() if force else markers.done_days(report.variant)
        todo = [d for d in wanted if d not in done]
        compute_in_batches(spark, config, report, source_df, todo, config.hunt.backfill_batch_days, len(wanted), on_batch)
        faults.point("before-report")
        if trailing:
            windows = [(d + timedelta(days=1 - trailing), d + timedelta(days=1)) for d in partials.days_between(start, end)]
        else:
            windows = [(start, end)]
        write_window_reports(spark, config, report, windows, markers)
        partner_table.refresh_partners(spark, config, report, partners_window or windows[-1])
    return report
