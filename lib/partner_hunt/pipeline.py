"""`run`: one window end to end, from the raw source: read -> canonicalise -> hunt -> write."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from partner_hunt import checks, faults, hunt, io, outputs, owned, quality, runlog, schema
from partner_hunt.config import Config
from partner_hunt.outputs import Window
from partner_hunt.runlog import RunReport


def plan_counts(source_df: DataFrame, config: Config, window: Window) -> tuple[quality.Prepared, DataFrame]:
    """The run's plan up to the counts: the raw source windowed, canonicalised, then hunted.

    Gives the prepared events and `hunt.count_domains` rows (with the row accounting), before
    exclusions: per tenant and domain, or, when the evidence is on, per tenant, day and domain with
    the evidence's inbound-threat rows (see `with_evidence`), so the evidence comes from this one
    pass over the source.
    """
    start, end = window
    prepared = quality.prepare(
        source_df.transform(quality.filter_source_window, start, end),
        config,
        lambda df: quality.filter_canonical_window(df, start, end),
    )
    options = config.hunt.count_options()
    if not with_evidence(config):
        return prepared, hunt.count_domains(prepared.hunt_df, **options)
    needed = [*prepared.hunt_df.columns, "TeamsMessageId", "SenderEmailAddress"]
    events_df = prepared.canonical_df.select(*[c for c in dict.fromkeys(needed) if c in prepared.canonical_df.columns])
    return prepared, hunt.count_domains(events_df, by_day=True, evidence=True, **options)


def with_evidence(config: Config) -> bool:
    """Whether `plan_counts` keeps the evidence's rows (per day) beside the counts."""
    return config.evidence.enabled


def per_domain(counts_df: DataFrame) -> DataFrame:
    """`plan_counts` rows summed over days, when they are per day: the counts `finish_results` takes."""
    if "Day" not in counts_df.columns:
        return counts_df
    # The counts are additive over UTC days (see hunt.aggregate_sides), so the sums are exact.
    return counts_df.groupBy("TenantId", "Domain").agg(
        F.sum("OutboundTeamsMessages").cast("long").alias("OutboundTeamsMessages"),
        F.sum("IncomingTeamsMessagesWithThreats").cast("long").alias("IncomingTeamsMessagesWithThreats"),
    )


def results_of(counts_df: DataFrame, config: Config, report: RunReport, window: Window) -> DataFrame:
    """The results table's rows of one window from `plan_counts` rows."""
    return (
        counts_df.transform(per_domain)
        .transform(lambda df: hunt.finish_results(df, **config.finish_options()))
        .transform(runlog.with_run_columns, report, window)
    )


def run(spark: SparkSession, config: Config, command: str = "run") -> RunReport:
    """Run the hunt over the configured window from the raw source and write results and logs."""
    checks.check_locations(spark, config)
    with runlog.tracked(spark, config, command) as report:
        _run(spark, config, report)
    return report


def _run(spark: SparkSession, config: Config, report: RunReport) -> None:
    window = (report.window_start, report.window_end)
    outputs.check_partials(spark, report.locations)
    source_df, report.source_version = quality.read_source(spark, config, report.locations)
    prepared, counts_df = plan_counts(source_df, config, window)
    config = owned.with_own_domains(config, report, prepared.canonical_df.transform(schema.drop_quarantined))
    # One row per (tenant, domain), or per day and with the few inbound-threat rows when the
    # evidence is on, so caching it is cheap; materialising it fills the row
    # accounting, and the bad-fraction check can then refuse before any write.
    # The cache is dropped whatever happens: a failed run's cached plan would otherwise be reused
    # by the next identical run, with the failed run's settings (e.g. not skipping corrupt files).
    counts_df = counts_df.cache()
    results_df: DataFrame | None = None
    try:
        quarantined = quality.account(report, prepared, config, counts_df)
        # One row per (tenant, domain): the analyst outputs and the results table share it.
        results_df = results_of(counts_df, config, report, window).cache()
        report.result_rows = results_df.count()
        # Every other table first and the results last: a failure before the results commit
        # leaves the window's previous results standing, and a rerun replaces what was written.
        if quarantined:
            quality.write_quarantine(prepared.bad_df, report, config.quality.quarantine_record)
        day_counts_df = counts_df if with_evidence(config) else None
        report.analyst_outputs = outputs.write_outputs(spark, config, report, window, day_counts_df, results_df)
        predicate = io.equality_predicate(report.window_key())
        report.top_rows = outputs.write_results(results_df, report, predicate, config.hunt.top)
        faults.point("after-results-commit")
    finally:
        prepared.release()
        counts_df.unpersist()
        if results_df is not None:
            results_df.unpersist()
