"""Domains left out of the results and the partners table: the configured exclusions and own domains."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from partner_hunt.core.domains import normalized
from partner_hunt.core.options import FinishOptions


def drop_excluded_domains(counts_df: DataFrame, exclude: Iterable[str], normalize: bool = False) -> DataFrame:
    """Drop the organisation's own domains (the rule's commented `RecipientDomain != ...` line).

    Needs `Domain`. KQL's `!=` is case-sensitive, so in parity mode the list is matched exactly;
    with normalisation on, the list is normalised like the domains.
    """
    excluded = list(exclude)
    if not excluded:
        return counts_df
    values = F.array(*[F.lit(d) for d in excluded])
    if normalize:
        values = F.transform(values, normalized)
    return counts_df.filter(~F.coalesce(F.array_contains(values, F.col("Domain")), F.lit(False)))


def drop_tenant_domains(
    counts_df: DataFrame, tenant_exclude: Mapping[str, Sequence[str]] | None, normalize: bool = False
) -> DataFrame:
    """Drop each tenant's own domains. Needs `TenantId` and `Domain`."""
    pairs = [(tenant, domain) for tenant, domains in (tenant_exclude or {}).items() for domain in domains]
    if not pairs:
        return counts_df
    excluded = F.array(*[F.struct(F.lit(t).alias("t"), F.lit(d).alias("d")) for t, d in pairs])
    if normalize:
        excluded = F.transform(excluded, lambda e: F.struct(e["t"].alias("t"), normalized(e["d"]).alias("d")))
    key = F.struct(F.col("TenantId").alias("t"), F.col("Domain").alias("d"))
    return counts_df.filter(~F.coalesce(F.array_contains(excluded, key), F.lit(False)))


def drop_exclusions(counts_df: DataFrame, finish: FinishOptions) -> DataFrame:
    """Drop the global and the per-tenant excluded domains of `finish`. Needs `TenantId` and `Domain`."""
    return counts_df.transform(drop_excluded_domains, finish.exclude, finish.normalize).transform(
        drop_tenant_domains, finish.tenant_exclude, finish.normalize
    )
