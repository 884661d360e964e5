"""The MessageEvents contract: accepted source shapes -> one canonical schema, plus quarantine reasons.

The contract is checked on the source's schema alone (no data is read), so a missing column fails
in seconds. `to_canonical` then rewrites every accepted shape into the one shape the core reads,
tagging each row it cannot trust with a reason code instead of dropping or crashing on it.

The canonical columns are `CANONICAL_SCHEMA`. Recipients become `RecipientAddresses`, the array
of their RecipientSmtpAddress values: the hunt reads nothing else of a recipient, and an array of
strings is what Parquet's nested pruning reads directly (rebuilding an array of structs per row
cost more than the whole scan, see docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from partner_hunt.core import values

# Sentinel multi-tenant lakes carry TenantId; a single-tenant Defender export does not, and
# then the whole table is one tenant with this documented id (the nil GUID).
DEFAULT_TENANT_ID = "00000000-0000-0000-0000-000000000000"

# null = a null RecipientDetails (mv-expand: one row), [] = an empty one (mv-expand: no row).
ADDRESSES_TYPE = T.ArrayType(T.StringType())

CANONICAL_SCHEMA = T.StructType(
    [
        T.StructField("TenantId", T.StringType()),
        T.StructField("Timestamp", T.TimestampType()),
        T.StructField("TeamsMessageId", T.StringType()),
        T.StructField("ReportId", T.StringType()),
        T.StructField("SenderEmailAddress", T.StringType()),
        T.StructField("RecipientAddresses", ADDRESSES_TYPE),
        T.StructField("IsExternalThread", T.BooleanType()),
        T.StructField("IsOwnedThread", T.BooleanType()),
        T.StructField("ThreatTypes", T.StringType()),
        T.StructField("EditTime", T.TimestampType()),
        T.StructField("QuarantineReason", T.StringType()),
        T.StructField("SourceRecord", T.StringType()),
    ]
)

# Reason codes, as written to the quarantine table and counted in the run log. ThreatTypes has
# none: under KQL's isempty every value but null and "" is a threat, so no value is malformed.
BAD_TIMESTAMP = "BAD_TIMESTAMP"
BAD_RECIPIENTS = "BAD_RECIPIENT_DETAILS"
BAD_FLAG = "BAD_FLAG"
MISSING_MESSAGE_ID = "MISSING_TEAMS_MESSAGE_ID"
MISSING_TENANT = "MISSING_TENANT_ID"

ALWAYS_REQUIRED = ("Timestamp", "RecipientDetails", "IsExternalThread", "IsOwnedThread", "ThreatTypes")
OPTIONAL = ("TenantId", "TeamsMessageId", "ReportId", "SenderEmailAddress", "LastEditedTime")

_STRINGS = (T.StringType, T.VarcharType, T.CharType)
_INTEGERS = values.INTEGERS
_FRACTIONS = values.FRACTIONS
_TIMES = (T.TimestampType, T.TimestampNTZType, T.DateType)


class SchemaContractError(ValueError):
    """The source cannot satisfy the contract (a missing column, or a type no shape accepts)."""


@dataclass(frozen=True)
class Requirements:
    """Which optional columns this run needs, from the hunt's options."""

    sender: bool = False
    message_id: bool = False
    # Read SenderEmailAddress when the source has it, without requiring it (evidence uses it).
    keep_sender: bool = False


def required_columns(req: Requirements) -> tuple[str, ...]:
    """The columns the source must have for a run with these requirements."""
    cols = list(ALWAYS_REQUIRED)
    if req.sender:
        cols.append("SenderEmailAddress")
    if req.message_id:
        cols.append("TeamsMessageId")
    return tuple(cols)


