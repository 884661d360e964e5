"""What became of each partner's Teams messages after delivery, per day of the message (pure).

A partner's message is judged by `ThreatTypes` when it is delivered; Defender keeps learning after
that (`core/signals.py`). Each signal is credited to the message it is about, and so to the UTC
day the message was sent and to its sender's domain: a verdict that arrives days later changes
that old day's counts, which is what lets the daily partials be recomputed day by day.

Every count is additive over days except the distinct URL domains, which are kept as a set per
day (`UrlDomains`) and united over a window.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from partner_hunt.core.domains import address_domain
from partner_hunt.core.hunt import has_threat, utc_day

KEYS = ("TenantId", "TeamsMessageId")
# The per-day counts, in the signal partials' order (`tables.SIGNAL_PARTIALS_DDL`).
COUNTS = (
    "InboundMessages",
    "ThreatsAtDelivery",
    "RemovedAfterDelivery",
    "ThreatsAfterDelivery",
    "ThreatsKnownNow",
    "MessagesWithUrls",
    "Clicks",
    "ClicksAllowed",
    "ClicksBlocked",
    "ClicksThrough",
)
CLICK_ALLOWED = "ClickAllowed"
# `ClickBlocked`, and `ClickBlockedByTenantPolicy` for a URL the tenant's own list blocks.
CLICK_BLOCKED_PREFIX = "ClickBlocked"
TEAMS = "teams"


def inbound_messages(canonical_df: DataFrame, normalize: bool) -> DataFrame:
    """One row per inbound external Teams message: `TenantId`, `TeamsMessageId`, `Day` (UTC, of its
    first version), `Domain` (its sender's, as `corrected` mode counts it) and `ThreatAtDelivery`.

    Needs canonical rows (quarantined ones dropped) with `SenderEmailAddress` and `TeamsMessageId`.
    Inbound is an external thread the tenant does not own; an edited message is one message, at
    its first version's time, and carries a threat at delivery when any of its versions did.
    """
    inbound = F.coalesce(F.col("IsExternalThread") & ~F.col("IsOwnedThread"), F.lit(False)) & F.col("TeamsMessageId").isNotNull()
    return (
        canonical_df.filter(inbound)
        .groupBy(*KEYS)
        .agg(
            F.min("Timestamp").alias("SentAt"),
            F.min_by(address_domain(F.col("SenderEmailAddress"), normalize), F.col("Timestamp")).alias("Domain"),
            F.max(has_threat(F.col("ThreatTypes"))).alias("ThreatAtDelivery"),
        )
        .select(*KEYS, utc_day(F.col("SentAt")).alias("Day"), "SentAt", "Domain", "ThreatAtDelivery")
    )


def _is_threat_found() -> Column:
    """A post-delivery event that names a threat, or a purge that only a verdict triggers (ZAP)."""
    return has_threat(F.col("ThreatTypes")) | F.coalesce(F.upper(F.col("ActionType")).contains("ZAP"), F.lit(False))


def _post_event_columns() -> list[Column]:
    """A post-delivery event's `_Action` (its action, "" when none), `_Threat` (its threat types,
    when it names one) and `_Found` (`_is_threat_found`), which `removals` and `per_message` collect."""
    return [
        F.coalesce(F.col("ActionType"), F.lit("")).alias("_Action"),
        F.when(has_threat(F.col("ThreatTypes")), F.col("ThreatTypes")).alias("_Threat"),
        _is_threat_found().alias("_Found"),
    ]


def removals(post_df: DataFrame) -> DataFrame:
    """One row per message with post-delivery events: `Actions` and `Threats` found (sets), and
    whether any event names a threat (`ThreatFound`)."""
    return (
        post_df.select(*KEYS, *_post_event_columns())
        .groupBy(*KEYS)
        .agg(
            F.array_sort(F.collect_set("_Action")).alias("Actions"),
            F.array_sort(F.collect_set("_Threat")).alias("Threats"),
            F.max("_Found").alias("ThreatFound"),
        )
    )


def _url_domain() -> Column:
    """A URL row's domain, lower-cased: its `UrlDomain`, else the host of its `Url`."""
    return F.lower(F.trim(F.coalesce(F.col("UrlDomain"), F.parse_url(F.col("Url"), F.lit("HOST")))))


