"""Partner history over every day the daily partials hold (pure transforms).

The published query sees one window (30 days in Defender, 14 in Sentinel rules), so it cannot say
whether a partner is new or has changed. The daily partials keep per-day counts for as long as
they are kept, so one pass over them gives each (tenant, domain) its true first and last contact
per side, its totals, a trailing baseline and the latest window's counts: no rescan of the source.

A threat rate is inbound threats per outbound message, the query's `Bad_Traffic_Percentage`
unrounded; it is null where there was no outbound traffic to compare with.
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

OUT, IN = "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats"


def threat_rate(threats: Column, outbound: Column) -> Column:
    """Threats per outbound message, null without outbound traffic."""
    return F.when(outbound > 0, threats.cast("double") / outbound.cast("double"))


def _sum_when(cond: Column, col: str) -> Column:
    return F.coalesce(F.sum(F.when(cond, F.col(col))), F.lit(0)).cast("long")


def partner_history(
    partials_df: DataFrame, variant_key: str, window: tuple[date, date], baseline_days: int
) -> DataFrame:
    """One row per (TenantId, Domain) of a variant: the partners table's columns up to `WindowEnd`.

    Needs the partials columns (markers included: the earliest marker day is where the history
    starts). `window` is the latest window `[start, end)`; the baseline is the `baseline_days` days
    before it. `NewPartner` marks a domain whose first outbound day is in the window, and only when
    the history starts before the window: otherwise every partner would look new.
    """
    start, end = window
    baseline_start = start - timedelta(days=baseline_days)
    day = F.col("Day")
    out, inn = F.col(OUT) > 0, F.col(IN) > 0
    in_baseline = (day >= F.lit(baseline_start)) & (day < F.lit(start))
    in_window = (day >= F.lit(start)) & (day < F.lit(end))
    history = (
        partials_df.filter(F.col("Variant") == F.lit(variant_key))
        .agg(F.min("Day").alias("HistoryStart"), F.first("Mode", ignorenulls=True).alias("Mode"))
    )
    counts = (
        partials_df.filter((F.col("Variant") == F.lit(variant_key)) & F.col("Domain").isNotNull())
        .groupBy("TenantId", "Domain")
        .agg(
            F.min(F.when(out, day)).alias("FirstSeenOutbound"),
            F.max(F.when(out, day)).alias("LastSeenOutbound"),
            F.min(F.when(inn, day)).alias("FirstSeenInbound"),
            F.max(F.when(inn, day)).alias("LastSeenInbound"),
            F.count_if(out | inn).cast("long").alias("ActiveDays"),
            _sum_when(F.lit(True), OUT).alias(OUT),
            _sum_when(F.lit(True), IN).alias(IN),
            _sum_when(in_baseline, OUT).alias("BaselineOutbound"),
            _sum_when(in_baseline, IN).alias("BaselineThreats"),
            _sum_when(in_window, OUT).alias("WindowOutbound"),
            _sum_when(in_window, IN).alias("WindowThreats"),
        )
        # A domain with only zero counts (possible in a variant's partials) has no contact at all.
        .filter(F.col("ActiveDays") > 0)
    )
    baseline_rate = threat_rate(F.col("BaselineThreats"), F.col("BaselineOutbound"))
    window_rate = threat_rate(F.col("WindowThreats"), F.col("WindowOutbound"))
    new = (
        (F.col("FirstSeenOutbound") >= F.lit(start))
        & (F.col("FirstSeenOutbound") < F.lit(end))
        & (F.col("HistoryStart") < F.lit(start))
    )
    # `history` is one row: the cross join only labels every partner with it.
    return counts.crossJoin(history).select(
        "TenantId",
        "Domain",
        F.lit(variant_key).alias("Variant"),
        "Mode",
        "FirstSeenOutbound",
        "LastSeenOutbound",
        "FirstSeenInbound",
        "LastSeenInbound",
        "ActiveDays",
        OUT,
        IN,
        "BaselineOutbound",
        "BaselineThreats",
        baseline_rate.alias("BaselineThreatRate"),
        "WindowOutbound",
        "WindowThreats",
        window_rate.alias("WindowThreatRate"),
        (window_rate - baseline_rate).alias("ThreatRateChange"),
        F.coalesce(new, F.lit(False)).alias("NewPartner"),
        "HistoryStart",
        F.lit(baseline_start).alias("BaselineStart"),
        F.lit(start).alias("WindowStart"),
        F.lit(end).alias("WindowEnd"),
    )


def rate_jumps(partners_df: DataFrame, min_change: float = 0.1, min_window_threats: int = 3) -> DataFrame:
    """Partners whose threat rate in the latest window rose by at least `min_change` over their
    baseline, with enough threats to matter; established partners only (baseline traffic), worst first."""
    return partners_df.filter(
        (F.col("BaselineOutbound") > 0)
        & (F.col("WindowThreats") >= F.lit(min_window_threats))
        & (F.col("ThreatRateChange") >= F.lit(min_change))
    ).orderBy(F.col("ThreatRateChange").desc(), F.col("Domain"), F.col("TenantId"))


def new_partners(partners_df: DataFrame) -> DataFrame:
    """Partners first contacted (outbound) in the latest window, busiest first."""
    return partners_df.filter(F.col("NewPartner")).orderBy(
        F.col("WindowOutbound").desc(), F.col("Domain"), F.col("TenantId")
    )
