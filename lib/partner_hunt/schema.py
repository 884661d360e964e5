"""The MessageEvents contract: accepted source shapes -> one canonical schema, plus quarantine reasons.

The contract is checked on the source's schema alone (no data is read), so a missing column fails
in seconds. `to_canonical` then rewrites every accepted shape into the one shape the core reads,
tagging each row it cannot trust with a reason code instead of dropping or crashing on it.

Canonical columns (see `CANONICAL_SCHEMA`): TenantId, Timestamp, TeamsMessageId, ReportId,
SenderEmailAddress, RecipientDetails (array<struct<RecipientSmtpAddress>>), IsExternalThread,
IsOwnedThread (booleans), ThreatTypes (string), EditTime (orders the versions of an edited
message), QuarantineReason (null for a good row) and SourceRecord (the original row as JSON, only
on quarantined rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from partner_hunt.config import DEFAULT_TENANT_ID

RECIPIENT_TYPE = T.ArrayType(T.StructType([T.StructField("RecipientSmtpAddress", T.StringType())]))

CANONICAL_SCHEMA = T.StructType(
    [
        T.StructField("TenantId", T.StringType()),
        T.StructField("Timestamp", T.TimestampType()),
        T.StructField("TeamsMessageId", T.StringType()),
        T.StructField("ReportId", T.StringType()),
        T.StructField("SenderEmailAddress", T.StringType()),
        T.StructField("RecipientDetails", RECIPIENT_TYPE),
        T.StructField("IsExternalThread", T.BooleanType()),
        T.StructField("IsOwnedThread", T.BooleanType()),
        T.StructField("ThreatTypes", T.StringType()),
        T.StructField("EditTime", T.TimestampType()),
        T.StructField("QuarantineReason", T.StringType()),
        T.StructField("SourceRecord", T.StringType()),
    ]
)

# Reason codes, as written to the quarantine table and counted in the run log.
BAD_TIMESTAMP = "BAD_TIMESTAMP"
BAD_RECIPIENTS = "BAD_RECIPIENT_DETAILS"
BAD_FLAG = "BAD_FLAG"
BAD_THREAT_TYPES = "BAD_THREAT_TYPES"
MISSING_MESSAGE_ID = "MISSING_TEAMS_MESSAGE_ID"
MISSING_TENANT = "MISSING_TENANT_ID"
REASONS = (BAD_TIMESTAMP, BAD_RECIPIENTS, BAD_FLAG, BAD_THREAT_TYPES, MISSING_MESSAGE_ID, MISSING_TENANT)

ALWAYS_REQUIRED = ("Timestamp", "RecipientDetails", "IsExternalThread", "IsOwnedThread", "ThreatTypes")
OPTIONAL = ("TenantId", "TeamsMessageId", "ReportId", "SenderEmailAddress", "LastEditedTime")

_STRINGS = (T.StringType, T.VarcharType, T.CharType)
_INTEGERS = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_TIMES = (T.TimestampType, T.TimestampNTZType, T.DateType)


class SchemaContractError(ValueError):
    """The source cannot satisfy the contract (a missing column, or a type no shape accepts)."""


@dataclass(frozen=True)
class Requirements:
    """Which optional columns this run needs, from the hunt's options."""

    sender: bool = False
    message_id: bool = False


def required_columns(req: Requirements) -> tuple[str, ...]:
    """The columns the source must have for a run with these requirements."""
    cols = list(ALWAYS_REQUIRED)
    if req.sender:
        cols.append("SenderEmailAddress")
    if req.message_id:
        cols.append("TeamsMessageId")
    return tuple(cols)


def _is(dtype: T.DataType, kinds: tuple[type, ...]) -> bool:
    return isinstance(dtype, kinds)


def _accepts_recipients(dtype: T.DataType) -> bool:
    if _is(dtype, _STRINGS):
        return True
    if isinstance(dtype, T.ArrayType):
        element = dtype.elementType
        if isinstance(element, T.StructType):
            return True
        if isinstance(element, T.MapType):
            return _is(element.keyType, _STRINGS)
    return False


def _accepts_flag(dtype: T.DataType) -> bool:
    return _is(dtype, (T.BooleanType, *_INTEGERS, *_STRINGS))


def _accepts_threats(dtype: T.DataType) -> bool:
    if _is(dtype, _STRINGS):
        return True
    return isinstance(dtype, T.ArrayType) and _is(dtype.elementType, _STRINGS)