def contract_fields(schema: T.StructType) -> dict[str, T.StructField]:
    """The source's fields for each contract column name, matched like Spark resolves names.

    Spark resolves column names case-insensitively by default, and catalogs such as the Hive
    metastore lower-case them, so `timestamp` satisfies `Timestamp`; an exact match wins.
    """
    by_lower: dict[str, T.StructField] = {}
    for f in schema.fields:
        by_lower.setdefault(f.name.lower(), f)
    exact = {f.name: f for f in schema.fields}
    out = {}
    for name in (*ALWAYS_REQUIRED, *OPTIONAL):
        found = exact.get(name) or by_lower.get(name.lower())
        if found is not None:
            out[name] = found
    return out


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
    # Fractions too: pandas writes an integer column that has nulls as float64 (1.0 / 0.0).
    return _is(dtype, (T.BooleanType, *_INTEGERS, *_FRACTIONS, *_STRINGS))


def _accepts_threats(dtype: T.DataType) -> bool:
    if _is(dtype, _STRINGS):
        return True
    return isinstance(dtype, T.ArrayType) and _is(dtype.elementType, _STRINGS)


_FLAG_TYPES = "boolean, integer 0/1 or string true/false/1/0"
_ACCEPTED = {
    "Timestamp": ("timestamp, timestamp_ntz, date or an ISO 8601 string", lambda t: _is(t, (*_TIMES, *_STRINGS))),
    "RecipientDetails": (
        "array<struct>, array<map<string,string>> or a JSON string of an array of objects",
        _accepts_recipients,
    ),
    "IsExternalThread": (_FLAG_TYPES, _accepts_flag),
    "IsOwnedThread": (_FLAG_TYPES, _accepts_flag),
    "ThreatTypes": ("string, array<string> or a JSON string of an array", _accepts_threats),
    "TenantId": ("string", lambda t: _is(t, _STRINGS)),
    "TeamsMessageId": ("string or integer", lambda t: _is(t, (*_STRINGS, *_INTEGERS))),
    "ReportId": ("string or integer", lambda t: _is(t, (*_STRINGS, *_INTEGERS))),
    "SenderEmailAddress": ("string", lambda t: _is(t, _STRINGS)),
    "LastEditedTime": ("timestamp, timestamp_ntz, date or an ISO 8601 string", lambda t: _is(t, (*_TIMES, *_STRINGS))),
}


def check_contract(schema: T.StructType, table: str, req: Requirements = Requirements()) -> None:
    """Fail fast, naming the column and the table, when the source breaks the contract.

    Reads only the schema. Extra columns are ignored; a contract column that is present must
    have an accepted type even when this run does not need it, since a later run may.
    """
    fields = contract_fields(schema)
    missing = [c for c in required_columns(req) if c not in fields]
    if missing:
        raise SchemaContractError(
            f"source table '{table}' is missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (columns found: {', '.join(schema.fieldNames()) or 'none'})"
        )
    for name, f in fields.items():
        description, accepts = _ACCEPTED[name]
        if not accepts(f.dataType):
            raise SchemaContractError(
                f"source table '{table}' column {f.name} has type {f.dataType.simpleString()}; "
                f"accepted: {description}"
            )


def needed_columns(schema: T.StructType, req: Requirements) -> list[Column]:
    """The source columns a run reads, under their contract names (column pruning at the edge)."""
    fields = contract_fields(schema)
    return [
        F.col(_quoted(fields[c].name)).alias(c)
        for c in (*ALWAYS_REQUIRED, *OPTIONAL)
        if c in fields and (c in ALWAYS_REQUIRED or _wanted(c, req))
    ]


def hunt_columns(req: Requirements) -> list[str]:
    """The canonical columns the hunt's own pass reads, with `QuarantineReason` for its accounting.

    Selecting these before anything that blocks column pruning (an `observe`, a cache) keeps the
    scan to what the counts need: the other canonical columns, and the to_json of `SourceRecord`,
    are only computed where they are used (evidence, quarantine).
    """
    cols = ["TenantId", "Timestamp", "RecipientAddresses", "IsExternalThread", "IsOwnedThread", "ThreatTypes"]
    if req.sender:
        cols.append("SenderEmailAddress")
    if req.message_id:
        # Counting messages needs the id; de-duplicating edits also orders versions by these.
        cols += ["TeamsMessageId", "EditTime", "ReportId"]
    return [*cols, "QuarantineReason"]


