"""The pure core: rule af2b5dbd-4b66-47b4-9936-abfecb246ba1 as DataFrame -> DataFrame transforms.

Input is the canonical MessageEvents shape (see `schema.py`): `TenantId`, `Timestamp`,
`TeamsMessageId`, `SenderEmailAddress`, `RecipientAddresses` (the recipients'
RecipientSmtpAddress values), `IsExternalThread`, `IsOwnedThread` (booleans) and `ThreatTypes`.

The published query scans the table twice and joins. Because its left side is one row per
domain (innerunique changes nothing) and the right side keeps every row, the join is the same as
one aggregation with two conditional counts followed by "both counts are positive": that is how
it is computed here, from a single scan.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from partner_hunt.domains import address_domain, normalized, recipient_addresses

RESULT_COLUMNS = (
    "TenantId",
    "SenderFromDomain",
    "OutboundTeamsMessages",
    "IncomingTeamsMessagesWithThreats",
    "Bad_Traffic_Percentage",
)
COUNT_COLUMNS = ("OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats")


def utc_day(col: Column) -> Column:
    """The UTC calendar day of a timestamp, whatever the session time zone."""
    return F.date_from_unix_date(F.floor(F.unix_seconds(col) / F.lit(86_400)).cast("int"))


def has_threat(col: Column) -> Column:
    """KQL `isempty(ThreatTypes) == false`: anything but null or "" (a lone space is a threat)."""
    return col.isNotNull() & (col != F.lit(""))


def filter_window(events_df: DataFrame, start: datetime | None, end: datetime | None) -> DataFrame:
    """Keep rows with `start <= Timestamp < end`; a missing bound is open. Needs `Timestamp`."""
    if start is not None:
        events_df = events_df.filter(F.col("Timestamp") >= F.lit(start))
    if end is not None:
        events_df = events_df.filter(F.col("Timestamp") < F.lit(end))
    return events_df


def is_hunt_row() -> Column:
    """True for the rows either side of the query can use: external, owned or carrying a threat.

    Needs `IsExternalThread`, `IsOwnedThread`, `ThreatTypes`. A null flag fails both `==1` and
    `==0` in KQL, so such a row is on neither side: the condition is false there, never null.
    """
    condition = (
        F.col("IsExternalThread")
        & F.col("IsOwnedThread").isNotNull()
        & (F.col("IsOwnedThread") | has_threat(F.col("ThreatTypes")))
    )
    return F.coalesce(condition, F.lit(False))


def filter_hunt_rows(events_df: DataFrame) -> DataFrame:
    """Keep the rows either side of the query can use (see `is_hunt_row`)."""
    return events_df.filter(is_hunt_row())


FIRST_OF_ROW = "FirstOfRow"


def explode_hunt_domains(
    events_df: DataFrame, mode: str = "kql", normalize: bool = False, counted: Column | None = None
) -> DataFrame:
    """One row per (message, domain) the query counts, tagged with its side.

    Needs `RecipientAddresses`, `IsOwnedThread` (and `SenderEmailAddress` in `corrected` mode);
    gives `IsOutbound`, `Domain` and whichever of `TenantId`, `Timestamp`, `TeamsMessageId`,
    `QuarantineReason` the input has, so that a caller that never counts messages never reads
    their ids. In `kql` mode both sides take the recipients' domains, as the published query does;
    in `corrected` mode the inbound side takes the sender's domain, once per message.

    With `counted` (a condition on the input rows), every input row is kept: a row that is not
    counted, or yields no domain, becomes one row with null `Domain` and `IsOutbound`, and
    `FirstOfRow` is true on exactly one output row per input row. One aggregation can then count
    the rows read beside the domains, where a separate count or an `observe` would cost a pass.
    """
    outbound = F.col("IsOwnedThread")
    # Explode the addresses, then take each one's domain: no per-message array of domains is built.
    addresses = recipient_addresses(F.col("RecipientAddresses"))
    if mode == "kql":
        elements = addresses
    elif mode == "corrected":
        elements = F.when(outbound, addresses).otherwise(F.array(F.col("SenderEmailAddress")))
    else:
        raise ValueError(f"unknown mode {mode!r}")
    carried = [c for c in ("TenantId", "Timestamp", "TeamsMessageId", "QuarantineReason") if c in events_df.columns]
    if counted is None:
        return events_df.select(
            *carried,
            outbound.alias("IsOutbound"),
            # mv-expand drops an empty array but keeps null as one row: `recipient_addresses`
            # turned null into [null], so a plain explode now matches KQL on both.
            F.explode(elements).alias("Address"),
        ).select(*carried, "IsOutbound", address_domain(F.col("Address"), normalize).alias("Domain"))
    # An empty array yields no domain (mv-expand drops it) but its row was still read.
    yields = counted & (F.size(elements) > F.lit(0))
    return events_df.select(
        *carried,
        F.when(yields, outbound).alias("IsOutbound"),
        yields.alias("_Yields"),
        F.posexplode(F.when(yields, elements).otherwise(F.array(F.lit(None).cast("string")))).alias("_Pos", "Address"),
    ).select(
        *carried,
        "IsOutbound",
        F.when(F.col("_Yields"), address_domain(F.col("Address"), normalize)).alias("Domain"),
        (F.col("_Pos") == F.lit(0)).alias(FIRST_OF_ROW),
    )


def filter_excluded_domains(
    domains_df: DataFrame, exclude_domains: Iterable[str], normalize: bool = False
) -> DataFrame:
    """Drop the organisation's own domains (the rule's commented `RecipientDomain != ...` line).

    Needs `Domain`. KQL's `!=` is case-sensitive, so in parity mode the list is matched exactly;
    with normalisation on, the list is normalised like the domains.
    """
    excluded = [d for d in exclude_domains]
    if not excluded:
        return domains_df
    values = F.array(*[F.lit(d) for d in excluded])
    if normalize:
        values = F.transform(values, normalized)
    return domains_df.filter(~F.array_contains(values, F.col("Domain")))


def aggregate_sides(
    domains_df: DataFrame, keys: Iterable[str], count_messages: bool = False, extra: Iterable[Column] = ()
) -> DataFrame:
    """Count each side per key: (message x recipient) rows, or distinct messages.

    Needs `IsOutbound`, `TeamsMessageId`, `Timestamp` and the keys; gives the keys plus
    `OutboundTeamsMessages` and `IncomingTeamsMessagesWithThreats` (either may be 0).
    A message counts once per UTC day it appears on: that keeps counts additive over days, so
    any window equals the sum of its daily partials (an edit re-emitted on a later day counts there
    too, which is rare and documented).
    """
    outbound = F.col("IsOutbound")
    if count_messages:
        day = utc_day(F.col("Timestamp"))
        out_count = F.count_distinct(F.when(outbound, F.col("TeamsMessageId")), day)
        in_count = F.count_distinct(F.when(~outbound, F.col("TeamsMessageId")), day)
    else:
        out_count = F.count_if(outbound)
        in_count = F.count_if(~outbound)
    return domains_df.groupBy(*keys).agg(
        out_count.cast("long").alias("OutboundTeamsMessages"),
        in_count.cast("long").alias("IncomingTeamsMessagesWithThreats"),
        # Extra aggregates ride along in the same pass rather than costing a second scan.
        *extra,
    )


def filter_both_sides(counts_df: DataFrame) -> DataFrame:
    """The inner join: keep domains seen on both sides. Needs the two count columns."""
    return counts_df.filter(
        (F.col("OutboundTeamsMessages") > 0) & (F.col("IncomingTeamsMessagesWithThreats") > 0)
    )


def bad_traffic_ratio(inbound: Column, outbound: Column) -> Column:
    """`round(inbound / outbound, 2)` with half-away-from-zero midpoints, in exact integer maths.

    Rounding the double quotient would put 29/200 at 0.14 or 0.15 depending on the engine's
    binary representation; scaling in integers first gives the decimal answer (0.15) every time.
    Null when either count is null or the outbound count is not positive.
    """
    numerator = inbound.cast("long") * F.lit(200) + outbound.cast("long")
    denominator = outbound.cast("long") * F.lit(2)
    hundredths = (numerator - F.pmod(numerator, denominator)) / denominator
    return F.when(outbound > 0, (hundredths / F.lit(100.0)).cast("double"))


def with_ratio(results_df: DataFrame, include_ratio: bool = True) -> DataFrame:
    """Add `Bad_Traffic_Percentage` (a fraction despite its name; null when not requested)."""
    ratio = (
        bad_traffic_ratio(F.col("IncomingTeamsMessagesWithThreats"), F.col("OutboundTeamsMessages"))
        if include_ratio
        else F.lit(None).cast("double")
    )
    return results_df.withColumn("Bad_Traffic_Percentage", ratio)


def finalize_results(counts_df: DataFrame, include_ratio: bool = True) -> DataFrame:
    """From per-(tenant, domain) counts to the result rows: inner join, ratio, output names."""
    return (
        counts_df.transform(filter_both_sides)
        .withColumnRenamed("Domain", "SenderFromDomain")
        .transform(with_ratio, include_ratio)
        .select(*RESULT_COLUMNS)
    )


def hunt(
    events_df: DataFrame,
    *,
    mode: str = "kql",
    start: datetime | None = None,
    end: datetime | None = None,
    exclude_domains: Iterable[str] = (),
    normalize_domains: bool = False,
    count_messages: bool = False,
    include_ratio: bool = True,
) -> DataFrame:
    """Run the hunt over canonical events; one row per (TenantId, SenderFromDomain), unsorted."""
    return (
        events_df.transform(filter_window, start, end)
        .transform(filter_hunt_rows)
        .transform(explode_hunt_domains, mode, normalize_domains)
        .transform(filter_excluded_domains, exclude_domains, normalize_domains)
        .transform(aggregate_sides, ["TenantId", "Domain"], count_messages)
        .transform(finalize_results, include_ratio)
    )


def sort_results(results_df: DataFrame) -> DataFrame:
    """KQL `sort by OutboundTeamsMessages` (descending); ties broken by domain, then tenant."""
    return results_df.orderBy(
        F.col("OutboundTeamsMessages").desc(),
        F.col("SenderFromDomain").asc(),
        F.col("TenantId").asc(),
    )


def _latest_first(among: Column | None = None):
    keys = [F.col("TenantId"), F.col("TeamsMessageId"), utc_day(F.col("Timestamp"))]
    return Window.partitionBy(*keys, *([among] if among is not None else [])).orderBy(
        F.col("EditTime").desc_nulls_last(),
        F.col("Timestamp").desc_nulls_last(),
        F.col("ReportId").desc_nulls_last(),
    )


def with_latest_edit_flag(events_df: DataFrame, name: str = "IsLatestEdit", among: Column | None = None) -> DataFrame:
    """Flag the latest version of each message per UTC day: edits re-emit the message.

    Needs `TenantId`, `TeamsMessageId`, `EditTime`, `Timestamp`, `ReportId`. Per day, so that the
    result stays additive over daily partials. The ordering is total (ReportId last) so that the
    kept version never depends on partitioning. With `among`, versions are ranked separately per
    value of that column (e.g. good rows apart from quarantined ones).
    """
    return events_df.withColumn(name, F.row_number().over(_latest_first(among)) == F.lit(1))


def filter_latest_edits(events_df: DataFrame) -> DataFrame:
    """Keep only the latest version of each message per UTC day (see `with_latest_edit_flag`)."""
    return events_df.transform(with_latest_edit_flag, "_latest").filter(F.col("_latest")).drop("_latest")
