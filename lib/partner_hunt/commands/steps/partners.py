"""Keep the partners table (`<output>_partners`) current from the daily partials."""

from __future__ import annotations

import logging
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from partner_hunt.commands.steps import own_domains
from partner_hunt.config import Config
from partner_hunt.core import partners
from partner_hunt.core.exclusions import drop_exclusions
from partner_hunt.core.tables import PARTNERS_COLUMNS
from partner_hunt.store import io
from partner_hunt.store.predicates import equality_predicate
from partner_hunt.store.runlog import RunReport

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


def refresh_partners(
    spark: SparkSession, config: Config, report: RunReport, window: tuple[date, date], found: dict[str, list[str]]
) -> None:
    """Rewrite the variant's partners rows from all its daily partials, in one commit.

    `window` is the latest window the command reported: the baseline and `NewPartner` refer to it.
    `found` are the own domains the command derived (`hunt.own_domains: auto`).
    """
    partials_df = io.read_table(spark, report.locations.partials)
    rows_df = partner_rows(partials_df, config, report, window, found)
    io.replace_where(rows_df, report.locations.partners, equality_predicate({"Variant": report.variant}))
    log.info("partners  -> %s (window %s..%s)", report.locations.partners, window[0], window[1])