def attribute_clicks(clicks_df: DataFrame, urls_df: DataFrame) -> DataFrame:
    """Teams clicks credited to the message they most likely came from: one row per click, with
    the message's `TenantId`, `TeamsMessageId`, and `Allowed`, `Blocked`, `Through`, `ClickedAt`.

    No documented column of `UrlClickEvents` names the Teams message clicked. A click is credited to
    the newest message of the tenant that carried the same URL no later than the click; a click on
    a URL no earlier message carried is credited to none.
    """
    clicks = clicks_df.filter(F.lower(F.col("Workload")) == F.lit(TEAMS)).select(
        "TenantId",
        "Url",
        F.col("Timestamp").alias("ClickedAt"),
        # What identifies a click: one row of the table, whichever message it is credited to.
        F.struct("Timestamp", "Url", "AccountUpn", "ActionType", "IsClickedThrough", "ReportId").alias("Click"),
        (F.col("ActionType") == F.lit(CLICK_ALLOWED)).alias("Allowed"),
        F.coalesce(F.col("ActionType").startswith(CLICK_BLOCKED_PREFIX), F.lit(False)).alias("Blocked"),
        F.coalesce(F.col("IsClickedThrough"), F.lit(False)).alias("Through"),
    )
    carried = urls_df.select("TenantId", "Url", "TeamsMessageId", F.col("Timestamp").alias("CarriedAt")).filter(
        F.col("TeamsMessageId").isNotNull()
    )
    matched = clicks.join(carried, on=["TenantId", "Url"]).filter(F.col("CarriedAt") <= F.col("ClickedAt"))
    return matched.groupBy("TenantId", "Click").agg(
        F.max_by(F.col("TeamsMessageId"), F.struct("CarriedAt", "TeamsMessageId")).alias("TeamsMessageId"),
        F.first("Allowed").alias("Allowed"),
        F.first("Blocked").alias("Blocked"),
        F.first("Through").alias("Through"),
        F.first("ClickedAt").alias("ClickedAt"),
    ).drop("Click")


def per_message(
    messages_df: DataFrame, post_df: DataFrame | None, urls_df: DataFrame | None, clicks_df: DataFrame | None
) -> DataFrame:
    """The inbound messages (`inbound_messages`), each with what the signals say of it: `Actions`
    and `Threats` (sets; null without a post-delivery event), `ThreatFound`, `UrlDomains` (null
    when it carried no URL) and its `Clicks`, `ClicksAllowed`, `ClicksBlocked`, `ClicksThrough`.
    A signal about a message that is not among them is left out; a missing table is no signal.
    """
    # Each signal's columns, null on the rows of the others.
    none = {
        "_Post": "boolean",
        "_Action": "string",
        "_Threat": "string",
        "_Found": "boolean",
        "_Url": "boolean",
        "_UrlDomain": "string",
        "_Click": "boolean",
        "_Allowed": "boolean",
        "_Blocked": "boolean",
        "_Through": "boolean",
    }
    rows = messages_df.select(*KEYS, F.lit(True).alias("_Message"), "Day", "Domain", "ThreatAtDelivery").withColumns(
        {c: F.lit(None).cast(t) for c, t in none.items()}
    )
    # The signals ride in one aggregation with the messages: joining each table's own aggregation
    # to them cost a shuffle, and a Spark job under AQE, per table.
    parts = []
    if post_df is not None:
        parts.append(
            post_df.select(*KEYS, F.lit(True).alias("_Post"), *_post_event_columns())
        )
    if urls_df is not None:
        parts.append(urls_df.select(*KEYS, F.lit(True).alias("_Url"), _url_domain().alias("_UrlDomain")))
    if clicks_df is not None and urls_df is not None:
        parts.append(
            attribute_clicks(clicks_df, urls_df).select(
                *KEYS,
                F.lit(True).alias("_Click"),
                F.col("Allowed").alias("_Allowed"),
                F.col("Blocked").alias("_Blocked"),
                F.col("Through").alias("_Through"),
            )
        )
    for part in parts:
        rows = rows.unionByName(part, allowMissingColumns=True)

    def when_any(flag: str, value: Column) -> Column:
        return F.when(F.count_if(F.col(flag)) > F.lit(0), value)

    return (
        rows.groupBy(*KEYS)
        .agg(
            F.max("_Message").alias("_Message"),
            F.max("Day").alias("Day"),
            F.max("Domain").alias("Domain"),
            F.max("ThreatAtDelivery").alias("ThreatAtDelivery"),
            when_any("_Post", F.array_sort(F.collect_set("_Action"))).alias("Actions"),
            when_any("_Post", F.array_sort(F.collect_set("_Threat"))).alias("Threats"),
            F.max("_Found").alias("ThreatFound"),
            when_any("_Url", F.array_sort(F.collect_set("_UrlDomain"))).alias("UrlDomains"),
            F.count_if("_Click").alias("Clicks"),
            F.count_if("_Allowed").alias("ClicksAllowed"),
            F.count_if("_Blocked").alias("ClicksBlocked"),
            F.count_if("_Through").alias("ClicksThrough"),
        )
        .filter(F.coalesce(F.col("_Message"), F.lit(False)))
        .drop("_Message")
    )


