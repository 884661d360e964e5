"""The mode diff: where the published query (`kql`) and the `corrected` hunt disagree, and why.

The published query takes the inbound side's domain from the *recipients* of a malicious message,
so a partner is blamed for threats sent *to* its people (in group chats with other partners) and
misses threats sent *by* it to our own users. `corrected` mode takes the sender's domain instead,
and by default also normalises domains, counts distinct messages and drops re-emitted edits.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from partner_hunt.core.domains import normalized

ONLY_KQL = "only in kql"
ONLY_CORRECTED = "only in corrected"
COUNTS_DIFFER = "counts differ"
SAME = "same"
STATUS_ORDER = (ONLY_KQL, ONLY_CORRECTED, COUNTS_DIFFER, SAME)

WHY_RECIPIENT_SIDE = (
    "its inbound threats in kql are messages sent TO recipients at this domain (the published query "
    "takes inbound domains from recipients); none was sent BY it"
)
WHY_SPELLING = "a spelling variant (case, spaces, trailing dot): corrected mode normalises it into another domain"
WHY_SENDER_SIDE = (
    "it sent inbound threats, but none had a recipient at this domain, so the published query cannot see them"
)
WHY_INBOUND = "inbound: sender's domain (corrected) vs recipients' domains (kql)"
WHY_OUTBOUND = "outbound: counting unit, normalised spellings or dropped edits"

EXPLANATION = (
    "Why they disagree: the published query (kql mode) counts an inbound malicious message under the "
    "domains of its RECIPIENTS, so a partner is credited with threats sent to its people and never with "
    "threats it sent to ours; corrected mode counts it under the SENDER's domain. Corrected mode's "
    "defaults also normalise domains, count distinct messages and drop re-emitted edits, which moves "
    "the outbound counts too."
)



def compare_modes(kql_df: DataFrame, corrected_df: DataFrame) -> DataFrame:
    """One row per (TenantId, SenderFromDomain) in either result, with both modes' counts.

    Needs `TenantId`, `SenderFromDomain`, `OutboundTeamsMessages`, `IncomingTeamsMessagesWithThreats`
    on both sides (one window each); gives the diff's columns (see `partner-hunt diff`). A count is null where the domain is not
    in that mode's result.
    """

    def side(df: DataFrame, prefix: str) -> DataFrame:
        return df.select(
            "TenantId",
            "SenderFromDomain",
            F.col("OutboundTeamsMessages").alias(f"{prefix}Outbound"),
            F.col("IncomingTeamsMessagesWithThreats").alias(f"{prefix}Inbound"),
            F.lit(True).alias(f"In{prefix}"),
        )

    kql = side(kql_df, "Kql").alias("k")
    corrected = side(corrected_df, "Corrected").alias("c")
    joined = kql.join(corrected, on=["TenantId", "SenderFromDomain"], how="full_outer")
    in_kql = F.coalesce(F.col("InKql"), F.lit(False))
    in_corrected = F.coalesce(F.col("InCorrected"), F.lit(False))
    outbound_differs = F.col("KqlOutbound") != F.col("CorrectedOutbound")
    inbound_differs = F.col("KqlInbound") != F.col("CorrectedInbound")
    domain = F.col("SenderFromDomain")
    status = (
        F.when(~in_corrected, F.lit(ONLY_KQL))
        .when(~in_kql, F.lit(ONLY_CORRECTED))
        .when(outbound_differs | inbound_differs, F.lit(COUNTS_DIFFER))
        .otherwise(F.lit(SAME))
    )
    why = (
        F.when(~in_corrected & (normalized(domain) != domain), F.lit(WHY_SPELLING))
        .when(~in_corrected, F.lit(WHY_RECIPIENT_SIDE))
        .when(~in_kql, F.lit(WHY_SENDER_SIDE))
        .otherwise(
            F.concat_ws(
                "; ",
                F.when(inbound_differs, F.lit(WHY_INBOUND)),
                F.when(outbound_differs, F.lit(WHY_OUTBOUND)),
            )
        )
    )
    return joined.select(
        "TenantId",
        "SenderFromDomain",
        status.alias("Status"),
        "KqlOutbound",
        "KqlInbound",
        "CorrectedOutbound",
        "CorrectedInbound",
        why.alias("Why"),
    )


def filter_disagreements(diff_df: DataFrame) -> DataFrame:
    """Drop the domains on which both modes agree. Needs `Status`."""
    return diff_df.filter(F.col("Status") != F.lit(SAME))


def sort_diff(diff_df: DataFrame) -> DataFrame:
    """Grouped by status, most inbound threats (either mode) first, then domain and tenant."""
    order = F.array_position(F.array(*[F.lit(s) for s in STATUS_ORDER]), F.col("Status"))
    threats = F.greatest(F.coalesce(F.col("KqlInbound"), F.lit(0)), F.coalesce(F.col("CorrectedInbound"), F.lit(0)))
    return diff_df.orderBy(order.asc(), threats.desc(), F.col("SenderFromDomain").asc(), F.col("TenantId").asc())


def status_counts(diff_df: DataFrame) -> DataFrame:
    """Domains per status (at most four rows)."""
    return diff_df.groupBy("Status").agg(F.count(F.lit(1)).cast("long").alias("Domains"))


ONLY_KNOWN_NOW = "only in known-now"
KNOWN_NOW_ORDER = (ONLY_KNOWN_NOW, COUNTS_DIFFER, SAME)
WHY_FOUND_AFTER = (
    "inbound threats found after delivery: messages it sent that were clean when delivered and were "
    "purged or found malicious later (MessagePostDeliveryEvents)"
)
WHY_ONLY_AFTER = "every inbound threat from it was found after delivery, so neither kql nor corrected sees it"
KNOWN_NOW_EXPLANATION = (
    "known-now mode is corrected mode with the verdicts Defender reached after delivery counted too: a "
    "message clean at delivery and later purged or found malicious (MessagePostDeliveryEvents) is an "
    "inbound threat. Only the inbound counts can move, and only up."
)


def compare_known_now(corrected_df: DataFrame, known_df: DataFrame) -> DataFrame:
    """One row per (TenantId, SenderFromDomain) in either result: `Status`, `CorrectedOutbound`,
    `CorrectedInbound`, `KnownNowInbound`, `FoundAfterDelivery` (the inbound threats only
    known-now counts) and `Why`. Needs the results' columns on both sides (one window each)."""
    corrected = corrected_df.select(
        "TenantId",
        "SenderFromDomain",
        F.col("OutboundTeamsMessages").alias("CorrectedOutbound"),
        F.col("IncomingTeamsMessagesWithThreats").alias("CorrectedInbound"),
    )
    known = known_df.select(
        "TenantId", "SenderFromDomain", F.col("IncomingTeamsMessagesWithThreats").alias("KnownNowInbound"), F.lit(True).alias("InKnownNow")
    )
    joined = corrected.join(known, on=["TenantId", "SenderFromDomain"], how="full_outer")
    in_corrected = F.col("CorrectedInbound").isNotNull()
    found_after = F.col("KnownNowInbound") - F.coalesce(F.col("CorrectedInbound"), F.lit(0))
    status = F.when(~in_corrected, F.lit(ONLY_KNOWN_NOW)).when(found_after != F.lit(0), F.lit(COUNTS_DIFFER)).otherwise(F.lit(SAME))
    why = F.when(~in_corrected, F.lit(WHY_ONLY_AFTER)).when(found_after != F.lit(0), F.lit(WHY_FOUND_AFTER)).otherwise(F.lit(""))
    return joined.select(
        "TenantId",
        "SenderFromDomain",
        status.alias("Status"),
        "CorrectedOutbound",
        "CorrectedInbound",
        "KnownNowInbound",
        found_after.cast("long").alias("FoundAfterDelivery"),
        why.alias("Why"),
    )


def sort_known_now(diff_df: DataFrame) -> DataFrame:
    """Grouped by status, most threats found after delivery first, then domain and tenant."""
    order = F.array_position(F.array(*[F.lit(s) for s in KNOWN_NOW_ORDER]), F.col("Status"))
    return diff_df.orderBy(order.asc(), F.col("FoundAfterDelivery").desc(), F.col("SenderFromDomain").asc(), F.col("TenantId").asc())