def _quoted(name: str) -> str:
    """A column name as an identifier, so that dots and spaces in source names are literal."""
    return "`" + name.replace("`", "``") + "`"


def _wanted(name: str, req: Requirements) -> bool:
    if name == "SenderEmailAddress":
        return req.sender or req.keep_sender
    if name == "LastEditedTime":
        return req.message_id
    return True


def _struct_field(element: T.StructType, name: str) -> str | None:
    """The struct's field for `name`: exact, else case-insensitive as Spark resolves fields."""
    names = element.fieldNames()
    if name in names:
        return name
    return next((n for n in names if n.lower() == name.lower()), None)


def _recipients(col: Column, dtype: T.DataType) -> tuple[Column, Column]:
    """(array<string> of RecipientSmtpAddress values, is-bad), keeping mv-expand's null/empty apart."""
    if isinstance(dtype, T.ArrayType) and isinstance(dtype.elementType, T.StructType):
        field_name = _struct_field(dtype.elementType, "RecipientSmtpAddress")
        if field_name is not None:
            # A field of an array of structs: Parquet reads this one nested column and nothing else.
            return col[field_name].cast(ADDRESSES_TYPE), F.lit(False)
        # KQL property access on a missing key gives null, and so the "" domain.
        return F.transform(col, lambda r: F.lit(None).cast("string")), F.lit(False)
    if isinstance(dtype, T.ArrayType) and isinstance(dtype.elementType, T.MapType):
        # Map keys are data, not schema: matched exactly, as KQL's property access is.
        return F.transform(col, lambda m: m["RecipientSmtpAddress"].cast("string")), F.lit(False)
    # A JSON string: parsed as an array of raw JSON texts so that an element which is not an
    # object gives a null address (KQL's property access) instead of failing the whole array.
    text = F.trim(col)
    elements = F.from_json(text, T.ArrayType(T.StringType()))
    from_array = F.transform(elements, lambda e: F.get_json_object(e, "$.RecipientSmtpAddress"))
    # A single object: mv-expand's default kind=bag gives one row per key, and only the
    # RecipientSmtpAddress key carries an address.
    bag = F.from_json(text, "map<string,string>")
    from_bag = F.transform(
        F.map_entries(bag), lambda e: F.when(e["key"] == F.lit("RecipientSmtpAddress"), e["value"])
    )
    # JSON null (or nothing at all) is mv-expand's null: one row, domain "".
    is_null_json = col.isNull() | text.isin("", "null")
    value = (
        F.when(is_null_json, F.lit(None).cast(ADDRESSES_TYPE))
        .when(F.startswith(text, F.lit("[")), from_array)
        .when(F.startswith(text, F.lit("{")), from_bag)
    )
    return value, ~is_null_json & value.isNull()


def _join_threats(values: Column) -> Column:
    """An array's non-empty elements, comma-joined: [] and [""] are clean, [" "] is a threat."""
    # array_remove and concat_ws (which skips nulls) rather than a filter lambda: a higher-order
    # function has no generated code, and in a whole-stage plan it makes every row be copied.
    return F.concat_ws(",", F.array_remove(values, F.lit("")))


def _threats(col: Column, dtype: T.DataType) -> Column:
    """ThreatTypes as KQL's string; never malformed, since isempty() accepts any string."""
    if isinstance(dtype, T.ArrayType):
        return F.when(col.isNotNull(), _join_threats(col))
    # A string that is a JSON array is an export of the dynamic form; anything else is the
    # documented comma-separated string and is kept byte for byte (a lone space is a threat).
    text = F.trim(col)
    looks_json = F.startswith(text, F.lit("[")) & F.endswith(text, F.lit("]"))
    # Parsed as a variant, not with from_json: from_json has no generated code, and one such
    # expression takes the whole projection out of whole-stage codegen (about a third of the
    # run's time at 10M rows, see docs/performance.md).
    parsed = F.try_variant_get(F.try_parse_json(text), "$", "array<string>")
    # The cheap byte search first: trimming allocates, and almost no row holds a bracket.
    return F.when(
        (F.instr(col, "[") > F.lit(0)) & looks_json & parsed.isNotNull(), _join_threats(parsed)
    ).otherwise(col)


