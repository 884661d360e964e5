"""Bronze tables of MessageEvents read as they are, turned into the flat table's columns (pure).

A Databricks user often has a bronze Delta table rather than the flat MessageEvents table:

- `envelope`: the Streaming API's records as Auto Loader lands them from the storage export
  (`time`, `tenantId`, `operationName`, `category`, `_TimeReceivedBySvc`, `properties`, `Tenant`,
  `_rescued_data`), `properties` a struct (schema inferred or given), a map, a JSON string (read
  as text) or a variant;
- `event-hubs`: an Event Hubs table read through its Kafka endpoint: a binary or string `value`
  (or `body`) holding `{"records": [<envelope>, ...]}`, beside Kafka's own `key`, `topic`,
  `partition`, `offset`, `timestamp` and `timestampType`.

`detect_shape` tells them from the flat table by the schema alone; `to_flat` gives the contract's
columns (`schema.py`) from the MessageEvents records, which the contract then reads unchanged.
`Timestamp` is always the record's own: never the envelope's `time`, never Kafka's `timestamp`
(the broker's time). A record's properties given as text are parsed as the storage export's
are (`landed.py`): a `map<string,string>` in which nested values stay JSON text.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from partner_hunt.core import landed
from partner_hunt.core import schema as contract

SHAPE_FLAT = "flat"
SHAPE_ENVELOPE = "envelope"
SHAPE_EVENT_HUBS = "event-hubs"
SHAPES = (SHAPE_FLAT, SHAPE_ENVELOPE, SHAPE_EVENT_HUBS)

# How a log line names each bronze shape.
DESCRIPTIONS = {
    SHAPE_ENVELOPE: "an Auto Loader bronze table (Defender envelope)",
    SHAPE_EVENT_HUBS: "an Event Hubs bronze table (Defender records in a Kafka message body)",
}

# The contract's columns a record carries in its `properties`; `TenantId` is the envelope's.
PROPERTY_COLUMNS = landed.TYPED
RESCUED_DATA = "_rescued_data"
# Added by `to_flat` when the source has `_rescued_data`: the contract column whose value a
# record's rescued data holds, or null. Extra columns are ignored by the contract.
RESCUED_CONTRACT_COLUMN = "_RescuedContractColumn"

# The body of an Event Hubs message from the Streaming API.
EVENT_HUB_BODY = T.StructType([T.StructField("records", T.ArrayType(landed.ENVELOPE))])
_BODY_COLUMNS = ("value", "body")
_TEXT = (T.StringType, T.VarcharType, T.CharType)

# The contract columns a rescued key can name (lower-cased -> contract name): the envelope's tenant, the properties.
_RESCUED_NAMES = {"tenantid": "TenantId", **{name.lower(): name for name in PROPERTY_COLUMNS}}
# A JSON key naming one of them, at any depth: Auto Loader nests a rescued field of `properties`
# under `properties`; names are matched ignoring case, since a key rescued for its case alone is
# as lost as one of the wrong type.
_RESCUED_KEY = '(?i)"(' + "|".join(_RESCUED_NAMES.values()) + ')"\\s*:'


class BronzeShapeError(contract.SchemaContractError):
    """A bronze table that cannot be read as MessageEvents: `properties` of a type no record
    has, or a record whose `_rescued_data` holds the value of a contract column."""


def _field(schema: T.StructType, name: str) -> T.StructField | None:
    """The top-level field for `name`, matched as Spark resolves names (exact, else ignoring case)."""
    found = contract._struct_field(schema, name)
    return None if found is None else schema[found]


def _body(schema: T.StructType) -> T.StructField | None:
    """Kafka's `value` (or an Event Hubs `body`) when it is binary or text."""
    for name in _BODY_COLUMNS:
        found = _field(schema, name)
        if found is not None and isinstance(found.dataType, (T.BinaryType, *_TEXT)):
            return found
    return None


def detect_shape(schema: T.StructType) -> str:
    """`flat`, `envelope` or `event-hubs`, from the schema alone (no data is read).

    An envelope has `properties` and `category` at the top. An Event Hubs table has a binary or
    string `value` (or `body`) and no contract column under its exact name: Kafka's `timestamp`
    matches `Timestamp` only by ignoring case. Anything else is flat.
    """
    if _field(schema, "properties") is not None and _field(schema, "category") is not None:
        return SHAPE_ENVELOPE
    contract_names = {*contract.ALWAYS_REQUIRED, *contract.OPTIONAL}
    if _body(schema) is not None and not contract_names & set(schema.fieldNames()):
        return SHAPE_EVENT_HUBS
    return SHAPE_FLAT


