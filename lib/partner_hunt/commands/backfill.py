"""`partner-hunt backfill`: daily partials over a range of days, resumable, then the window reports."""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import SparkSession

from partner_hunt.commands.steps import days, partners
from partner_hunt.commands.steps.days import OnBatch
from partner_hunt.config import Config
from partner_hunt.core import partials
from partner_hunt.store import checks, faults, runlog, source
from partner_hunt.store.locations import Locations
from partner_hunt.store.partials_table import read_markers
from partner_hunt.store.runlog import RunReport
from partner_hunt.store.signal_sources import read_signals


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
    checks.check_locations(spark, Locations.from_config(config))
    with runlog.tracked(spark, config, "backfill", window) as report:
        markers = read_markers(spark, report.locations)
        markers.check_source(report.locations)
        source_df, report.source_version = source.read_source(spark, report.locations.source, days.source_requirements(config))
        inputs = read_signals(spark, report.locations, config.hunt.mode)
        report.signal_versions = dict(inputs.versions)
        first = start - timedelta(days=trailing - 1) if trailing else start
        wanted = partials.days_between(first, end)
        done = set() if force else markers.done_days(report.variant)
        todo = [d for d in wanted if d not in done]
        days.compute_in_batches(
            spark, config, report, source_df, todo, config.hunt.backfill_batch_days, len(wanted), on_batch, inputs
        )
        faults.point("before-report")
        if trailing:
            windows = [(d + timedelta(days=1 - trailing), d + timedelta(days=1)) for d in partials.days_between(start, end)]
        else:
            windows = [(start, end)]
        days.write_window_reports(
            spark, config, report, windows, markers, inputs,
            alongside=lambda found: partners.refresh_partners(spark, config, report, partners_window or windows[-1], found, inputs),
        )
    return report
