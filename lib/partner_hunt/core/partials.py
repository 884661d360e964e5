"""Daily partial aggregates and their roll-up to any day-aligned window (pure transforms).

The hunt's counts are additive: a window's outbound (or inbound-threat) count per domain is the
sum of its days' counts, and the inner join only keeps domains whose two sums are positive. So one
row per (TenantId, Day, Variant, Domain) is enough to answer any window of whole UTC days exactly.

Each computed day also gets one marker row with a null `Domain` and a null `TenantId`: it is
written in the same commit as the day's counts, so "this day is done" and "these are its counts"
can never disagree, even for a day with no traffic at all. With `hunt.own_domains: auto`, each
tenant's day also gets a row with a null `Domain` that holds its own-domain evidence total
(`OwnDomainEvidence`): it carries the same day, variant and source as the marker.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from partner_hunt.core import hunt


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of `day`."""
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def days_between(start: date, end: date) -> list[date]:
    """The days of `[start, end)`."""
    return [start + timedelta(days=i) for i in range((end - start).days)]


def as_day(value: datetime | date) -> date:
    """The UTC day of a bound; a window for partials must start and end at midnight UTC."""
    if isinstance(value, datetime):
        utc = value.astimezone(timezone.utc)
        if utc.time() != time(0):
            raise ValueError(f"{value.isoformat()} is not midnight UTC: daily partials need whole-day windows")
        return utc.date()
    return value


def day_ranges(days: Iterable[date]) -> list[tuple[date, date]]:
    """`days` as few half-open `[first, end)` runs of consecutive days."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and ranges[-1][1] == day:
            ranges[-1] = (ranges[-1][0], day + timedelta(days=1))
        else:
            ranges.append((day, day + timedelta(days=1)))
    return ranges


def days_filter(col: Column, days: Iterable[date]) -> Column:
    """`col` falls on one of `days`, written as timestamp ranges so that Delta can skip files.

    Consecutive days make one range: a 90-day batch is one comparison pair, not 90 (whose
    generated code outgrows Java's method limit and falls back to interpretation).
    """
    cond = F.lit(False)
    for first, end in day_ranges(days):
        cond = cond | hunt.in_window(col, day_start(first), day_start(end))
    return cond


def with_markers(
    counts_df: DataFrame, variant_key: str, mode: str, days: Iterable[date], own_df: DataFrame | None = None
) -> DataFrame:
    """Daily counts (`hunt.count_domains(by_day=True)`) plus one marker row per computed day.

    Rows with a null `Domain` (rows read but not counted) are not partials and are left out. With
    `own_df` (`own_domains.evidence_counts(by_day=True)` of the same days), each domain row also
    carries `OwnDomainEvidence`, a domain named only there gets a row with zero counts, and each
    tenant's day gets a row with a null `Domain` holding its total pieces of evidence. Gives the
    partials columns up to `LastSeen`, and `OwnDomainEvidence` (null without `own_df`).
    """
    spark = counts_df.sparkSession
    zero = F.lit(0).cast("long")
    markers = spark.createDataFrame([(d,) for d in sorted(days)], "Day date").select(
        F.lit(None).cast("string").alias("TenantId"),
        "Day",
        F.lit(None).cast("string").alias("Domain"),
        zero.alias("OutboundTeamsMessages"),
        zero.alias("IncomingTeamsMessagesWithThreats"),
        F.lit(None).cast("timestamp").alias("FirstSeen"),
        F.lit(None).cast("timestamp").alias("LastSeen"),
        F.lit(None).cast("long").alias("OwnDomainEvidence"),
    )
    counts = counts_df.filter(F.col("Domain").isNotNull()).select(*markers.columns[:-1])
    if own_df is None:
        rows = counts.withColumn("OwnDomainEvidence", F.lit(None).cast("long"))
    else:
        keys = ["TenantId", "Day", "Domain"]
        own_domain_df = own_df.filter(F.col("Domain").isNotNull()).select(*keys, "OwnDomainEvidence")
        rows = (
            counts.join(own_domain_df, on=keys, how="full_outer")
            .fillna(0, subset=["OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats"])
            .unionByName(
                own_df.filter(F.col("Domain").isNull()).select(
                    "TenantId",
                    "Day",
                    "Domain",
                    zero.alias("OutboundTeamsMessages"),
                    zero.alias("IncomingTeamsMessagesWithThreats"),
                    F.lit(None).cast("timestamp").alias("FirstSeen"),
                    F.lit(None).cast("timestamp").alias("LastSeen"),
                    "OwnDomainEvidence",
                )
            )
        )
    return rows.select(*markers.columns).unionByName(markers).select(
        "TenantId",
        "Day",
        F.lit(variant_key).alias("Variant"),
        F.lit(mode).alias("Mode"),
        "Domain",
        "OutboundTeamsMessages",
        "IncomingTeamsMessagesWithThreats",
        "FirstSeen",
        "LastSeen",
        "OwnDomainEvidence",
    )


def filter_counts(partials_df: DataFrame, variant_key: str, start: date, end: date) -> DataFrame:
    """Count rows (no markers) of one variant over `[start, end)`."""
    return partials_df.filter(
        (F.col("Variant") == F.lit(variant_key))
        & (F.col("Day") >= F.lit(start))
        & (F.col("Day") < F.lit(end))
        & F.col("Domain").isNotNull()
    )


def filter_window_days(partials_df: DataFrame, variant_key: str, start: date, end: date) -> DataFrame:
    """Every row (markers and tenant rows included) of one variant over `[start, end)`."""
    return partials_df.filter(
        (F.col("Variant") == F.lit(variant_key)) & (F.col("Day") >= F.lit(start)) & (F.col("Day") < F.lit(end))
    )


def rollup(partials_df: DataFrame, variant_key: str, start: date, end: date) -> DataFrame:
    """Sum a window's daily counts per (TenantId, Domain): the input `hunt.window_results` takes."""
    return (
        partials_df.transform(filter_counts, variant_key, start, end)
        .groupBy("TenantId", "Domain")
        .agg(
            F.sum("OutboundTeamsMessages").cast("long").alias("OutboundTeamsMessages"),
            F.sum("IncomingTeamsMessagesWithThreats").cast("long").alias("IncomingTeamsMessagesWithThreats"),
        )
    )