_ACCEPTED = {
    "Timestamp": ("timestamp, timestamp_ntz, date or an ISO string", lambda t: _is(t, (*_TIMES, *_STRINGS))),
    "RecipientDetails": (
        "array<struct>, array<map<string,string>> or a JSON string of an array of objects",
        _accepts_recipients,
    ),
    "IsExternalThread": ("boolean, integer 0/1 or string true/false/1/0", _accepts_flag),
    "IsOwnedThread": ("boolean, integer 0/1 or string true/false/1/0", _accepts_flag),
    "ThreatTypes": ("string, array<string> or a JSON string of an array", _accepts_threats),
    "TenantId": ("string", lambda t: _is(t, _STRINGS)),
    "TeamsMessageId": ("string", lambda t: _is(t, (*_STRINGS, *_INTEGERS))),
    "ReportId": ("string", lambda t: _is(t, (*_STRINGS, *_INTEGERS))),
    "SenderEmailAddress": ("string", lambda t: _is(t, _STRINGS)),
    "LastEditedTime": ("timestamp or an ISO string", lambda t: _is(t, (*_TIMES, *_STRINGS))),
}


def check_contract(schema: T.StructType, table: str, req: Requirements = Requirements()) -> None:
    """Fail fast, naming the column and the table, when the source breaks the contract."""
    fields = {f.name: f.dataType for f in schema.fields}
    missing = [c for c in required_columns(req) if c not in fields]
    if missing:
        raise SchemaContractError(
            f"source table '{table}' is missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}"
        )
    for name, dtype in fields.items():
        if name in _ACCEPTED:
            description, accepts = _ACCEPTED[name]
            if not accepts(dtype):
                raise SchemaContractError(
                    f"source table '{table}' column {name} has type {dtype.simpleString()}; "
                    f"accepted: {description}"
                )


def needed_columns(schema: T.StructType, req: Requirements) -> list[str]:
    """The source columns a run reads (column pruning happens here, at the edge)."""
    present = {f.name for f in schema.fields}
    return [c for c in (*ALWAYS_REQUIRED, *OPTIONAL) if c in present and (c in ALWAYS_REQUIRED or _wanted(c, req))]


def _wanted(name: str, req: Requirements) -> bool:
    if name == "SenderEmailAddress":
        return req.sender
    if name == "LastEditedTime":
        return req.message_id
    return True


def _flag(col: Column, dtype: T.DataType) -> tuple[Column, Column]:
    """(boolean value, is-bad) for a flag column; null stays null (KQL: on neither side)."""
    if isinstance(dtype, T.BooleanType):
        return col, F.lit(False)
    if _is(dtype, _INTEGERS):
        value = F.when(col == 1, F.lit(True)).when(col == 0, F.lit(False))
        return value, col.isNotNull() & value.isNull()
    text = F.lower(F.trim(col))
    value = F.when(text.isin("true", "1"), F.lit(True)).when(text.isin("false", "0"), F.lit(False))
    # An empty string is how CSV-ish exports write a missing flag.
    return value, col.isNotNull() & (text != F.lit("")) & value.isNull()


def _timestamp(col: Column, dtype: T.DataType) -> tuple[Column, Column]:
    """(UTC timestamp, is-bad); a null or unparseable time is bad, since no window can hold it."""
    if isinstance(dtype, T.TimestampType):
        value = col
    elif _is(dtype, (T.TimestampNTZType, T.DateType)):
        # Wall-clock times in exports are UTC; label them as such rather than shifting them.
        value = F.to_utc_timestamp(col.cast("timestamp_ntz").cast("string"), "UTC")
    else:
        value = F.try_to_timestamp(F.trim(col))
    return value, value.isNull()


def _recipients(col: Column, dtype: T.DataType) -> tuple[Column, Column]:
    """(array<struct<RecipientSmtpAddress>>, is-bad) with mv-expand's null/empty distinction kept."""
    if isinstance(dtype, T.ArrayType) and isinstance(dtype.elementType, T.StructType):
        names = dtype.elementType.fieldNames()
        if "RecipientSmtpAddress" in names:
            address = lambda r: r["RecipientSmtpAddress"].cast("string")  # noqa: E731
        else:
            # KQL property access on a missing key gives null, and so the "" domain.
            address = lambda r: F.lit(None).cast("string")  # noqa: E731
        value = F.transform(col, lambda r: F.struct(address(r).alias("RecipientSmtpAddress")))
        return value, F.lit(False)
    if isinstance(dtype, T.ArrayType) and isinstance(dtype.elementType, T.MapType):
        value = F.transform(col, lambda m: F.struct(m["RecipientSmtpAddress"].cast("string").alias("RecipientSmtpAddress")))
        return value, F.lit(False)
    # A JSON string: parsed as an array of raw JSON texts so that an element which is not an
    # object gives a null address (KQL's property access) instead of failing the whole array.
    text = F.trim(col)
    elements = F.from_json(text, T.ArrayType(T.StringType()))
    from_array = F.transform(
        elements,
        lambda e: F.struct(F.get_json_object(e, "$.RecipientSmtpAddress").alias("RecipientSmtpAddress")),
    )
    # A single object: mv-expand's default kind=bag gives one row per key, and only the
    # RecipientSmtpAddress key carries an address.
    bag = F.from_json(text, T.MapType(T.StringType(), T.StringType()))
    from_bag = F.transform(
        F.map_entries(bag),
        lambda e: F.struct(
            F.when(e["key"] == F.lit("RecipientSmtpAddress"), e["value"]).alias("RecipientSmtpAddress")
        ),
    )
    is_null_json = col.isNull() | text.isin("", "null")
    value = F.when(is_null_json, F.lit(None).cast(RECIPIENT_TYPE)).otherwise(F.coalesce(from_array, from_bag))
    return value, ~is_null_json & elements.isNull() & bag.isNull()


