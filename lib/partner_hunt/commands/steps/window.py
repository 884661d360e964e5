"""One window hunted from the raw source: the plan (`plan_window`) and its writes (`run_window`).

`plan_window` is the one place a window is planned: `run`, `diff`, `demo`, the benchmark and the
tests all go through it, own-domain step included, so none of them hunts a twin of what ships.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from pyspark.sql import DataFrame, SparkSession

from partner_hunt.commands.steps import accounting, outputs, own_domains
from partner_hunt.commands.steps.days import known_now, source_requirements
from partner_hunt.config import Config
from partner_hunt.core import caching, hunt, quality, schema
from partner_hunt.store import checks, faults, runlog, source
from partner_hunt.store.locations import Locations
from partner_hunt.store.partials_table import check_partials
from partner_hunt.store.predicates import equality_predicate
from partner_hunt.store.runlog import RunReport
from partner_hunt.store.signal_sources import read_signals

# Read beside the hunt's columns when the evidence is on: its sample ids and sender domains.
EVIDENCE_EXTRA = ("TeamsMessageId", "SenderEmailAddress")


@dataclass
class WindowPlan:
    """What a run computes for one window before it writes anything.

    `counts_df` is `hunt.count_window` over the window's canonical events (per day with the
    evidence's rows when `evidence`, with the row accounting); `results_df` the results table's
    rows, own domains excluded where they apply; `own_domains` what `hunt.own_domains: auto`
    derived (empty otherwise).
    """

    prepared: quality.Prepared
    counts_df: DataFrame
    results_df: DataFrame
    own_domains: dict[str, list[str]]
    evidence: bool


def plan_window(spark: SparkSession, config: Config, report: RunReport) -> WindowPlan:
    """Read the source (contract checked, version pinned on the report), then plan the window.

    With `hunt.own_domains: auto` this runs one small job that derives the own domains, since
    the results' exclusions depend on them; everything else stays lazy.
    """
    h = config.hunt
    window = (report.window_start, report.window_end)
    options = h.count_options()
    evidence = config.evidence.enabled
    req = source_requirements(config)
    source_df, report.source_version = source.read_source(spark, report.locations.source, req)
    prepared = quality.prepare(
        source_df.transform(quality.filter_source_window, *window),
        req,
        lambda df: quality.filter_canonical_window(df, *window),
    )
    if h.mode == "known-now":
        inputs = read_signals(spark, report.locations, h.mode)
        report.signal_versions = dict(inputs.versions)
        first = report.window_start or datetime(1970, 1, 1, tzinfo=timezone.utc)
        last = report.window_end or datetime.now(timezone.utc)
        prepared = prepared.with_events(known_now(config, inputs, first, last))
    events_df = prepared.hunt_df
    if evidence:
        wanted = dict.fromkeys([*prepared.hunt_df.columns, *EVIDENCE_EXTRA])
        events_df = prepared.canonical_df.select(*[c for c in wanted if c in prepared.canonical_df.columns])
    counts_df = hunt.count_window(events_df, options, evidence)
    found = own_domains.from_events(h, report, prepared.canonical_df.transform(schema.drop_quarantined))
    finish = own_domains.results_exclusions(h, config.finish_options(), found)
    results_df = counts_df.transform(hunt.window_results, finish).transform(
        hunt.with_run_columns, window, report.mode, report.run_id, report.started_at
    )
    return WindowPlan(prepared, counts_df, results_df, found, evidence)


def run_window(spark: SparkSession, config: Config, command: str) -> RunReport:
    """Hunt the configured window from the raw source and write its results, outputs and log row."""
    checks.check_locations(spark, Locations.from_config(config))
    with runlog.tracked(spark, config, command) as report:
        check_partials(spark, report.locations)
        write_window(spark, config, report, plan_window(spark, config, report))
    return report


def write_window(spark: SparkSession, config: Config, report: RunReport, plan: WindowPlan) -> None:
    """Account for the plan's rows, then write the quarantine, the analyst outputs and the results."""
    window = (report.window_start, report.window_end)
    # One row per (tenant, domain), or per day and with the few inbound-threat rows when the
    # evidence is on, so caching it is cheap; materialising it fills the row accounting, and the
    # bad-fraction check can then refuse before any write. The cache is dropped whatever happens:
    # a failed run's cached plan would otherwise be reused by the next identical run, with the
    # failed run's settings (e.g. not skipping corrupt files).
    counts_df = caching.cached(plan.counts_df)
    results_df: DataFrame | None = None
    try:
        quarantined = accounting.account(report, plan.prepared, config.quality.max_bad_fraction, counts_df)
        # One row per (tenant, domain): the analyst outputs and the results table share it.
        results_df = caching.cached(plan.results_df)
        report.result_rows = results_df.count()
        # Every other table first and the results last: a failure before the results commit
        # leaves the window's previous results standing, and a rerun replaces what was written.
        if quarantined:
            source.write_quarantine(plan.prepared.bad_df, report, config.quality.quarantine_record)
        day_counts_df = counts_df if plan.evidence else None
        report.analyst_outputs = outputs.write_outputs(spark, config, report, window, day_counts_df, results_df)
        report.top_rows = outputs.write_results(results_df, report, equality_predicate(report.window_key()), config.hunt.top)
        faults.point("after-results-commit")
    finally:
        plan.prepared.release()
        caching.release(counts_df)
        if results_df is not None:
            caching.release(results_df)

