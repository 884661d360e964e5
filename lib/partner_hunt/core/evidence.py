"""The evidence drill-down: one row per result domain saying which messages, threats and senders.

A results row ("p.com: 1,200 outbound, 37 inbound threats") is where a hunter starts. The evidence
row beside it answers the next questions without rerunning anything: when the threats started and
stopped, which threat types, how many distinct messages and senders, which sender domains they
really came from, a few message ids to pivot on, and the day-by-day counts.

Everything here is a pure transform over the hunt's own per-day aggregate of the window
(`hunt.count_domains(by_day=True, evidence=True)`, which keeps the inbound-threat rows beside the
counts, so no second pass over the events is needed) and the results rows of the same window. The
unit of every count is the results' unit (message x recipient rows, or distinct messages per UTC
day when `count_messages` is on), so the daily counts add up to the results row.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from partner_hunt.core.domains import address_domain
from partner_hunt.core.tables import EVIDENCE_COLUMNS

# A lone-space ThreatTypes is a threat for KQL (`isempty(" ")` is false) but names no type.
BLANK_THREAT_TYPE = "(blank)"
TOP_SENDER_DOMAINS = 10

_KEYS = ["TenantId", "Domain"]


def explode_threat_rows(day_counts_df: DataFrame, normalize: bool = False) -> DataFrame:
    """The inbound-threat rows kept by `hunt.count_domains(by_day=True, evidence=True)`, one per row.

    Needs its `InboundThreatRows`; gives `TenantId`, `Domain`, `Day`, `TeamsMessageId`,
    `ThreatTypes`, `SenderEmailAddress`, `Rows` (how many counted rows carry these values) and
    `SenderDomain`.
    """
    sender = F.col("SenderEmailAddress")
    return (
        day_counts_df.select(*_KEYS, "Day", F.explode("InboundThreatRows").alias("r"))
        .select(*_KEYS, "Day", "r.TeamsMessageId", "r.ThreatTypes", "r.SenderEmailAddress", "r.Rows")
        .withColumn("SenderDomain", F.when(sender.isNotNull(), address_domain(sender, normalize)))
    )


def filter_result_domains(rows_df: DataFrame, results_df: DataFrame) -> DataFrame:
    """Keep the rows whose (TenantId, Domain) is a results row. Needs `TenantId`, `Domain`."""
    keys_df = results_df.select(
        F.col("TenantId").alias("_tenant"), F.col("SenderFromDomain").alias("_domain")
    )
    rows = rows_df.alias("rows")
    # One row per result domain: small beside the events, so it is shipped to every task.
    keys = F.broadcast(keys_df).alias("keys")
    return rows.join(
        keys,
        on=(F.col("rows.TenantId") == F.col("keys._tenant")) & (F.col("rows.Domain") == F.col("keys._domain")),
        how="left_semi",
    )


def _count(count_messages: bool) -> Column:
    """The results' counting unit: rows, or distinct messages per UTC day (see hunt.aggregate_sides)."""
    if count_messages:
        return F.count_distinct(F.col("TeamsMessageId"), F.col("Day"))
    return F.sum("Rows")


def split_threat_types(col: Column) -> Column:
    """`"Phish, Malware"` -> `["Phish", "Malware"]`: split on commas, trim, one blank label if empty."""
    parts = F.filter(F.transform(F.split(col, ","), lambda t: F.trim(t)), lambda t: t != F.lit(""))
    return F.when(F.size(parts) > 0, parts).otherwise(F.array(F.lit(BLANK_THREAT_TYPE)))


def _top_by_count(values: Column, count: Column, value_name: str, limit: int) -> Column:
    """Aggregate: the `limit` (value, count) pairs with the highest counts, ties by value."""
    ranked = F.sort_array(
        F.collect_list(F.struct((-count).alias("_rank"), values.alias(value_name), count.alias("Count")))
    )
    return F.transform(
        F.slice(ranked, 1, limit), lambda e: F.struct(e[value_name].alias(value_name), e["Count"].alias("Count"))
    )


def threat_type_counts(inbound_df: DataFrame, count_messages: bool = False) -> DataFrame:
    """Per (TenantId, Domain): `ThreatTypeCounts`, array<struct<ThreatType, Count>> sorted by type.

    Needs `explode_threat_rows` rows. A message counts once for each type it lists.
    """
    types = F.array_distinct(split_threat_types(F.col("ThreatTypes")))
    per_type_df = (
        inbound_df.select(*_KEYS, "Day", "TeamsMessageId", "Rows", F.explode(types).alias("ThreatType"))
        .groupBy(*_KEYS, "ThreatType")
        .agg(_count(count_messages).cast("long").alias("Count"))
    )
    return per_type_df.groupBy(*_KEYS).agg(
        F.sort_array(F.collect_list(F.struct("ThreatType", "Count"))).alias("ThreatTypeCounts")
    )


