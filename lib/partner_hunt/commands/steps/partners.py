"""Keep the partners table (`<output>_partners`) current from the daily partials."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from partner_hunt.commands.steps import own_domains
from partner_hunt.config import Config
from partner_hunt.core import caching, partners, risk
from partner_hunt.core.exclusions import drop_exclusions
from partner_hunt.core.tables import PARTNER_RISK_COLUMNS, PARTNERS_COLUMNS
from partner_hunt.store import io
from partner_hunt.store.predicates import equality_predicate
from partner_hunt.store.runlog import RunReport
from partner_hunt.store.signal_sources import SignalInputs

log = logging.getLogger("partner_hunt")


def partner_rows(
    partials_df: DataFrame, config: Config, report: RunReport, window: tuple[date, date], found: dict[str, list[str]]
) -> DataFrame:
    """The partners table's rows of the report's variant, own domains (listed or `found`) and
    exclusions left out."""
    finish = own_domains.partner_exclusions(config.hunt, config.finish_options(), found)
    return (
        partners.partner_history(partials_df, report.variant, window, config.hunt.partners_baseline_days)
        .transform(drop_exclusions, finish)
        .withColumns({"RunId": F.lit(report.run_id), "ComputedAt": F.lit(report.started_at).cast("timestamp")})
        .select(*PARTNERS_COLUMNS)
    )


def risk_rows(
    spark: SparkSession,
    config: Config,
    report: RunReport,
    window: tuple[date, date],
    found: dict[str, list[str]],
    partners_df: DataFrame,
) -> DataFrame | None:
    """The partner risk table's rows of the report's variant (own domains and exclusions left out),
    from its partners rows and the signal partials; None when no signal partials exist."""
    signal_df = io.read_table_if_exists(spark, report.locations.signal_partials)
    if signal_df is None:
        return None
    finish = own_domains.partner_exclusions(config.hunt, config.finish_options(), found)
    variant_df = signal_df.filter(F.col("Variant") == F.lit(report.variant))
    return (
        risk.partner_risk(partners_df, variant_df, window, config.risk.weights_in_full())
        .transform(drop_exclusions, finish)
        .withColumns(
            {
                "Variant": F.lit(report.variant),
                "Mode": F.lit(report.mode),
                "RunId": F.lit(report.run_id),
                "ComputedAt": F.lit(report.started_at).cast("timestamp"),
            }
        )
        .select(*PARTNER_RISK_COLUMNS)
    )


def alert_scores(
    spark: SparkSession, config: Config, report: RunReport, window: tuple[date, date], found: dict[str, list[str]], inputs: SignalInputs | None
) -> DataFrame | None:
    """The partners' risk scores over `window` for the alerts' `risk` rule, or None when the rule
    is off (`risk.alert_min_score` null) or no signal table is there."""
    if config.risk.alert_min_score is None or inputs is None or not inputs.present:
        return None
    partials_df = io.read_table(spark, report.locations.partials)
    return risk_rows(spark, config, report, window, found, partner_rows(partials_df, config, report, window, found))


def refresh_partners(
    spark: SparkSession,
    config: Config,
    report: RunReport,
    window: tuple[date, date],
    found: dict[str, list[str]],
    inputs: SignalInputs | None = None,
) -> None:
    """Rewrite the variant's partners rows from all its daily partials, in one commit; with signal
    tables in `inputs`, then its partner risk rows from those and the signal partials.

    `window` is the latest window the command reported: the baseline and `NewPartner` refer to it.
    `found` are the own domains the command derived (`hunt.own_domains: auto`).
    """
    partials_df = io.read_table(spark, report.locations.partials)
    rows_df = caching.cached(partner_rows(partials_df, config, report, window, found))
    variant = equality_predicate({"Variant": report.variant})

    def write_risk() -> None:
        risk_df = risk_rows(spark, config, report, window, found, rows_df)
        if risk_df is not None:
            io.replace_where(risk_df, report.locations.partner_risk, variant)
            log.info("risk      -> %s (window %s..%s)", report.locations.partner_risk, window[0], window[1])

    try:
        # Two commits to two tables from the same rows: mostly waiting on Delta's log, so side by side.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="partner-hunt-risk") as pool:
            risk_f = pool.submit(write_risk) if inputs is not None and inputs.present else None
            io.replace_where(rows_df, report.locations.partners, variant)
            log.info("partners  -> %s (window %s..%s)", report.locations.partners, window[0], window[1])
            if risk_f is not None:
                risk_f.result()
    finally:
        caching.release(rows_df)