def _threats(col: Column, dtype: T.DataType) -> tuple[Column, Column]:
    """(string, is-bad): an array becomes its comma-joined elements, so [] and [""] are not threats."""
    if isinstance(dtype, T.ArrayType):
        return F.when(col.isNotNull(), F.concat_ws(",", col)), F.lit(False)
    # A string that looks like a JSON array is an export of the dynamic form; anything else is
    # the documented comma-separated string and is kept byte for byte (a lone space is a threat).
    looks_json = F.startswith(F.ltrim(col), F.lit("[")) & F.endswith(F.rtrim(col), F.lit("]"))
    parsed = F.from_json(col, T.ArrayType(T.StringType()))
    value = F.when(looks_json & parsed.isNotNull(), F.concat_ws(",", parsed)).otherwise(col)
    return value, F.lit(False)


def to_canonical(source_df: DataFrame, req: Requirements = Requirements()) -> DataFrame:
    """Rewrite any accepted source shape into `CANONICAL_SCHEMA`, tagging untrustworthy rows.

    Needs the columns of `required_columns(req)`; extra columns are ignored. Adds
    `QuarantineReason` (the first reason that applies, or null).
    """
    types_by_name = {f.name: f.dataType for f in source_df.schema.fields}

    def col_or_null(name: str) -> Column:
        return F.col(name).cast("string") if name in types_by_name else F.lit(None).cast("string")

    timestamp, bad_timestamp = _timestamp(F.col("Timestamp"), types_by_name["Timestamp"])
    external, bad_external = _flag(F.col("IsExternalThread"), types_by_name["IsExternalThread"])
    owned, bad_owned = _flag(F.col("IsOwnedThread"), types_by_name["IsOwnedThread"])
    recipients, bad_recipients = _recipients(F.col("RecipientDetails"), types_by_name["RecipientDetails"])
    threats, bad_threats = _threats(F.col("ThreatTypes"), types_by_name["ThreatTypes"])

    if "TenantId" in types_by_name:
        tenant = F.col("TenantId")
        bad_tenant = tenant.isNull() | (F.trim(tenant) == F.lit(""))
    else:
        tenant = F.lit(DEFAULT_TENANT_ID)
        bad_tenant = F.lit(False)
    message_id = col_or_null("TeamsMessageId")
    bad_message_id = (message_id.isNull() | (message_id == F.lit(""))) if req.message_id else F.lit(False)

    if "LastEditedTime" in types_by_name:
        edited, _ = _timestamp(F.col("LastEditedTime"), types_by_name["LastEditedTime"])
        edit_time = F.coalesce(edited, timestamp)
    else:
        edit_time = timestamp

    reason = (
        F.when(bad_timestamp, F.lit(BAD_TIMESTAMP))
        .when(bad_tenant, F.lit(MISSING_TENANT))
        .when(bad_external | bad_owned, F.lit(BAD_FLAG))
        .when(bad_recipients, F.lit(BAD_RECIPIENTS))
        .when(bad_threats, F.lit(BAD_THREAT_TYPES))
        .when(bad_message_id, F.lit(MISSING_MESSAGE_ID))
    )
    return source_df.select(
        tenant.cast("string").alias("TenantId"),
        timestamp.alias("Timestamp"),
        message_id.alias("TeamsMessageId"),
        col_or_null("ReportId").alias("ReportId"),
        col_or_null("SenderEmailAddress").alias("SenderEmailAddress"),
        recipients.alias("RecipientDetails"),
        external.alias("IsExternalThread"),
        owned.alias("IsOwnedThread"),
        threats.alias("ThreatTypes"),
        edit_time.alias("EditTime"),
        reason.alias("QuarantineReason"),
        # Kept only for quarantined rows, so that nothing about a bad record is lost.
        F.when(reason.isNotNull(), F.to_json(F.struct(*[F.col(c) for c in source_df.columns]))).alias(
            "SourceRecord"
        ),
    )


def filter_quarantined(canonical_df: DataFrame) -> DataFrame:
    """Rows with no quarantine reason, without the quarantine columns."""
    return canonical_df.filter(F.col("QuarantineReason").isNull()).drop("QuarantineReason", "SourceRecord")


def filter_bad_rows(canonical_df: DataFrame) -> DataFrame:
    """Rows with a quarantine reason."""
    return canonical_df.filter(F.col("QuarantineReason").isNotNull())
