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

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from partner_hunt.core.domains import address_domain
from partner_hunt.core.tables import EVIDENCE_COLUMNS

# A lone-space ThreatTypes is a threat for KQL (`isempty(" ")` is false) but names no type.
BLANK_THREAT_TYPE = "(blank)"
TOP_SENDER_DOMAINS = 10

_KEYS = ["TenantId", "Domain"]
# What `hunt.count_domains(evidence=True)` keeps of each inbound-threat row.
_THREAT_FIELDS = ("TeamsMessageId", "ThreatTypes", "SenderEmailAddress", "Rows")
# What a threat row's counts need (see `_measure`).
_COUNTED = ("TeamsMessageId", "Day", "Rows")


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


def split_threat_types(col: Column) -> Column:
    """`"Phish, Malware"` -> `["Phish", "Malware"]`: split on commas, trim, one blank label if empty."""
    parts = F.filter(F.transform(F.split(col, ","), lambda t: F.trim(t)), lambda t: t != F.lit(""))
    return F.when(F.size(parts) > 0, parts).otherwise(F.array(F.lit(BLANK_THREAT_TYPE)))


def _measure(threats: Column, count_messages: bool, weight: Callable[[Column], Column]) -> Column:
    """The results' counting unit over a domain's `threats`, each counted `weight` times.

    Rows: the sum of each threat row's `Rows` x weight. Distinct messages per UTC day (see
    hunt.aggregate_sides): the (id, day) pairs of the rows with a positive weight.
    """
    if count_messages:
        counted = F.filter(threats, lambda e: (weight(e) > F.lit(0)) & e["TeamsMessageId"].isNotNull())
        return F.size(F.array_distinct(F.transform(counted, lambda e: F.struct(e["TeamsMessageId"], e["Day"])))).cast("long")
    zero = F.lit(0).cast("long")
    return F.aggregate(threats, zero, lambda acc, e: acc + weight(e).cast("long") * e["Rows"])


def _distinct_present(values: Column) -> Column:
    """The distinct non-null values of an array, as `collect_set` would gather them."""
    return F.array_distinct(F.filter(values, lambda v: v.isNotNull()))


def _typed_rows(threats: Column) -> Column:
    """Each threat row with its distinct threat types, split once (`Types`), for `_threat_type_counts`."""
    return F.transform(
        threats,
        lambda e: F.struct(F.array_distinct(split_threat_types(e["ThreatTypes"])).alias("Types"), *[e[f].alias(f) for f in _COUNTED]),
    )


def _sender_rows(threats: Column, normalize: bool) -> Column:
    """The threat rows that name a sender, each with its domain taken once (`SenderDomain`)."""
    return F.transform(
        F.filter(threats, lambda e: e["SenderEmailAddress"].isNotNull()),
        lambda e: F.struct(address_domain(e["SenderEmailAddress"], normalize).alias("SenderDomain"), *[e[f].alias(f) for f in _COUNTED]),
    )


def _threat_type_counts(typed: Column, count_messages: bool) -> Column:
    """`ThreatTypeCounts`: per type, sorted by type. A message counts once for each type it lists."""
    types = F.array_sort(F.array_distinct(F.flatten(F.transform(typed, lambda e: e["Types"]))))

    def count_of(t: Column) -> Column:
        return _measure(typed, count_messages, lambda e: F.when(F.array_contains(e["Types"], t), 1).otherwise(0))

    return F.transform(types, lambda t: F.struct(t.alias("ThreatType"), count_of(t).alias("Count")))


def _sender_domain_counts(senders: Column, count_messages: bool, limit: int) -> Column:
    """`InboundSenderDomains`: the top `limit` sender domains by count, ties by domain; null if none.

    In `kql` mode this is where the published query's inbound domain (a recipient's) and the real
    origin (the sender's) part ways.
    """
    domains = F.array_distinct(F.transform(senders, lambda e: e["SenderDomain"]))

    def count_of(d: Column) -> Column:
        return _measure(senders, count_messages, lambda e: F.when(e["SenderDomain"] == d, 1).otherwise(0))

    ranked = F.array_sort(F.transform(domains, lambda d: F.struct((-count_of(d)).alias("_rank"), d.alias("Domain"))))
    top = F.transform(F.slice(ranked, 1, limit), lambda e: F.struct(e["Domain"].alias("Domain"), (-e["_rank"]).alias("Count")))
    return F.when(F.size(senders) > 0, top)


def _details(count_messages: bool, sample_size: int, include_senders: bool) -> list[Column]:
    """The evidence's inbound columns from `_Threats`, `_Typed` and `_Senders`; null without threats."""
    threats = F.col("_Threats")
    ids = F.sort_array(_distinct_present(F.transform(threats, lambda e: e["TeamsMessageId"])))
    senders = F.sort_array(_distinct_present(F.transform(threats, lambda e: e["SenderEmailAddress"])))
    # Null when no sender address was read (kql mode does not need the column); the addresses
    # stay null unless asked for (personal data). Samples are the smallest ids in sort order,
    # so reruns pick the same ones.
    senders_known = F.size(senders) > 0
    addresses = F.when(senders_known, F.slice(senders, 1, sample_size)) if include_senders else F.lit(None).cast("array<string>")
    columns = {
        "DistinctThreatMessages": F.size(ids).cast("long"),
        "DistinctSenders": F.when(senders_known, F.size(senders)).cast("long"),
        "SampleTeamsMessageIds": F.slice(ids, 1, sample_size),
        "SenderAddresses": addresses,
        "ThreatTypeCounts": _threat_type_counts(F.col("_Typed"), count_messages),
        "InboundSenderDomains": _sender_domain_counts(F.col("_Senders"), count_messages, TOP_SENDER_DOMAINS),
    }
    has_threats = F.size(threats) > 0
    return [F.when(has_threats, col).alias(name) for name, col in columns.items()]


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
    # One aggregation per domain, then array functions over its few threat rows: a groupBy and a
    # join per detail cost a shuffle each, about 1.5 s a run for a few hundred domains.
    day = F.col("Day")
    per_domain_df = days_df.groupBy(*_KEYS).agg(
        F.sort_array(
            F.collect_list(F.struct("Day", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats"))
        ).alias("DailyCounts"),
        F.min("FirstThreatSeen").alias("FirstThreatSeen"),
        F.max("LastThreatSeen").alias("LastThreatSeen"),
        F.flatten(
            F.collect_list(F.transform("InboundThreatRows", lambda r: F.struct(day.alias("Day"), *[r[f].alias(f) for f in _THREAT_FIELDS])))
        ).alias("_Threats"),
    )
    # The split types and sender domains in a projection of their own: each is then computed
    # once per threat row, not once per distinct type or domain it is compared with.
    prepared_df = per_domain_df.withColumns(
        {"_Typed": _typed_rows(F.col("_Threats")), "_Senders": _sender_rows(F.col("_Threats"), normalize)}
    )
    details = _details(count_messages, sample_size, include_senders)
    detail_df = prepared_df.select(*_KEYS, "DailyCounts", "FirstThreatSeen", "LastThreatSeen", *details)
    # A left join: a results row keeps its evidence row even if the counts have nothing to say.
    evidence_df = results_df.withColumnRenamed("SenderFromDomain", "Domain").join(detail_df, on=_KEYS, how="left")
    return evidence_df.withColumnRenamed("Domain", "SenderFromDomain").select(*EVIDENCE_COLUMNS)
