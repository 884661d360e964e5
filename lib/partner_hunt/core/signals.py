"""The Teams signals Defender records beside MessageEvents, as flat tables (pure).

Three advanced hunting tables say what became of a Teams message after delivery
(docs/signal-sources.md gives each one's columns and sources):

- `MessagePostDeliveryEvents`: a message removed after delivery (zero-hour auto purge, a manual
  remediation), with the threat found; joined to its message by `TeamsMessageId`;
- `MessageUrlInfo`: each URL a Teams message carried; joined by `TeamsMessageId`;
- `UrlClickEvents`: each Safe Links click, Teams ones with `Workload` "Teams". No documented
  column names the Teams message clicked (see `partner_signals.attribute_clicks`).

The ingest types each from the record's properties as it types MessageEvents: times and flags
with the contract's rules, nested values kept as their JSON text, unknown properties in
`OtherProperties`. A record that cannot be placed in time, or whose flags or recipients cannot be
read, is quarantined with the contract's reasons.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from partner_hunt.core import schema, values

TIME, TEXT, FLAG, RECIPIENT_LIST = "timestamp", "text", "flag", "recipients"


@dataclass(frozen=True)
class SignalTable:
    """One of Defender's tables kept beside MessageEvents: its columns and where it lands."""

    key: str  # the config's name for it (`signals.<key>`)
    table: str  # Defender's table name
    suffix: str  # the flat table's default name: beside the MessageEvents table, `<table>_<suffix>`
    columns: tuple[tuple[str, str], ...]  # (property, how it is typed), as Microsoft lists them

    @property
    def category(self) -> str:
        """The record's `category` in the Streaming API's export."""
        return f"AdvancedHunting-{self.table}"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _kind in self.columns)


POST_DELIVERY = SignalTable(
    "post_delivery",
    "MessagePostDeliveryEvents",
    "post_delivery_events",
    (
        ("Timestamp", TIME),
        ("TeamsMessageId", TEXT),
        ("Action", TEXT),
        ("ActionType", TEXT),
        ("ActionTrigger", TEXT),
        ("ActionResult", TEXT),
        ("SenderEmailAddress", TEXT),
        ("RecipientDetails", RECIPIENT_LIST),
        ("ThreatTypes", TEXT),
        ("ConfidenceLevel", TEXT),
        ("DetectionMethods", TEXT),
        ("LatestDeliveryLocation", TEXT),
        ("IsExternalThread", FLAG),
        ("SafetyTip", TEXT),
        ("ReportId", TEXT),
    ),
)
URL_INFO = SignalTable(
    "url_info",
    "MessageUrlInfo",
    "message_url_info",
    (
        ("Timestamp", TIME),
        ("TeamsMessageId", TEXT),
        ("Url", TEXT),
        ("UrlDomain", TEXT),
        ("UrlLocation", TEXT),
        ("ThreatTypes", TEXT),
        ("ReportId", TEXT),
    ),
)
URL_CLICKS = SignalTable(
    "url_clicks",
    "UrlClickEvents",
    "url_click_events",
    (
        ("Timestamp", TIME),
        ("Url", TEXT),
        ("ActionType", TEXT),
        ("AccountUpn", TEXT),
        ("Workload", TEXT),
        ("NetworkMessageId", TEXT),
        ("ThreatTypes", TEXT),
        ("DetectionMethods", TEXT),
        ("IPAddress", TEXT),
        ("IsClickedThrough", FLAG),
        ("UrlChain", TEXT),
        ("AppName", TEXT),
        ("AppVersion", TEXT),
        ("SourceId", TEXT),
        ("ReportId", TEXT),
    ),
)
SIGNAL_TABLES = (POST_DELIVERY, URL_INFO, URL_CLICKS)
SIGNAL_CATEGORIES = tuple(t.category for t in SIGNAL_TABLES)
# Columns of a Log Analytics copy that describe the export, not the event (as in `landed`).
_EXPORT_COLUMNS = ("TenantId", "Type", "TimeGenerated", "_ItemId", "_Internal_WorkspaceResourceId")


def time_of(props: Column) -> tuple[Column, Column]:
    """(Timestamp, is-bad) of a signal record: its `Timestamp`, or in a Log Analytics copy, which
    lists none, its `TimeGenerated` (docs/signal-sources.md)."""
    return values.utc_instant_of(F.coalesce(props["Timestamp"], props["TimeGenerated"]))


def _typed(props: Column, name: str, kind: str) -> tuple[Column, Column]:
    """(value, is-bad) of one property typed as `kind`."""
    if name == "Timestamp":
        return time_of(props)
    if kind == TIME:
        return values.utc_instant_of(props[name])
    if kind == FLAG:
        return values.flag_of_text(props[name])
    if kind == RECIPIENT_LIST:
        return values.recipients_of_text(props[name])
    return props[name], F.lit(False)


def quarantine_reason(category: Column, props: Column) -> Column:
    """Why a signal record cannot be kept (the contract's reasons), else null; null for any
    other category. The tenant is checked with MessageEvents' own records (`landed`)."""
    reason = F.lit(None).cast("string")
    for table in reversed(SIGNAL_TABLES):
        bad = {kind: F.lit(False) for kind in (TIME, FLAG, RECIPIENT_LIST)}
        for name, kind in table.columns:
            if kind in bad:
                bad[kind] = bad[kind] | _typed(props, name, kind)[1]
        own = (
            F.when(bad[TIME], F.lit(schema.BAD_TIMESTAMP))
            .when(bad[FLAG], F.lit(schema.BAD_FLAG))
            .when(bad[RECIPIENT_LIST], F.lit(schema.BAD_RECIPIENTS))
        )
        reason = F.when(category == F.lit(table.category), own).otherwise(reason)
    return reason


def to_signal_rows(events_df: DataFrame, table: SignalTable) -> DataFrame:
    """The records of `table` among an ingest's typed lines (`landed.to_message_events`), as its
    flat rows: `TenantId`, the table's columns typed, `OtherProperties`, `IngestKey`, `File`,
    `LineNumber`.

    `IngestKey` is a hash of the record's properties: Microsoft documents no column unique per
    record in these tables (a click and its click-through share a `ReportId`), and a record
    delivered twice carries the same properties.
    """
    props = F.col("SignalProperties")
    known = F.array(*[F.lit(n) for n in dict.fromkeys((*table.names, *_EXPORT_COLUMNS))])
    return events_df.filter(
        (F.col("Category") == F.lit(table.category)) & F.col("QuarantineReason").isNull()
    ).select(
        "TenantId",
        *[_typed(props, name, kind)[0].alias(name) for name, kind in table.columns],
        F.map_filter(props, lambda k, _v: ~F.array_contains(known, k)).alias("OtherProperties"),
        F.concat(F.lit("sha256:"), F.sha2(F.to_json(props), 256)).alias("IngestKey"),
        "File",
        "LineNumber",
    )