def to_flat(source_df: DataFrame, shape: str) -> DataFrame:
    """The source's MessageEvents records with the contract's columns at the top.

    `flat` is returned as it is. A bronze shape gives `TenantId` (the envelope's `tenantId`), the
    contract's columns found in the records' properties (`PROPERTY_COLUMNS`) and, when the source
    has `_rescued_data`, `RESCUED_CONTRACT_COLUMN`; records of other categories are dropped.
    """
    if shape == SHAPE_FLAT:
        return source_df
    if shape == SHAPE_ENVELOPE:
        return _envelope_to_flat(source_df)
    if shape == SHAPE_EVENT_HUBS:
        return _event_hubs_to_flat(source_df)
    raise ValueError(f"unknown source shape {shape!r}; expected one of {', '.join(SHAPES)}")


def _properties(col: Column, dtype: T.DataType) -> list[Column]:
    """The contract's columns of a record's properties, under their contract names.

    A struct's fields are schema, matched as Spark resolves names, and a field it lacks is left
    out for the contract to name; a map's keys are data and match exactly (every contract column
    is then present, null where a record lacks it). Text and variants are parsed as the storage
    export's lines are: nested values (recipients) stay JSON text, JSON booleans become
    `"true"`/`"false"`, both of which the contract reads.
    """
    if isinstance(dtype, T.StructType):
        fields = contract.contract_fields(dtype)
        return [col.getField(fields[name].name).alias(name) for name in PROPERTY_COLUMNS if name in fields]
    if isinstance(dtype, T.MapType) and isinstance(dtype.keyType, _TEXT):
        props = col
    elif isinstance(dtype, (*_TEXT, T.BinaryType)):
        props = F.from_json(col.cast("string"), landed.FLAT)
    elif isinstance(dtype, T.VariantType):
        props = F.from_json(F.to_json(col), landed.FLAT)
    else:
        raise BronzeShapeError(
            f"column properties has type {dtype.simpleString()}; accepted: a struct, map<string,_>, "
            "a JSON string or a variant"
        )
    return [props[name].alias(name) for name in PROPERTY_COLUMNS]


def rescued_contract_column(rescued: Column) -> Column:
    """The contract column (`TenantId` or one of `PROPERTY_COLUMNS`) whose value Auto Loader's
    `_rescued_data` JSON holds for a record, or null: that value did not fit the table's schema,
    so the column reads null where the record had a value (a rescued flag leaves the counts)."""
    names = F.create_map(*[x for key, name in _RESCUED_NAMES.items() for x in (F.lit(key), F.lit(name))])
    found = F.lower(F.regexp_extract(rescued, _RESCUED_KEY, 1))
    return F.when(found != F.lit(""), F.element_at(names, found))


def _envelope_to_flat(envelope_df: DataFrame) -> DataFrame:
    schema = envelope_df.schema
    category, properties = _field(schema, "category"), _field(schema, "properties")
    if category is None or properties is None:
        raise BronzeShapeError(f"an envelope has columns category and properties (columns found: {', '.join(schema.fieldNames())})")
    tenant, rescued = _field(schema, "tenantId"), _field(schema, RESCUED_DATA)
    # A row that is no record at all (neither category nor properties: a body or line that could
    # not be read) is kept, so the contract quarantines and counts it rather than losing it.
    no_record = F.col(category.name).isNull() & F.col(properties.name).isNull()
    return envelope_df.filter((F.col(category.name) == F.lit(landed.MESSAGE_EVENTS_CATEGORY)) | no_record).select(
        # Without `tenantId` the contract's default tenant applies, as for a flat table without TenantId.
        *([F.col(tenant.name).alias("TenantId")] if tenant is not None else []),
        *_properties(F.col(properties.name), properties.dataType),
        *([rescued_contract_column(F.col(rescued.name)).alias(RESCUED_CONTRACT_COLUMN)] if rescued is not None else []),
    )


def _event_hubs_to_flat(messages_df: DataFrame) -> DataFrame:
    body = _body(messages_df.schema)
    if body is None:
        raise BronzeShapeError(
            f"an Event Hubs table has a binary or string value or body (columns found: {', '.join(messages_df.columns)})"
        )
    rescued = _field(messages_df.schema, RESCUED_DATA)
    kept = [] if rescued is None else [F.col(rescued.name).alias(RESCUED_DATA)]
    # A body that is not `{"records": [...]}` gives one empty record, which the contract then
    # quarantines and counts; `{"records": []}` gives none.
    parsed = F.from_json(F.col(body.name).cast("string"), EVENT_HUB_BODY)["records"]
    records = F.explode(F.coalesce(parsed, F.array(F.lit(None).cast(landed.ENVELOPE))))
    # Kafka's columns stop here: only the records (and any rescued data) go on.
    envelope_df = messages_df.select(records.alias("_Record"), *kept)
    return _envelope_to_flat(envelope_df.select("_Record.*", *envelope_df.columns[1:]))
