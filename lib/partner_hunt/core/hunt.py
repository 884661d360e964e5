"""The pure core: rule af2b5dbd-4b66-47b4-9936-abfecb246ba1 as DataFrame -> DataFrame transforms.

Input is the canonical MessageEvents shape (see `schema.py`): `TenantId`, `Timestamp`,
`TeamsMessageId`, `SenderEmailAddress`, `RecipientAddresses` (the recipients'
RecipientSmtpAddress values), `IsExternalThread`, `IsOwnedThread` (booleans) and `ThreatTypes`.

The published query scans the table twice and joins. Because its left side is one row per
domain (innerunique changes nothing) and the right side keeps every row, the join is the same as
one aggregation with two conditional counts followed by "both counts are positive": that is how
it is computed here, from a single scan.

`count_domains` is the one hunt: `run` (through `count_window`), the daily partials, the benchmark
and the parity tests all count through it; `window_results` turns a window's counts into result rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window, WindowSpec
from pyspark.sql import functions as F

from partner_hunt.core.domains import address_domain, recipient_addresses
from partner_hunt.core.exclusions import drop_excluded_domains, drop_tenant_domains
from partner_hunt.core.options import CountOptions, FinishOptions
from partner_hunt.core.tables import RESULT_COLUMNS

FIRST_OF_ROW = "FirstOfRow"
EVIDENCE_KEY = "_EvidenceKey"
RECIPIENT_ROWS, ROWS_READ, ROWS_QUARANTINED = "RecipientRows", "RowsRead", "RowsQuarantined"
ACCOUNTING = (RECIPIENT_ROWS, ROWS_READ, ROWS_QUARANTINED)


def utc_day(col: Column) -> Column:
    """The UTC calendar day of a timestamp, whatever the session time zone."""
    return F.date_from_unix_date(F.floor(F.unix_seconds(col) / F.lit(86_400)).cast("int"))


def has_threat(col: Column) -> Column:
    """KQL `isempty(ThreatTypes) == false`: anything but null or "" (a lone space is a threat)."""
    return col.isNotNull() & (col != F.lit(""))


def in_window(col: Column, start: datetime | None, end: datetime | None) -> Column:
    """`start <= col < end` as one condition; a missing bound is open."""
    cond = F.lit(True)
    if start is not None:
        cond = cond & (col >= F.lit(start))
    if end is not None:
        cond = cond & (col < F.lit(end))
    return cond


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


def explode_hunt_domains(
    events_df: DataFrame, mode: str, normalize: bool, counted: Column, carry: Sequence[str] = ()
) -> DataFrame:
    """One row per (message, domain) the query counts, tagged with its side, plus one row for
    every input row that is not counted or yields no domain.

    Needs `RecipientAddresses`, `IsOwnedThread` (and `SenderEmailAddress` in `corrected` mode);
    gives `IsOutbound`, `Domain`, `FirstOfRow`, the `carry` columns and whichever of `TenantId`,
    `Timestamp`, `TeamsMessageId`, `QuarantineReason` the input has. In `kql` mode both sides take
    the recipients' domains, as the published query does; in `corrected` mode the inbound side
    takes the sender's domain, once per message.

    A row that is not `counted` keeps one output row with null `Domain` and `IsOutbound`, and
    `FirstOfRow` is true on exactly one output row per input row: one aggregation then counts the
    rows read beside the domains, where a separate count or an `observe` would cost a pass.
    """
    outbound = F.col("IsOwnedThread")
    # Explode the addresses, then take each one's domain: no per-message array of domains is built.
    addresses = recipient_addresses(F.col("RecipientAddresses"))
    if mode == "kql":
        elements = addresses
    elif mode in ("corrected", "known-now"):
        elements = F.when(outbound, addresses).otherwise(F.array(F.col("SenderEmailAddress")))
    else:
        raise ValueError(f"unknown mode {mode!r}")
    base = ("TenantId", "Timestamp", "TeamsMessageId", "QuarantineReason")
    carried = [c for c in base if c in events_df.columns and c not in carry] + list(carry)
    # mv-expand drops an empty array (no domain, but the row was still read) and keeps null as one
    # row: `recipient_addresses` turned null into [null], whose domain is "".
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


def counted_rows(events_df: DataFrame, dedupe_edits: bool) -> tuple[DataFrame, Column]:
    """The rows the hunt counts, as a condition, with the edit flag it needs added to the frame.

    Quarantined rows (a non-null `QuarantineReason`, when the column exists) are read, not counted.
    With `dedupe_edits`, older versions of an edited message are flagged rather than dropped,
    ranked among good rows only, so a malformed later version never hides the good one.
    """
    good = F.col("QuarantineReason").isNull() if "QuarantineReason" in events_df.columns else F.lit(True)
    counted = good & is_hunt_row()
    if dedupe_edits:
        events_df = events_df.transform(with_latest_edit_flag, "_IsLatestEdit", good)
        counted = counted & F.col("_IsLatestEdit")
    return events_df, counted


def accounting_columns(quarantined: Column) -> list[Column]:
    """Aggregates that ride along with the domain counts: every input row reaches that aggregation
    once (see `explode_hunt_domains`), so no second pass is needed to count rows read."""
    first = F.col(FIRST_OF_ROW)
    return [
        F.count_if(F.col("Domain").isNotNull()).alias(RECIPIENT_ROWS),
        F.count_if(first).alias(ROWS_READ),
        F.count_if(first & quarantined).alias(ROWS_QUARANTINED),
    ]


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
        *extra,
    )


def count_domains(
    events_df: DataFrame,
    *,
    mode: str = "kql",
    normalize: bool = False,
    count_messages: bool = False,
    dedupe_edits: bool = False,
    by_day: bool = False,
    evidence: bool = False,
) -> DataFrame:
    """The hunt: both sides' counts per (TenantId, Domain), or per (TenantId, Day, Domain).

    Needs canonical events (with `QuarantineReason` when some rows are quarantined); gives the keys,
    the two counts and the `ACCOUNTING` columns, plus `FirstSeen`/`LastSeen` per day. Exclusions
    are not applied: they depend only on the keys, so `finish_results` applies them to these few
    rows (and partials never need a recompute when they change). Rows that are read but not
    counted form one group per tenant (and day) with a null `Domain`, which the join drops.

    With `evidence` (per day only; needs `TeamsMessageId`, and `SenderEmailAddress` if known), the
    same pass also keeps what `evidence.evidence_from_counts` needs: the day's first and last
    inbound threat (`FirstThreatSeen`, `LastThreatSeen`) and its inbound-threat rows
    (`InboundThreatRows`: id, threat types, sender, and how many rows carry them), a small slice
    of the source, so the evidence needs no second pass.
    """
    if evidence and not by_day:
        raise ValueError("count_domains: evidence is kept per day (by_day=True)")
    hunted_df, counted = counted_rows(events_df, dedupe_edits)
    carry: tuple[str, ...] = ()
    if evidence:
        hunted_df, carry = _with_evidence_key(hunted_df, counted, count_messages), (EVIDENCE_KEY,)
    domains_df = hunted_df.transform(explode_hunt_domains, mode, normalize, counted, carry)
    has_reason = "QuarantineReason" in domains_df.columns
    extra = accounting_columns(F.col("QuarantineReason").isNotNull() if has_reason else F.lit(False))
    keys = ["TenantId", "Domain"]
    if by_day:
        domains_df = domains_df.withColumn("Day", utc_day(F.col("Timestamp")))
        keys = ["TenantId", "Day", "Domain"]
        extra = [F.min("Timestamp").alias("FirstSeen"), F.max("Timestamp").alias("LastSeen"), *extra]
    if evidence:
        return _count_with_evidence(domains_df, keys, count_messages, extra)
    return domains_df.transform(aggregate_sides, keys, count_messages, extra)


def _with_evidence_key(hunted_df: DataFrame, counted: Column, count_messages: bool) -> DataFrame:
    """`EVIDENCE_KEY` on every counted message of the inbound side: (id, threat types, sender).

    Built once per message before the explode, and null on every other row: the explode then
    copies one null into each outbound recipient row and uncounted row instead of three strings
    (7.4 s against 6.7 s for a 16M-row window's counts, docs/performance.md). The id stays a
    column of its own only where the counts need it (distinct messages).
    """
    sender = F.col("SenderEmailAddress") if "SenderEmailAddress" in hunted_df.columns else F.lit(None).cast("string")
    key = F.when(counted & ~F.col("IsOwnedThread"), F.struct("TeamsMessageId", "ThreatTypes", sender.alias("SenderEmailAddress")))
    keyed_df = hunted_df.withColumn(EVIDENCE_KEY, key)
    return keyed_df if count_messages else keyed_df.drop("TeamsMessageId")


def _count_with_evidence(domains_df: DataFrame, keys: list[str], count_messages: bool, extra: list[Column]) -> DataFrame:
    """`aggregate_sides` per day plus the evidence's inbound-threat rows, in two aggregations.

    The first groups the exploded rows by the keys and, for inbound-threat rows, by (id, threat
    types, sender) too, with hash-aggregatable functions only (a `collect_list` over the source's
    rows would fall back to sort-based aggregation); the second, over its far fewer rows, sums
    them per key and lists the inbound keys with their row count (`Rows`).
    """
    inbound = ~F.col("IsOutbound")
    # IsOutbound is null on rows the hunt does not count, so they get no evidence key.
    key = F.when(inbound, F.col(EVIDENCE_KEY))
    ts = F.col("Timestamp")
    first_df = domains_df.withColumn("_Ev", key).transform(
        aggregate_sides,
        [*keys, "_Ev"],
        count_messages,
        [
            *extra,
            F.count_if(inbound).alias("_Rows"),
            F.min(F.when(inbound, ts)).alias("FirstThreatSeen"),
            F.max(F.when(inbound, ts)).alias("LastThreatSeen"),
        ],
    )
    ev = F.col("_Ev")
    if count_messages:
        # Distinct inbound messages of the day: one id may sit under several evidence keys.
        incoming = F.size(F.array_distinct(F.collect_list(ev["TeamsMessageId"])))
    else:
        incoming = F.sum("IncomingTeamsMessagesWithThreats")
    sums = [F.sum(name).cast("long").alias(name) for name in ACCOUNTING]
    return first_df.groupBy(*keys).agg(
        F.sum("OutboundTeamsMessages").cast("long").alias("OutboundTeamsMessages"),
        incoming.cast("long").alias("IncomingTeamsMessagesWithThreats"),
        F.min("FirstSeen").alias("FirstSeen"),
        F.max("LastSeen").alias("LastSeen"),
        *sums,
        F.min("FirstThreatSeen").alias("FirstThreatSeen"),
        F.max("LastThreatSeen").alias("LastThreatSeen"),
        F.collect_list(
            F.when(ev.isNotNull(), F.struct(ev["TeamsMessageId"], ev["ThreatTypes"], ev["SenderEmailAddress"], F.col("_Rows").alias("Rows")))
        ).alias("InboundThreatRows"),
    )


def keep_both_sides(counts_df: DataFrame) -> DataFrame:
    """The inner join: keep domains seen on both sides. Needs the two count columns."""
    return counts_df.filter(
        (F.col("OutboundTeamsMessages") > 0) & (F.col("IncomingTeamsMessagesWithThreats") > 0)
    )


def bad_traffic_ratio(inbound: Column, outbound: Column) -> Column:
    """Kusto's `round(todouble(inbound) / outbound, 2)`: the double quotient, scaled, rounded.

    Kusto divides in double precision and then rounds the scaled double half away from zero, so
    29/200 (0.14499999999999999 as a double) gives 0.14 and 1/8 (exact) gives 0.13; see
    docs/kql-parity.md. Spark's `round` on a double rounds half up on the scaled value, which is
    the same thing for these non-negative ratios. Null when the outbound count is not positive.
    """
    quotient = inbound.cast("double") / outbound.cast("double")
    return F.when(outbound > 0, F.round(quotient * F.lit(100.0), 0) / F.lit(100.0))


def finish_results(
    counts_df: DataFrame,
    *,
    exclude: Iterable[str] = (),
    tenant_exclude: Mapping[str, Sequence[str]] | None = None,
    normalize: bool = False,
    include_ratio: bool = True,
) -> DataFrame:
    """From `count_domains` counts to result rows: exclusions, the inner join, the ratio, KQL's names."""
    ratio = (
        bad_traffic_ratio(F.col("IncomingTeamsMessagesWithThreats"), F.col("OutboundTeamsMessages"))
        if include_ratio
        else F.lit(None).cast("double")
    )
    return (
        counts_df.transform(drop_excluded_domains, exclude, normalize)
        .transform(drop_tenant_domains, tenant_exclude, normalize)
        .transform(keep_both_sides)
        .withColumnRenamed("Domain", "SenderFromDomain")
        .withColumn("Bad_Traffic_Percentage", ratio)
        .select(*RESULT_COLUMNS)
    )


def count_window(events_df: DataFrame, options: CountOptions, evidence: bool) -> DataFrame:
    """The counts `run` takes from a window's canonical events (quarantined rows flagged).

    With `evidence`, per (TenantId, Day, Domain) with the evidence's inbound-threat rows, so the
    evidence comes from this one pass; otherwise per (TenantId, Domain). `window_results` takes both.
    """
    return _count(events_df, options, by_day=evidence, evidence=evidence)


def count_days(events_df: DataFrame, options: CountOptions) -> DataFrame:
    """The counts the daily partials keep: per (TenantId, Day, Domain), with the row accounting."""
    return _count(events_df, options, by_day=True, evidence=False)


def _count(events_df: DataFrame, options: CountOptions, by_day: bool, evidence: bool) -> DataFrame:
    return count_domains(
        events_df,
        mode=options.mode,
        normalize=options.normalize,
        count_messages=options.count_messages,
        dedupe_edits=options.dedupe_edits,
        by_day=by_day,
        evidence=evidence,
    )


def per_domain(counts_df: DataFrame) -> DataFrame:
    """Counts summed over days when they are per day (`Day` column); per-domain counts as they are."""
    if "Day" not in counts_df.columns:
        return counts_df
    # The counts are additive over UTC days (see `aggregate_sides`), so the sums are exact.
    return counts_df.groupBy("TenantId", "Domain").agg(
        F.sum("OutboundTeamsMessages").cast("long").alias("OutboundTeamsMessages"),
        F.sum("IncomingTeamsMessagesWithThreats").cast("long").alias("IncomingTeamsMessagesWithThreats"),
    )


def window_results(counts_df: DataFrame, finish: FinishOptions) -> DataFrame:
    """One window's result rows from `count_window` (or rolled-up partial) counts, unsorted."""
    return counts_df.transform(per_domain).transform(
        finish_results,
        exclude=finish.exclude,
        tenant_exclude=finish.tenant_exclude,
        normalize=finish.normalize,
        include_ratio=finish.include_ratio,
    )


def with_run_columns(
    results_df: DataFrame, window: tuple[datetime | None, datetime | None], mode: str, run_id: str, computed_at: datetime
) -> DataFrame:
    """Result rows of one window with the results table's window, mode and run columns."""
    return results_df.select(
        *RESULT_COLUMNS,
        F.lit(window[0]).cast("timestamp").alias("WindowStart"),
        F.lit(window[1]).cast("timestamp").alias("WindowEnd"),
        F.lit(mode).alias("Mode"),
        F.lit(run_id).alias("RunId"),
        F.lit(computed_at).cast("timestamp").alias("ComputedAt"),
    )


def sort_results(results_df: DataFrame) -> DataFrame:
    """KQL `sort by OutboundTeamsMessages` (descending); ties broken by domain, then tenant."""
    return results_df.orderBy(
        F.col("OutboundTeamsMessages").desc(),
        F.col("SenderFromDomain").asc(),
        F.col("TenantId").asc(),
    )


def _latest_first(among: Column | None = None) -> WindowSpec:
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
