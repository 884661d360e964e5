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

from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from partner_hunt.domains import address_domain

OWN_DOMAINS_DDL = "TenantId string, Domain string, Share double"


def evidence_rows(events_df: DataFrame, normalize: bool) -> DataFrame:
    """(TenantId, Domains) per piece of evidence, each domain once: an owned-thread message's
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
    return events_df.filter(evidence).select("TenantId", domains.alias("Domains"))


def derive_own_domains(events_df: DataFrame, *, min_share: float, normalize: bool) -> DataFrame:
    """Each tenant's own domains with their share of the evidence: `OWN_DOMAINS_DDL` rows.

    Needs canonical events without quarantined rows. A domain counts once per message; the empty
    domain (no `@`, null address) is never own.
    """
    evidence_df = events_df.transform(evidence_rows, normalize)
    totals = evidence_df.groupBy("TenantId").agg(F.count("*").alias("Total"))
    per_domain = (
        evidence_df.select("TenantId", F.explode("Domains").alias("Domain"))
        .filter(F.col("Domain").isNotNull() & (F.col("Domain") != F.lit("")))
        .groupBy("TenantId", "Domain")
        .agg(F.count("*").alias("Pieces"))
    )
    return (
        per_domain.join(totals, "TenantId")
        .select("TenantId", "Domain", (F.col("Pieces") / F.col("Total")).cast("double").alias("Share"))
        .filter(F.col("Share") >= F.lit(min_share))
    )


def as_mapping(rows: Iterable[Row]) -> dict[str, list[str]]:
    """`derive_own_domains` rows as {tenant: [domain, ...]}, domains sorted."""
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["TenantId"], []).append(row["Domain"])
    return {tenant: sorted(domains) for tenant, domains in sorted(found.items())}


def describe(found: Mapping[str, Sequence[str]]) -> str:
    """`as_mapping` output for a log line: `tenant: a.com, b.com; tenant2: c.com`, or empty."""
    return "; ".join(f"{t}: {', '.join(d)}" for t, d in found.items())


def merged_exclusions(
    configured: Mapping[str, Sequence[str]], derived: Mapping[str, Sequence[str]]
) -> dict[str, tuple[str, ...]]:
    """Per-tenant exclusions: the configured ones plus the derived ones, each list without repeats."""
    tenants = sorted({*configured, *derived})
    return {t: tuple(dict.fromkeys([*configured.get(t, ()), *derived.get(t, ())])) for t in tenants}
