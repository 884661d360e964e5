"""`run --incremental`: recompute only the days whose source data changed, then the trailing window."""

from __future__ import annotations

import logging
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone

from pyspark.sql import SparkSession

from partner_hunt.commands.steps import days, partners, signal_days
from partner_hunt.commands.steps.days import OnBatch
from partner_hunt.config import Config, HuntSettings
from partner_hunt.core import partials
from partner_hunt.store import changes, checks, faults, runlog, source
from partner_hunt.store.locations import Locations, TableRef
from partner_hunt.store.partials_table import Markers, read_markers
from partner_hunt.store.runlog import RunReport
from partner_hunt.store.signal_sources import read_signals

COMMAND = "run --incremental"
log = logging.getLogger("partner_hunt")


def incremental_watermark(last_incremental: int | None, markers: Markers, variant_key: str) -> int | None:
    """The source version up to which every committed day of this variant is known to be current.

    An incremental run checks all committed days against every commit since the previous
    watermark, so its version becomes the next watermark. Before the first incremental run, the
    oldest version any backfilled day was computed from is the safe place to start looking.
    """
    return last_incremental if last_incremental is not None else markers.oldest_version(variant_key)


def refresh_window(h: HuntSettings, now: datetime | None = None) -> tuple[date, date]:
    """The trailing window: it ends at `hunt.end` if set, else at the next UTC midnight (today
    included), and starts `hunt.trailing_days` earlier, or at `hunt.start` if set."""
    now = now or datetime.now(timezone.utc)
    end = partials.as_day(h.end) if h.end else now.astimezone(timezone.utc).date() + timedelta(days=1)
    start = partials.as_day(h.start) if h.start else end - timedelta(days=h.trailing_days)
    return start, end


def days_to_compute(window_days: list[date], done: set[date], changed: Collection[date] | None) -> list[date]:
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
    start, end = refresh_window(config.hunt, now)
    window = (partials.day_start(start), partials.day_start(end))
    checks.check_locations(spark, Locations.from_config(config))
    with runlog.tracked(spark, config, COMMAND, window) as report:
        _refresh(spark, config, report, start, end, on_batch)
    return report


def _refresh(
    spark: SparkSession, config: Config, report: RunReport, start: date, end: date, on_batch: OnBatch | None
) -> None:
    # Independent reads of the tables' metadata: each is mostly waiting on Delta's log
    # and the driver's planning, so a nightly refresh of one day overlaps them.
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="partner-hunt-read") as pool:
        markers_f = pool.submit(read_markers, spark, report.locations)
        source_f = pool.submit(source.read_source, spark, report.locations.source, days.source_requirements(config))
        last_f = pool.submit(runlog.watermarks, spark, report.locations, report.variant, COMMAND)
        signals_f = pool.submit(read_signals, spark, report.locations, config.hunt.mode)
        markers, (source_df, report.source_version), last, inputs = (
            markers_f.result(), source_f.result(), last_f.result(), signals_f.result()
        )
    report.signal_versions = dict(inputs.versions)
    markers.check_source(report.locations)
    previous = incremental_watermark(last.source, markers, report.variant)
    window_days = partials.days_between(start, end)
    done = markers.done_days(report.variant)
    early: list[date] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="partner-hunt-signals") as pool:
        # The signal tables' changes are mapped to their messages' days while the source's changes
        # are found and the days they give are computed; the days only a late signal touches
        # follow in a batch of their own.
        late_f = (
            pool.submit(signal_days.changed_message_days, spark, config, source_df, inputs, last.signals)
            if inputs.present
            else None
        )
        change = find_changes(spark, report.locations.source, previous, report.source_version)
        if late_f is not None and change.days is not None:
            early = days_to_compute(window_days, done, change.days)
            days.compute_in_batches(spark, config, report, source_df, early, max(1, len(early)), len(early), on_batch, inputs)
        late = late_f.result() if late_f is not None else None
    if late is not None and change.days is not None:
        change = changes.ChangeResult(
            None if late.days is None else change.days | late.days,
            late.kind if late.days is None else change.kind,
            f"{change.reason}; signals: {late.reason}",
        )
    report.refresh_kind, report.refresh_reason = change.kind, change.reason
    if change.days is None:
        # The first refresh is expected to compute everything; any later one doing so is a cost
        # nobody asked for, and says so with the fix.
        level = logging.INFO if change.reason == changes.FIRST_REFRESH else logging.WARNING
        log.log(level, "run --incremental recomputes the whole window %s..%s: %s", start, end, change.reason)
    todo = [d for d in days_to_compute(window_days, done, change.days) if d not in early]
    days.compute_in_batches(
        spark, config, report, source_df, todo, max(1, len(todo)), len(todo), on_batch, inputs, timeless_first=not early
    )
    faults.point("before-report")
    days.write_window_reports(
        spark, config, report, [(start, end)], markers, inputs,
        alongside=lambda found: partners.refresh_partners(spark, config, report, (start, end), found, inputs),
    )


def find_changes(
    spark: SparkSession, ref: TableRef, previous: int | None, current: int | None
) -> changes.ChangeResult:
    """What changed in the source since the watermark, or why the whole window must be recomputed."""
    if previous is None:
        return changes.ChangeResult.full(changes.FIRST_REFRESH)
    if current is None:
        return changes.ChangeResult.full(f"the source '{ref}' has no Delta history to compare with")
    return changes.changed_days(spark, ref, previous, current)