def sender_domain_counts(inbound_df: DataFrame, count_messages: bool = False, limit: int = TOP_SENDER_DOMAINS) -> DataFrame:
    """Per (TenantId, Domain): `InboundSenderDomains`, the top sender domains of its inbound threats.

    In `kql` mode this is where the published query's inbound domain (a recipient's) and the real
    origin (the sender's) part ways. Needs `explode_threat_rows` rows.
    """
    per_sender_df = (
        inbound_df.filter(F.col("SenderDomain").isNotNull())
        .groupBy(*_KEYS, "SenderDomain")
        .agg(_count(count_messages).cast("long").alias("Count"))
    )
    return per_sender_df.groupBy(*_KEYS).agg(
        _top_by_count(F.col("SenderDomain"), F.col("Count"), "Domain", limit).alias("InboundSenderDomains")
    )


def daily_counts(day_counts_df: DataFrame) -> DataFrame:
    """Per (TenantId, Domain): `DailyCounts`, array<struct<Day, Outbound..., Incoming...>> by day.

    Needs per-day counts (`hunt.count_domains(by_day=True)`): they are the daily counts, in the
    results' unit. Days without traffic for the domain are absent.
    """
    return day_counts_df.groupBy(*_KEYS).agg(
        F.sort_array(
            F.collect_list(F.struct("Day", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats"))
        ).alias("DailyCounts"),
        F.min("FirstThreatSeen").alias("FirstThreatSeen"),
        F.max("LastThreatSeen").alias("LastThreatSeen"),
    )


def inbound_summary(inbound_df: DataFrame, sample_size: int = 10, include_senders: bool = False) -> DataFrame:
    """Per (TenantId, Domain): distinct threat messages and senders, bounded samples.

    Needs `explode_threat_rows` rows. Samples are the smallest ids in sort order, so reruns pick
    the same ones. `DistinctSenders` is null when no sender address was read (kql mode does not
    need the column); `SenderAddresses` is null unless `include_senders` (personal data).
    """
    sender = F.col("SenderEmailAddress")
    senders_known = F.count(sender) > 0
    # One set per column gives both the distinct count and the sample: two `count_distinct`s
    # beside a `collect_set` make Spark expand every row once per distinct column, which took
    # 3.4 s against 0.2 s for 22,000 threat rows at 4M source rows (docs/performance.md).
    ids, senders = F.collect_set("TeamsMessageId"), F.collect_set(sender)
    addresses = (
        F.when(senders_known, F.slice(F.sort_array(senders), 1, sample_size))
        if include_senders
        else F.lit(None).cast("array<string>")
    )
    return inbound_df.groupBy(*_KEYS).agg(
        F.size(ids).cast("long").alias("DistinctThreatMessages"),
        F.when(senders_known, F.size(senders)).cast("long").alias("DistinctSenders"),
        F.slice(F.sort_array(ids), 1, sample_size).alias("SampleTeamsMessageIds"),
        addresses.alias("SenderAddresses"),
    )


def evidence_from_counts(
    day_counts_df: DataFrame,
    results_df: DataFrame,
    *,
    normalize: bool = False,
    count_messages: bool = False,
    sample_size: int = 10,
    include_senders: bool = False,
) -> DataFrame:
    """One evidence row per results row (`EVIDENCE_COLUMNS`), from the hunt's own aggregate.

    `day_counts_df` is `hunt.count_domains(by_day=True, evidence=True)` over the window's events,
    with the hunt's switches; `results_df` has the results table's columns (`tables.RESULT_COLUMNS`
    plus `WindowStart`, `WindowEnd`, `Mode`, `RunId`, `ComputedAt`). Only result domains' rows
    are expanded, so everything here works on a small slice of the aggregate.
    """
    days_df = day_counts_df.filter(F.col("Domain").isNotNull()).transform(filter_result_domains, results_df)
    inbound_df = days_df.transform(explode_threat_rows, normalize)
    details = [
        daily_counts(days_df),
        inbound_summary(inbound_df, sample_size, include_senders),
        threat_type_counts(inbound_df, count_messages),
        sender_domain_counts(inbound_df, count_messages),
    ]
    evidence_df = results_df.withColumnRenamed("SenderFromDomain", "Domain").alias("r")
    for i, detail_df in enumerate(details):
        # Left joins: a results row keeps its evidence row even if a detail has nothing to say.
        evidence_df = evidence_df.join(detail_df.alias(f"d{i}"), on=_KEYS, how="left")
    return evidence_df.withColumnRenamed("Domain", "SenderFromDomain").select(*EVIDENCE_COLUMNS)