def daily_counts(
    messages_df: DataFrame, post_df: DataFrame | None, urls_df: DataFrame | None, clicks_df: DataFrame | None
) -> DataFrame:
    """Per (TenantId, Day, Domain) of the inbound messages (`inbound_messages`): `COUNTS`,
    `RemovedByAction` and `RemovedByThreat` (messages per action and per threat type found after
    delivery), and `UrlDomains`. A missing signal table counts as no signal.
    """
    joined = per_message(messages_df, post_df, urls_df, clicks_df)
    removed = F.col("Actions").isNotNull()
    after = ~F.col("ThreatAtDelivery") & F.coalesce(F.col("ThreatFound"), F.lit(False))
    day_keys = ["TenantId", "Day", "Domain"]
    no_labels = F.array().cast("array<string>")
    # One aggregation: the per-label maps are counted from each day's collected labels, so the
    # joined messages are read once (a second aggregation and its join read them again).
    return joined.groupBy(*day_keys).agg(
        F.count(F.lit(1)).cast("long").alias("InboundMessages"),
        F.count_if("ThreatAtDelivery").cast("long").alias("ThreatsAtDelivery"),
        F.count_if(removed).cast("long").alias("RemovedAfterDelivery"),
        F.count_if(after).cast("long").alias("ThreatsAfterDelivery"),
        F.count_if(F.col("ThreatAtDelivery") | F.coalesce(F.col("ThreatFound"), F.lit(False))).cast("long").alias("ThreatsKnownNow"),
        F.count_if(F.col("UrlDomains").isNotNull()).cast("long").alias("MessagesWithUrls"),
        *[F.coalesce(F.sum(c), F.lit(0)).cast("long").alias(c) for c in ("Clicks", "ClicksAllowed", "ClicksBlocked", "ClicksThrough")],
        _label_counts(F.flatten(F.collect_list(F.coalesce("Actions", no_labels)))).alias("RemovedByAction"),
        _label_counts(F.flatten(F.collect_list(F.coalesce("Threats", no_labels)))).alias("RemovedByThreat"),
        F.array_sort(F.array_distinct(F.flatten(F.collect_list(F.coalesce("UrlDomains", no_labels))))).alias("UrlDomains"),
    )


def _label_counts(labels: Column) -> Column:
    """How many times each label occurs in an array of labels (one per message), as a map."""
    distinct = F.array_sort(F.array_distinct(labels))
    entries = F.transform(
        distinct, lambda label: F.struct(label.alias("Label"), F.size(F.filter(labels, lambda x: x == label)).cast("long").alias("Messages"))
    )
    return F.map_from_entries(entries)


# The threat type a message gets in `known-now` mode when a purge, but no event, names its threat.
FOUND_AFTER_DELIVERY = "FoundAfterDelivery"


def with_threats_known_now(events_df: DataFrame, post_df: DataFrame) -> DataFrame:
    """`events_df` with `ThreatTypes` as known now (`known-now` mode): a message clean at delivery
    whose post-delivery events found a threat carries their threat types (`FOUND_AFTER_DELIVERY`
    where only a ZAP action says so). Needs `TenantId`, `TeamsMessageId`, `ThreatTypes`; keeps
    every row and column."""
    found = removals(post_df).filter(F.col("ThreatFound")).select(
        *KEYS,
        F.when(F.size("Threats") > 0, F.array_join("Threats", ", ")).otherwise(F.lit(FOUND_AFTER_DELIVERY)).alias("_FoundAfter"),
    )
    threats = F.col("ThreatTypes")
    return (
        events_df.join(found, on=list(KEYS), how="left")
        .withColumn("ThreatTypes", F.when(has_threat(threats), threats).otherwise(F.coalesce(F.col("_FoundAfter"), threats)))
        .select(*events_df.columns)
    )
