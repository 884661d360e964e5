"""Seeded Teams signals for the sample lake: what Defender would record after delivery (pure).

Built from `sample.generate_events` rows, so each signal is about a real sample message: some
inbound messages carry a URL (`MessageUrlInfo`), some of those are clicked (`UrlClickEvents`), the
threats found at delivery are mostly purged, and the compromised partners' clean messages are
sometimes purged hours later as phish (`MessagePostDeliveryEvents`): the signal the published
rule cannot see. Every draw is a hash of (seed, message, draw), as in `sample`.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from partner_hunt.core.hunt import has_threat
from partner_hunt.core.sample import COMPROMISED, PARTNER_DOMAINS
from partner_hunt.core.schema import DEFAULT_TENANT_ID


def _uniform(seed: int, draw: int) -> Column:
    return F.pmod(F.xxhash64(F.lit(seed), F.lit(draw), F.col("TeamsMessageId")), F.lit(1_000_003)) / F.lit(1_000_003.0)


def _later(u: Column, max_seconds: int) -> Column:
    return F.timestamp_seconds(F.unix_seconds(F.col("Timestamp")) + F.floor(u * F.lit(max_seconds)).cast("long") + F.lit(60))


def generate_signals(events_df: DataFrame, seed: int = 42) -> dict[str, DataFrame]:
    """The sample's signal tables, by `signals.SignalTable.key`, in the flat shape ingest writes
    (the columns the partner signals read, and a few more)."""
    tenant = F.col("TenantId") if "TenantId" in events_df.columns else F.lit(DEFAULT_TENANT_ID)
    domain = F.lower(F.trim(F.substring_index(F.col("SenderEmailAddress"), "@", -1)))
    compromised = domain.isin(*[PARTNER_DOMAINS[i] for i in COMPROMISED])
    # An edited message is one message: its first version, whatever the partitioning.
    first = F.struct(
        tenant.alias("TenantId"),
        domain.alias("Domain"),
        compromised.alias("Compromised"),
        has_threat(F.col("ThreatTypes")).alias("Threat"),
        F.split(F.col("ThreatTypes"), ",")[0].alias("FirstThreat"),
    )
    inbound = (
        events_df.filter(F.coalesce(F.col("IsExternalThread") & ~F.col("IsOwnedThread"), F.lit(False)))
        .groupBy("TeamsMessageId")
        .agg(F.min("Timestamp").alias("Timestamp"), F.min_by(first, F.struct("Timestamp", "ReportId")).alias("_First"))
        .select("TeamsMessageId", "Timestamp", "_First.*")
    )
    u = [_uniform(seed, k) for k in range(6)]
    found_later = ~F.col("Threat") & F.col("Compromised") & (u[0] < 0.12)
    purged = F.col("Threat") & (u[0] < 0.6)
    by_hand = ~F.col("Threat") & ~F.col("Compromised") & (u[0] < 0.001)
    post = inbound.filter(found_later | purged | by_hand).select(
        "TenantId",
        _later(u[1], 48 * 3600).alias("Timestamp"),
        "TeamsMessageId",
        F.when(by_hand, F.lit("Moved to quarantine")).otherwise(F.lit("Blocked")).alias("Action"),
        F.when(by_hand, F.lit("Manual remediation"))
        .when(found_later, F.lit("Phish ZAP"))
        .otherwise(F.concat(F.trim(F.col("FirstThreat")), F.lit(" ZAP")))
        .alias("ActionType"),
        F.when(found_later, F.lit("Phish")).when(purged, F.col("FirstThreat")).alias("ThreatTypes"),
        F.concat(F.lit("pde-"), F.col("TeamsMessageId")).alias("ReportId"),
    )
    host = F.when(F.col("Compromised") | F.col("Threat"), F.concat(F.lit("files-"), F.col("Domain"), F.lit(".example"))).otherwise(F.col("Domain"))
    with_url = inbound.filter(u[2] < F.when(F.col("Compromised"), F.lit(0.6)).otherwise(F.lit(0.25)))
    url = F.concat(F.lit("https://"), host, F.lit("/d/"), F.substring(F.sha2(F.col("TeamsMessageId"), 256), 1, 12))
    urls = with_url.select(
        "TenantId",
        "Timestamp",
        "TeamsMessageId",
        url.alias("Url"),
        host.alias("UrlDomain"),
        F.lit(None).cast("string").alias("ThreatTypes"),
        F.concat(F.lit("url-"), F.col("TeamsMessageId")).alias("ReportId"),
    )
    blocked = F.col("Compromised") & (u[4] < 0.5)
    clicks = with_url.filter(u[3] < 0.3).select(
        "TenantId",
        _later(u[5], 6 * 3600).alias("Timestamp"),
        url.alias("Url"),
        F.when(blocked, F.lit("ClickBlocked")).otherwise(F.lit("ClickAllowed")).alias("ActionType"),
        F.concat(F.lit("emp"), F.floor(u[4] * F.lit(300)).cast("string"), F.lit("@contoso.com")).alias("AccountUpn"),
        F.lit("Teams").alias("Workload"),
        (blocked & (u[5] < 0.2)).alias("IsClickedThrough"),
        F.concat(F.lit("clk-"), F.col("TeamsMessageId")).alias("ReportId"),
    )
    return {"post_delivery": post, "url_info": urls, "url_clicks": clicks}
