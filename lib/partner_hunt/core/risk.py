"""The partner risk table: every Teams signal about a partner, over the latest window and all
history, and a score whose every part is a column (pure).

The score is a weighted sum, so that an analyst can read why a partner ranks where it does:

    RiskScore = ScoreThreatsAtDelivery + ScoreThreatsAfterDelivery + ScoreClicksAllowed
              + ScoreClicksThrough + ScoreClicksBlocked + ScoreThreatRateChange

each part being its weight (`risk.weights`) times the window's count, and the threat-rate part
its weight times the rise of the published threat rate over the baseline (never below 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from partner_hunt.core.partner_signals import COUNTS

# (score part, the window's column it weighs, its `risk.weights` key)
SCORE_PARTS = (
    ("ScoreThreatsAtDelivery", "WindowThreatsAtDelivery", "threats_at_delivery"),
    ("ScoreThreatsAfterDelivery", "WindowThreatsAfterDelivery", "threats_after_delivery"),
    ("ScoreClicksAllowed", "WindowClicksAllowed", "clicks_allowed"),
    ("ScoreClicksThrough", "WindowClicksThrough", "clicks_through"),
    ("ScoreClicksBlocked", "WindowClicksBlocked", "clicks_blocked"),
    ("ScoreThreatRateChange", "ThreatRateChange", "threat_rate_change"),
)
# The published query's columns, as the partners table keeps them (`core/partners.py`).
PUBLISHED = (
    "OutboundTeamsMessages",
    "IncomingTeamsMessagesWithThreats",
    "WindowOutbound",
    "WindowThreats",
    "BaselineThreatRate",
    "WindowThreatRate",
    "ThreatRateChange",
    "NewPartner",
    "FirstSeenOutbound",
    "FirstSeenInbound",
)


def _sum_when(cond: Column, col: str) -> Column:
    return F.coalesce(F.sum(F.when(cond, F.col(col))), F.lit(0)).cast("long")


def signal_history(signal_df: DataFrame, window: tuple[date, date]) -> DataFrame:
    """Per (TenantId, Domain): each signal count over the window (`Window<count>`) and over all
    history (`<count>`), the window's distinct URL domains, and the first day a message came in."""
    start, end = window
    day = F.col("Day")
    in_window = (day >= F.lit(start)) & (day < F.lit(end))
    return signal_df.groupBy("TenantId", "Domain").agg(
        F.min(F.when(F.col("InboundMessages") > 0, day)).alias("FirstInboundMessage"),
        *[_sum_when(F.lit(True), c).alias(c) for c in COUNTS],
        *[_sum_when(in_window, c).alias(f"Window{c}") for c in COUNTS],
        F.size(F.array_distinct(F.flatten(F.collect_list(F.when(in_window, F.col("UrlDomains")))))).cast("long").alias("WindowUrlDomains"),
    )


def partner_risk(
    partners_df: DataFrame, signal_df: DataFrame, window: tuple[date, date], weights: Mapping[str, float]
) -> DataFrame:
    """One row per (TenantId, Domain) seen by the published counts or by any signal: the
    published columns (`PUBLISHED`, from `partners.partner_history`), the signals
    (`signal_history` of the signal partials), `FirstContact`, the score's parts and `RiskScore`,
    highest first when sorted by it. `weights` holds every `SCORE_PARTS` key.
    """
    start, end = window
    history = signal_history(signal_df, window)
    joined = partners_df.select("TenantId", "Domain", *PUBLISHED).join(history, on=["TenantId", "Domain"], how="full_outer")
    zero_filled = joined.fillna(0, subset=[*COUNTS, *[f"Window{c}" for c in COUNTS], "WindowUrlDomains", *PUBLISHED[:4]])
    parts = []
    for name, column, key in SCORE_PARTS:
        value = F.greatest(F.coalesce(F.col(column).cast("double"), F.lit(0.0)), F.lit(0.0))
        parts.append((F.lit(float(weights[key])) * value).alias(name))
    scored = zero_filled.select(
        "*",
        F.least("FirstSeenOutbound", "FirstSeenInbound", "FirstInboundMessage").alias("FirstContact"),
        F.coalesce(F.col("NewPartner"), F.lit(False)).alias("IsNewPartner"),
        *parts,
    )
    total = sum((F.col(name) for name, _c, _k in SCORE_PARTS[1:]), F.col(SCORE_PARTS[0][0]))
    return scored.drop("NewPartner").withColumnRenamed("IsNewPartner", "NewPartner").select(
        "*", total.alias("RiskScore"), F.lit(start).alias("WindowStart"), F.lit(end).alias("WindowEnd")
    )
