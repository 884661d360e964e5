"""Keep the partners table (`<output>_partners`) current from the daily partials."""

from __future__ import annotations

import logging
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from partner_hunt import hunt, io, partners
from partner_hunt.config import Config
from partner_hunt.runlog import RunReport
from partner_hunt.tables import PARTNERS_COLUMNS

log = logging.getLogger("partner_hunt")


def partner_rows(partials_df: DataFrame, config: Config, report: RunReport, window: tuple[date, date]) -> DataFrame:
    """The partners table's rows of the report's variant, own domains and exclusions left out."""
    options = config.finish_options()
    return (
        partners.partner_history(partials_df, report.variant, window, config.hunt.partners_baseline_days)
        # Own domains are never partners, whether or not the mode applies them to the results.
        .transform(hunt.drop_excluded_domains, (*options["exclude"], *config.hunt.own_domains_list), options["normalize"])
        .transform(hunt.drop_tenant_domains, options["tenant_exclude"], options["normalize"])
        .withColumns(
            {"RunId": F.lit(report.run_id), "ComputedAt": F.lit(report.started_at).cast("timestamp")}
        )
        .select(*PARTNERS_COLUMNS)
    )


def refresh_partners(spark: SparkSession, config: Config, report: RunReport, window: tuple[date, date]) -> None:
    """Rewrite the variant's partners rows from all its daily partials, in one commit.

    `window` is the latest window the command reported: the baseline and `NewPartner` refer to it.
    """
    partials_df = io.read_table(spark, report.locations.partials)
    rows_df = partner_rows(partials_df, config, report, window)
    io.replace_where(rows_df, report.locations.partners, io.equality_predicate({"Variant": report.variant}))
    log.info("partners  -> %s (window %s..%s)", report.locations.partners, window[0], window[1])