_JSON_UTC = {"timeZone": "UTC"}


def to_canonical(source_df: DataFrame, req: Requirements = Requirements()) -> DataFrame:
    """Rewrite any accepted source shape into `CANONICAL_SCHEMA`, tagging untrustworthy rows.

    Needs the columns of `required_columns(req)` (names matched case-insensitively); extra
    columns are ignored. Adds `QuarantineReason` (the first reason that applies, in the order
    such as `BAD_TIMESTAMP`, or null) and `SourceRecord` (the input row as JSON, on quarantined rows only).
    """
    fields = contract_fields(source_df.schema)

    def src(name: str) -> Column:
        return F.col(_quoted(fields[name].name))

    def text_or_null(name: str) -> Column:
        return src(name).cast("string") if name in fields else F.lit(None).cast("string")

    def kind(name: str) -> T.DataType:
        return fields[name].dataType

    timestamp, bad_timestamp = values.timestamp(src("Timestamp"), kind("Timestamp"))
    external, bad_external = values.flag(src("IsExternalThread"), kind("IsExternalThread"))
    owned, bad_owned = values.flag(src("IsOwnedThread"), kind("IsOwnedThread"))
    recipients, bad_recipients = _recipients(src("RecipientDetails"), kind("RecipientDetails"))
    threats = _threats(src("ThreatTypes"), kind("ThreatTypes"))

    if "TenantId" in fields:
        tenant = src("TenantId").cast("string")
        bad_tenant = tenant.isNull() | (F.trim(tenant) == F.lit(""))
    else:
        tenant = F.lit(DEFAULT_TENANT_ID)
        bad_tenant = F.lit(False)
    message_id = text_or_null("TeamsMessageId")
    if req.message_id:
        bad_message_id = message_id.isNull() | (F.trim(message_id) == F.lit(""))
    else:
        bad_message_id = F.lit(False)

    if "LastEditedTime" in fields:
        # An unedited message carries an empty LastEditedTime; its version time is Timestamp.
        edited, _ = values.timestamp(src("LastEditedTime"), kind("LastEditedTime"))
        edit_time = F.coalesce(edited, timestamp)
    else:
        edit_time = timestamp

    reason = (
        F.when(bad_timestamp, F.lit(BAD_TIMESTAMP))
        .when(bad_tenant, F.lit(MISSING_TENANT))
        .when(bad_external | bad_owned, F.lit(BAD_FLAG))
        .when(bad_recipients, F.lit(BAD_RECIPIENTS))
        .when(bad_message_id, F.lit(MISSING_MESSAGE_ID))
    )
    return source_df.select(
        tenant.alias("TenantId"),
        timestamp.alias("Timestamp"),
        message_id.alias("TeamsMessageId"),
        text_or_null("ReportId").alias("ReportId"),
        text_or_null("SenderEmailAddress").alias("SenderEmailAddress"),
        recipients.alias("RecipientAddresses"),
        external.alias("IsExternalThread"),
        owned.alias("IsOwnedThread"),
        threats.alias("ThreatTypes"),
        edit_time.alias("EditTime"),
        reason.alias("QuarantineReason"),
        # Kept only for quarantined rows, so that nothing about a bad record is lost.
        # Times written in UTC with their offset: to_json would otherwise use the session time zone.
        F.when(
            reason.isNotNull(),
            F.to_json(F.struct(*[F.col(_quoted(c)) for c in source_df.columns]), _JSON_UTC),
        ).alias("SourceRecord"),
    )


def drop_quarantined(canonical_df: DataFrame) -> DataFrame:
    """Drop the rows with a quarantine reason, and the quarantine columns."""
    return canonical_df.filter(F.col("QuarantineReason").isNull()).drop("QuarantineReason", "SourceRecord")


def filter_bad_rows(canonical_df: DataFrame) -> DataFrame:
    """Keep the rows with a quarantine reason."""
    return canonical_df.filter(F.col("QuarantineReason").isNotNull())
