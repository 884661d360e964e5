"""MessageEvents as Defender delivers it, turned into the flat table every command reads (pure).

Two routes write JSON Lines (docs/ingest.md gives each one's source):

- Defender's Streaming API to a storage account: one envelope per line (`time`, `tenantId`,
  `category`, `properties`, ...), the table's columns inside `properties`;
- a Log Analytics data export: the table's columns flat on each line, with `TimeGenerated`,
  `Type` and a `TenantId` that is the workspace's id, not the Entra tenant's.

Both are parsed the same way: the record's properties as a `map<string,string>`, in which a nested
value (an array of recipients, a detection object) is kept as its JSON text and a JSON `null` is a
null. The contract's columns are then typed from the map with the same rules the hunt's own
contract uses (`schema.py`), every other known property is kept as a string column, and an
unknown one in `OtherProperties`. A record that cannot be trusted keeps a `QuarantineReason`.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from partner_hunt.core import schema, signals, values

MESSAGE_EVENTS_CATEGORY = "AdvancedHunting-MessageEvents"
LOG_ANALYTICS_TYPE = "MessageEvents"

# What identifies one event delivered more than once (`to_message_events` gives `IngestKey`).
INGEST_KEYS = ("TenantId", "IngestKey")

# Quarantine reasons of the ingest, beside the contract's own (`schema.BAD_TIMESTAMP`, ...).
NOT_JSON = "NOT_JSON"
NOT_A_RECORD = "NOT_A_RECORD"

# The contract's columns a record carries in its properties, typed as the contract reads them.
TYPED = (
    "Timestamp",
    "TeamsMessageId",
    "ReportId",
    "SenderEmailAddress",
    "RecipientDetails",
    "IsExternalThread",
    "IsOwnedThread",
    "ThreatTypes",
    "LastEditedTime",
)
# The other known properties, kept as their own string columns: the live capture's names and the
# Learn page's (`MessageType` and `MessageFormatType` name one value, docs/ingest.md).
KEPT_AS_TEXT = (
    "SenderDisplayName",
    "SenderObjectId",
    "SenderType",
    "MessageId",
    "ParentMessageId",
    "GroupId",
    "GroupName",
    "ThreadId",
    "ThreadName",
    "ThreadType",
    "ThreadSubType",
    "MessageType",
    "MessageSubtype",
    "MessageFormatType",
    "MessageFormatSubtype",
    "MessageVersion",
    "Subject",
    "MessageSubject",
    "DetectionMethods",
    "ConfidenceLevel",
    "DeliveryAction",
    "DeliveryLocation",
    "SafetyTip",
)
# A property the two sources spell apart only by case: Delta's columns are case-insensitive, so
# it is one column, whichever spelling the record used.
SPELLINGS = {"ThreadSubType": ("ThreadSubType", "ThreadSubtype")}
# Columns of a Log Analytics record that describe the export, not the event.
LOG_ANALYTICS_COLUMNS = ("TenantId", "Type", "TimeGenerated", "_ItemId", "_Internal_WorkspaceResourceId")

ENVELOPE = T.StructType(
    [
        T.StructField("time", T.StringType()),
        T.StructField("tenantId", T.StringType()),
        T.StructField("category", T.StringType()),
        T.StructField("operationName", T.StringType()),
        T.StructField("_TimeReceivedBySvc", T.StringType()),
        T.StructField("Tenant", T.StringType()),
        T.StructField("properties", T.MapType(T.StringType(), T.StringType())),
        T.StructField("_corrupt_record", T.StringType()),
    ]
)
FLAT = "map<string,string>"

# The parsed form both routes share (`parse_storage_lines`, `parse_log_analytics_lines`).
PARSED_COLUMNS = ("File", "LineNumber", "Line", "Category", "TenantId", "Properties", "Envelope", "QuarantineReason")


# `from_json` gives a struct of nulls, not a null, for text that is not JSON: the text it could
# not parse is kept in this field instead, so one parse tells both.
CORRUPT = "_corrupt_record"
_PERMISSIVE = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}


def _unreadable(line: Column, corrupt: Column) -> Column:
    """`NOT_A_RECORD` for a blank line, `NOT_JSON` for one that is not a JSON object, else null."""
    text = F.trim(line)
    return F.when(text == F.lit(""), F.lit(NOT_A_RECORD)).when(corrupt.isNotNull() | ~F.startswith(text, F.lit("{")), F.lit(NOT_JSON))


def parse_storage_lines(lines_df: DataFrame) -> DataFrame:
    """Lines of the Streaming API's storage export, parsed: `PARSED_COLUMNS`.

    Needs `File`, `LineNumber`, `Line` (without its line end). `Envelope` keeps the envelope's own
    fields (`time`, `_TimeReceivedBySvc`, `operationName`, `Tenant`) as text. A line that is not a
    JSON object gets `NOT_JSON` (`NOT_A_RECORD` when blank).
    """
    parsed = F.from_json(F.col("Line"), ENVELOPE, _PERMISSIVE)
    return lines_df.select(
        "File",
        "LineNumber",
        "Line",
        parsed["category"].alias("Category"),
        parsed["tenantId"].alias("TenantId"),
        parsed["properties"].alias("Properties"),
        F.struct(
            parsed["time"].alias("time"),
            parsed["_TimeReceivedBySvc"].alias("_TimeReceivedBySvc"),
            parsed["operationName"].alias("operationName"),
            parsed["Tenant"].alias("Tenant"),
        ).alias("Envelope"),
        _unreadable(F.col("Line"), parsed[CORRUPT]).alias("QuarantineReason"),
    )


def parse_log_analytics_lines(lines_df: DataFrame, workspace_tenants: Mapping[str, str]) -> DataFrame:
    """Lines of a Log Analytics data export, parsed: `PARSED_COLUMNS`.

    The record's `TenantId` is the workspace's id: it is kept as `WorkspaceId` (in `Envelope`), and
    `TenantId` is the tenant `workspace_tenants` maps it to, or the workspace id when unmapped.
    """
    record = F.from_json(F.col("Line"), FLAT)
    workspace = record["TenantId"]
    if workspace_tenants:
        mapping = F.create_map(*[x for k, v in sorted(workspace_tenants.items()) for x in (F.lit(k), F.lit(v))])
        tenant = F.coalesce(F.element_at(mapping, workspace), workspace)
    else:
        tenant = workspace
    return lines_df.select(
        "File",
        "LineNumber",
        "Line",
        # A Log Analytics table's `Type` is its name: named as the Streaming API names its category.
        F.when(
            record["Type"].isin(LOG_ANALYTICS_TYPE, *[t.table for t in signals.SIGNAL_TABLES]),
            F.concat(F.lit("AdvancedHunting-"), record["Type"]),
        )
        .otherwise(F.coalesce(record["Type"], F.lit("")))
        .alias("Category"),
        tenant.alias("TenantId"),
        record.alias("Properties"),
        F.struct(
            record["TimeGenerated"].alias("TimeGenerated"),
            record["_ItemId"].alias("_ItemId"),
            workspace.alias("WorkspaceId"),
        ).alias("Envelope"),
        # A map has no field for the corrupt text: a line that is not JSON parses to null here.
        _unreadable(F.col("Line"), F.when(record.isNull(), F.col("Line"))).alias("QuarantineReason"),
    )


def to_message_events(parsed_df: DataFrame, envelope_times: tuple[str, ...], envelope_text: tuple[str, ...] = ()) -> DataFrame:
    """Parsed lines as flat, typed MessageEvents rows.

    Gives `TenantId`, the typed contract columns, the other known properties as text,
    `OtherProperties` (the rest), the `envelope_times` (fields of `Envelope`, as timestamps) and
    `envelope_text` (as they are),
    `File`, `LineNumber`, `IngestKey`, `Category`, `IsMessageEvent`, `IsSignal` (a record of one of
    `signals.SIGNAL_TABLES`), `SignalProperties` (such a record's properties) and
    `QuarantineReason` (a line that is no record, or a MessageEvents or signal record it cannot
    trust; a record of another category keeps none). `Timestamp` is the record's own,
    never the envelope's. `IngestKey` is the record's `ReportId`, or a hash of the record where it
    has none: with `TenantId` it identifies a delivery of the same event twice.
    """
    props = F.col("Properties")
    # A record's time and recipients are each read twice (the value, and whether the record is
    # quarantined) under conditions, where Spark does not share the work: typed in a projection of
    # their own, so each is parsed once a record.
    parsed_df = parsed_df.withColumns(
        {"_Timestamp": values.utc_instant_of(props["Timestamp"])[0], "_Recipients": values.recipients_of_text(props["RecipientDetails"])[0]}
    )
    timestamp = F.col("_Timestamp")
    bad_timestamp = timestamp.isNull()
    recipients = F.col("_Recipients")
    bad_recipients = values.recipients_unreadable(props["RecipientDetails"], recipients)
    edited, _ = values.utc_instant_of(props["LastEditedTime"])
    external, bad_external = values.flag_of_text(props["IsExternalThread"])
    owned, bad_owned = values.flag_of_text(props["IsOwnedThread"])
    tenant = F.col("TenantId")
    report_id = props["ReportId"]
    spelled = [spelling for spellings in SPELLINGS.values() for spelling in spellings]
    known = F.array(*[F.lit(n) for n in dict.fromkeys((*TYPED, *KEPT_AS_TEXT, *spelled, *LOG_ANALYTICS_COLUMNS))])
    readable = F.col("QuarantineReason").isNull()
    no_tenant = tenant.isNull() | (F.trim(tenant) == F.lit(""))
    is_event = readable & F.coalesce(F.col("Category") == F.lit(MESSAGE_EVENTS_CATEGORY), F.lit(False))
    is_signal = readable & F.coalesce(F.col("Category").isin(*signals.SIGNAL_CATEGORIES), F.lit(False))
    reason = (
        F.when(~readable, F.col("QuarantineReason"))
        .when(~is_event & ~is_signal, F.lit(None).cast("string"))
        .when(is_signal, F.coalesce(signals.quarantine_reason(F.col("Category"), props), F.when(no_tenant, F.lit(schema.MISSING_TENANT))))
        .when(bad_timestamp, F.lit(schema.BAD_TIMESTAMP))
        .when(no_tenant, F.lit(schema.MISSING_TENANT))
        .when(bad_external | bad_owned, F.lit(schema.BAD_FLAG))
        .when(bad_recipients, F.lit(schema.BAD_RECIPIENTS))
    )
    has_report_id = report_id.isNotNull() & (F.trim(report_id) != F.lit(""))
    key = F.when(has_report_id, report_id).otherwise(F.concat(F.lit("sha256:"), F.sha2(F.col("Line"), 256)))
    return parsed_df.select(
        tenant.alias("TenantId"),
        # A signal record's own time (`signals.time_of`), for the bounds of its table's write.
        F.when(is_signal, signals.time_of(props)[0]).otherwise(timestamp).alias("Timestamp"),
        props["TeamsMessageId"].alias("TeamsMessageId"),
        report_id.alias("ReportId"),
        props["SenderEmailAddress"].alias("SenderEmailAddress"),
        recipients.alias("RecipientDetails"),
        external.alias("IsExternalThread"),
        owned.alias("IsOwnedThread"),
        props["ThreatTypes"].alias("ThreatTypes"),
        edited.alias("LastEditedTime"),
        *[F.coalesce(*[props[n] for n in SPELLINGS.get(name, (name,))]).alias(name) for name in KEPT_AS_TEXT],
        # Almost every record has no unknown property: the lambda (which has no generated code)
        # only runs for one that has.
        F.when(
            F.size(F.array_except(F.map_keys(props), known)) > F.lit(0),
            F.map_filter(props, lambda k, _v: ~F.array_contains(known, k)),
        )
        .otherwise(F.create_map().cast("map<string,string>"))
        .alias("OtherProperties"),
        *[values.utc_instant_of(F.col("Envelope")[name])[0].alias(name) for name in envelope_times],
        *[F.col("Envelope")[name].alias(name) for name in envelope_text],
        "File",
        "LineNumber",
        key.alias("IngestKey"),
        "Category",
        is_event.alias("IsMessageEvent"),
        is_signal.alias("IsSignal"),
        # A signal record's properties, typed later by its own table (`signals.to_signal_rows`).
        F.when(is_signal, props).alias("SignalProperties"),
        reason.alias("QuarantineReason"),
        "Line",
    )


def repeated_keys(events_df: DataFrame) -> DataFrame:
    """The (TenantId, IngestKey) pairs delivered more than once in the batch."""
    return events_df.groupBy(*INGEST_KEYS).count().filter(F.col("count") > F.lit(1)).drop("count")


def first_delivery(events_df: DataFrame, repeated_df: DataFrame, few: bool) -> DataFrame:
    """One row per (TenantId, IngestKey): the first delivery (by file, then line) of a record
    delivered more than once in the same batch (`repeated_df`, from `repeated_keys`; `few` when it
    is small enough to send to every task). Needs `TenantId`, `IngestKey`, `File`, `LineNumber`."""
    order = F.struct("File", "LineNumber")
    # Only the repeated keys are ranked: whole rows are never shuffled or sorted (a ranking over
    # whole rows cost most of an ingest's write).
    repeated_df = F.broadcast(repeated_df) if few else repeated_df
    firsts_df = events_df.join(repeated_df, on=list(INGEST_KEYS), how="left_semi").groupBy(*INGEST_KEYS).agg(F.min(order).alias("_First"))
    return (
        events_df.join(F.broadcast(firsts_df) if few else firsts_df, on=list(INGEST_KEYS), how="left")
        .filter(F.col("_First").isNull() | (order == F.col("_First")))
        .select(*events_df.columns)
    )
