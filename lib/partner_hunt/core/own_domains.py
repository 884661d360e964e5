"""The organisation's own domains, found in the events themselves (pure transforms).

The published query filters its own domain with a hard-coded, commented-out `contoso.com`. The
events already say which domains are ours: our users send the owned threads, and our users receive
the inbound messages. Each such message is one piece of evidence per tenant: the sender's domain
of an owned-thread message, and the recipients' domains (each once) of an inbound external one. A
domain is "own" when it appears in at least `min_share` of the tenant's pieces of evidence; a
partner only ever appears as a recipient beside our users (group chats), far below any sensible
share, so it cannot become own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F

from partner_hunt.core.domains import address_domain
from partner_hunt.core.hunt import utc_day

OWN_DOMAINS_DDL = "TenantId string, Domain string, Share double"
OWN_EVIDENCE_DDL = "TenantId string, Day date, Domain string, OwnDomainEvidence bigint"


def evidence_rows(events_df: DataFrame, normalize: bool, carry: Sequence[Column] = ()) -> DataFrame:
    """(TenantId, `carry`, Domains) per piece of evidence, each domain once: an owned-thread message's
    sender, an inbound external message's recipients. Needs `TenantId`, `IsOwnedThread`,
    `IsExternalThread`, `RecipientAddresses`, and uses `SenderEmailAddress` when the frame has it
    (a kql-mode source may not: then only inbound recipients are evidence)."""
    owned = F.coalesce(F.col("IsOwnedThread"), F.lit(False))
    inbound = ~F.coalesce(F.col("IsOwnedThread"), F.lit(True)) & F.coalesce(F.col("IsExternalThread"), F.lit(False))
    if "SenderEmailAddress" in events_df.columns:
        evidence = owned | inbound
        addresses = F.when(owned, F.array(F.col("SenderEmailAddress"))).otherwise(F.col("RecipientAddresses"))
    else:
        evidence, addresses = inbound, F.col("RecipientAddresses")
    addresses = F.coalesce(addresses, F.array().cast("array<string>"))
    domains = F.array_distinct(F.transform(addresses, lambda a: address_domain(a, normalize)))
    return events_df.filter(evidence).select("TenantId", *carry, domains.alias("Domains"))


def evidence_counts(events_df: DataFrame, normalize: bool, by_day: bool = False) -> DataFrame:
    """The pieces of evidence counted: `OWN_EVIDENCE_DDL` rows, per day or not.

    Per (TenantId, Domain), `OwnDomainEvidence` is how many pieces name the domain; one more row
    per tenant with a null `Domain` holds the tenant's total pieces. Both are additive over days,
    so a window's own domains are exactly those of its days' counts summed (the daily partials
    keep them). Needs canonical events without quarantined rows (and `Timestamp` when `by_day`).
    """
    day = [utc_day(F.col("Timestamp")).alias("Day")] if by_day else []
    keys = ["TenantId", *(["Day"] if by_day else [])]
    evidence_df = events_df.transform(evidence_rows, normalize, day)
    totals = (
        evidence_df.groupBy(*keys)
        .agg(F.count(F.lit(1)).cast("long").alias("OwnDomainEvidence"))
        .withColumn("Domain", F.lit(None).cast("string"))
    )
    per_domain = (
        evidence_df.select(*keys, F.explode("Domains").alias("Domain"))
        .filter(F.col("Domain").isNotNull() & (F.col("Domain") != F.lit("")))
        .groupBy(*keys, "Domain")
        .agg(F.count(F.lit(1)).cast("long").alias("OwnDomainEvidence"))
    )
    return per_domain.unionByName(totals)


def own_domains_from_counts(counts_df: DataFrame, min_share: float) -> DataFrame:
    """Each tenant's own domains with their share of the evidence: `OWN_DOMAINS_DDL` rows.

    Needs `evidence_counts` rows (per day or not, any days: they are summed), or partials rows
    carrying `OwnDomainEvidence`. A domain counts once per message; the empty domain is never own.
    """
    counts = counts_df.filter(F.col("OwnDomainEvidence").isNotNull())
    totals = (
        counts.filter(F.col("Domain").isNull()).groupBy("TenantId").agg(F.sum("OwnDomainEvidence").alias("Total")).alias("t")
    )
    per_domain = (
        counts.filter(F.col("Domain").isNotNull())
        .groupBy("TenantId", "Domain")
        .agg(F.sum("OwnDomainEvidence").alias("Pieces"))
        .alias("d")
    )
    return (
        per_domain.join(totals, on="TenantId", how="inner")
        .select("TenantId", "Domain", (F.col("Pieces") / F.col("Total")).cast("double").alias("Share"))
        .filter(F.col("Share") >= F.lit(min_share))
    )


def derive_own_domains(events_df: DataFrame, *, min_share: float, normalize: bool) -> DataFrame:
    """Each tenant's own domains over these events: `OWN_DOMAINS_DDL` rows (see `evidence_counts`)."""
    return own_domains_from_counts(evidence_counts(events_df, normalize), min_share)


def as_mapping(rows: Iterable[Row]) -> dict[str, list[str]]:
    """`derive_own_domains` rows as {tenant: [domain, ...]}, domains sorted."""
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["TenantId"], []).append(row["Domain"])
    return {tenant: sorted(domains) for tenant, domains in sorted(found.items())}


def describe(found: Mapping[str, Sequence[str]]) -> str:
    """`as_mapping` output for a log line: `tenant: a.com, b.com; tenant2: c.com`, or empty."""
    return "; ".join(f"{t}: {', '.join(d)}" for t, d in found.items())
