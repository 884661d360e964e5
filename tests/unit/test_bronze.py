"""Bronze tables read as they are (`core/bronze.py`): the shape told from the schema alone, and each
bronze shape's MessageEvents records given as the flat columns the contract reads.

Inputs follow the Streaming API's records (docs/input-contract.md, "Bronze tables read as they
are"); expected rows are written by hand.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from partner_hunt.core import bronze, schema
from partner_hunt.core.bronze import BronzeShapeError, detect_shape, to_flat
from partner_hunt.core.schema import SchemaContractError

ME = "AdvancedHunting-MessageEvents"
POST_DELIVERY = "AdvancedHunting-MessagePostDeliveryEvents"
RECIPIENTS_DDL = "array<struct<RecipientSmtpAddress:string,RecipientDisplayName:string,RecipientType:string>>"
# As Auto Loader infers the live capture's properties: times as text, flags as booleans.
PROPS_DDL = (
    "struct<Timestamp:string,LastEditedTime:string,TeamsMessageId:string,SenderEmailAddress:string,"
    f"SenderDisplayName:string,RecipientDetails:{RECIPIENTS_DDL},IsOwnedThread:boolean,IsExternalThread:boolean,"
    "ThreatTypes:string,ReportId:string>"
)
ENVELOPE_COLUMNS = "time string, tenantId string, operationName string, category string, _TimeReceivedBySvc string"
KAFKA_DDL = "key binary, {body} {kind}, topic string, partition int, offset bigint, timestamp timestamp, timestampType int"
# Every contract column as the JSON-text route gives it.
FLAT_TEXT_DDL = (
    "TenantId string, Timestamp string, TeamsMessageId string, ReportId string, SenderEmailAddress string, "
    "RecipientDetails string, IsExternalThread string, IsOwnedThread string, ThreatTypes string, LastEditedTime string"
)
# The envelope's `time` and Kafka's `timestamp`: days away from every record's own Timestamp.
ENVELOPE_TIME = "2026-03-05T00:00:00.0000000Z"
BROKER_TIME = datetime(2026, 3, 9, tzinfo=timezone.utc)


def _equal(actual_df, expected_df):
    assert_df_equality(actual_df, expected_df, ignore_row_order=True, ignore_nullable=True)


def props(msg, to=None, external=True, owned=True, threats=None, ts="2026-03-01T09:06:30.965Z"):
    """A record's properties as Defender writes them; `to` lists recipients' addresses (None: null)."""
    return {
        "Timestamp": ts,
        "LastEditedTime": "",
        "TeamsMessageId": f"/teams/g/channels/c/messages/{msg}",
        "SenderEmailAddress": "me@contoso.com",
        "SenderDisplayName": "Me",
        "RecipientDetails": None if to is None else [
            {"RecipientSmtpAddress": a, "RecipientDisplayName": a.split("@")[0], "RecipientType": "User"} for a in to
        ],
        "IsOwnedThread": owned,
        "IsExternalThread": external,
        "ThreatTypes": threats,
        "ReportId": f"rep-{msg}",
    }


def as_struct(p):
    """The properties as a row of `PROPS_DDL`."""
    recipients = p["RecipientDetails"]
    return (
        p["Timestamp"], p["LastEditedTime"], p["TeamsMessageId"], p["SenderEmailAddress"], p["SenderDisplayName"],
        None if recipients is None else [(r["RecipientSmtpAddress"], r["RecipientDisplayName"], r["RecipientType"]) for r in recipients],
        p["IsOwnedThread"], p["IsExternalThread"], p["ThreatTypes"], p["ReportId"],
    )


def as_text(value):
    return json.dumps(value, separators=(",", ":"))


def envelope(category, tenant, p):
    return {"time": ENVELOPE_TIME, "tenantId": tenant, "operationName": "Publish", "category": category,
            "_TimeReceivedBySvc": ENVELOPE_TIME, "properties": p, "Tenant": "DefaultTenant"}


def _envelope_row(category, tenant, properties):
    return (ENVELOPE_TIME, tenant, "Publish", category, ENVELOPE_TIME, properties, "DefaultTenant")


def _schema(spark, ddl):
    return spark.createDataFrame([], ddl).schema


# --- detect_shape ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ddl", "shape"),
    [
        ("Timestamp timestamp, RecipientDetails string, IsExternalThread boolean, IsOwnedThread boolean, ThreatTypes string", "flat"),
        (f"{ENVELOPE_COLUMNS}, properties {PROPS_DDL}, Tenant string, _rescued_data string", "envelope"),
        (f"{ENVELOPE_COLUMNS}, properties string, Tenant string", "envelope"),
        ("Time string, TenantID string, Category string, Properties string", "envelope"),
        (KAFKA_DDL.format(body="value", kind="binary"), "event-hubs"),
        (KAFKA_DDL.format(body="value", kind="string"), "event-hubs"),
        # The Event Hubs connector's own table: a `properties` map, but no `category`.
        ("body binary, partition string, offset string, sequenceNumber bigint, enqueuedTime timestamp, "
         "publisher string, partitionKey string, properties map<string,string>, systemProperties map<string,string>", "event-hubs"),
        # A flat table that happens to have a `value` column: its exact `Timestamp` says flat.
        ("value string, Timestamp timestamp, RecipientDetails string, IsExternalThread boolean, IsOwnedThread boolean, "
         "ThreatTypes string", "flat"),
        ("value bigint, timestamp timestamp", "flat"),
    ],
)
def test_detect_shape_reads_the_schema_alone(spark, ddl, shape):
    assert detect_shape(_schema(spark, ddl)) == shape


# --- envelope -------------------------------------------------------------------------------


def test_envelope_with_struct_properties_gives_the_records_columns_not_the_envelopes_time(spark):
    rows = [
        _envelope_row(ME, "t1", as_struct(props("m1", to=["a@partner.com", "b@partner.com"]))),
        _envelope_row(ME, "t1", as_struct(props("m2", to=None, owned=False, threats="Phish"))),
        _envelope_row(ME, "t2", as_struct(props("m3", to=[], external=None, owned=None))),
        # Another category, and a record with none: never MessageEvents.
        _envelope_row(POST_DELIVERY, "t1", as_struct(props("m4", to=["c@partner.com"]))),
        _envelope_row(None, "t1", as_struct(props("m5", to=["c@partner.com"]))),
    ]
    source_df = spark.createDataFrame(rows, f"{ENVELOPE_COLUMNS}, properties {PROPS_DDL}, Tenant string")
    ts = "2026-03-01T09:06:30.965Z"
    expected_df = spark.createDataFrame(
        [
            ("t1", ts, "/teams/g/channels/c/messages/m1", "rep-m1", "me@contoso.com",
             [("a@partner.com", "a", "User"), ("b@partner.com", "b", "User")], True, True, None, ""),
            ("t1", ts, "/teams/g/channels/c/messages/m2", "rep-m2", "me@contoso.com", None, True, False, "Phish", ""),
            ("t2", ts, "/teams/g/channels/c/messages/m3", "rep-m3", "me@contoso.com", [], None, None, None, ""),
        ],
        "TenantId string, Timestamp string, TeamsMessageId string, ReportId string, SenderEmailAddress string, "
        f"RecipientDetails {RECIPIENTS_DDL}, IsExternalThread boolean, IsOwnedThread boolean, ThreatTypes string, "
        "LastEditedTime string",
    )
    flat_df = to_flat(source_df, "envelope")
    _equal(flat_df, expected_df)
    schema.check_contract(flat_df.schema, "bronze", schema.Requirements(sender=True, message_id=True))


def test_envelope_with_json_text_properties_keeps_nested_values_as_json_text(spark):
    threat_array = props("m3", to=["x@partner.com"], owned=False, threats=None)
    threat_array["ThreatTypes"] = ["Phish", "Spam"]
    no_flags = props("m2", to=None)
    del no_flags["IsOwnedThread"], no_flags["IsExternalThread"]
    rows = [
        _envelope_row(ME, "t1", as_text(props("m1", to=["a@partner.com"]))),
        _envelope_row(ME, "t1", as_text(no_flags)),
        _envelope_row(ME, "t1", as_text(threat_array)),
        _envelope_row(POST_DELIVERY, "t1", as_text(props("m4", to=["c@partner.com"]))),
    ]
    source_df = spark.createDataFrame(rows, f"{ENVELOPE_COLUMNS}, properties string, Tenant string")
    ts = "2026-03-01T09:06:30.965Z"
    recipient = '[{"RecipientSmtpAddress":"%s","RecipientDisplayName":"%s","RecipientType":"User"}]'
    expected_df = spark.createDataFrame(
        [
            ("t1", ts, "/teams/g/channels/c/messages/m1", "rep-m1", "me@contoso.com", recipient % ("a@partner.com", "a"),
             "true", "true", None, ""),
            # JSON null and a missing key alike: null.
            ("t1", ts, "/teams/g/channels/c/messages/m2", "rep-m2", "me@contoso.com", None, None, None, None, ""),
            ("t1", ts, "/teams/g/channels/c/messages/m3", "rep-m3", "me@contoso.com", recipient % ("x@partner.com", "x"),
             "true", "false", '["Phish","Spam"]', ""),
        ],
        FLAT_TEXT_DDL,
    )
    flat_df = to_flat(source_df, "envelope")
    _equal(flat_df, expected_df)
    schema.check_contract(flat_df.schema, "bronze", schema.Requirements(sender=True, message_id=True))


def test_rescued_data_names_the_contract_column_whose_value_it_holds(spark):
    file_path = '"_file_path":"abfss://c@a.dfs.core.windows.net/tenantId=t1/y=2026/m=03/d=01/h=09/m=00/PT1H.json"'
    rows = [
        (*_envelope_row(ME, "t1", as_struct(props("m1", to=["a@partner.com"]))), None),
        (*_envelope_row(ME, "t1", as_struct(props("m2", to=["a@partner.com"], owned=None))),
         '{"properties":{"IsOwnedThread":"yes"},' + file_path + "}"),
        # Rescued for its case alone: as lost as a value of the wrong type.
        (*_envelope_row(ME, "t1", as_struct(props("m3", to=["a@partner.com"], external=None))),
         '{"properties":{"isExternalThread":true},' + file_path + "}"),
        # A property the contract does not read, and the path's `tenantId=`: nothing to fail for.
        (*_envelope_row(ME, "t1", as_struct(props("m4", to=["a@partner.com"]))),
         '{"properties":{"SenderDisplayName":42},' + file_path + "}"),
        (*_envelope_row(POST_DELIVERY, "t1", as_struct(props("m5", to=["a@partner.com"]))),
         '{"properties":{"IsOwnedThread":"yes"}}'),
    ]
    source_df = spark.createDataFrame(rows, f"{ENVELOPE_COLUMNS}, properties {PROPS_DDL}, Tenant string, _rescued_data string")
    expected_df = spark.createDataFrame(
        [("rep-m1", None), ("rep-m2", "IsOwnedThread"), ("rep-m3", "IsExternalThread"), ("rep-m4", None)],
        f"ReportId string, {bronze.RESCUED_CONTRACT_COLUMN} string",
    )
    _equal(to_flat(source_df, "envelope").select("ReportId", bronze.RESCUED_CONTRACT_COLUMN), expected_df)


def test_a_struct_without_a_required_column_is_named_by_the_contract(spark):
    source_df = spark.createDataFrame(
        [_envelope_row(ME, "t1", ("2026-03-01T09:00:00Z", True, True, None))],
        f"{ENVELOPE_COLUMNS}, properties struct<Timestamp:string,IsOwnedThread:boolean,IsExternalThread:boolean,"
        "ThreatTypes:string>, Tenant string",
    )
    with pytest.raises(SchemaContractError, match="missing required column RecipientDetails"):
        schema.check_contract(to_flat(source_df, "envelope").schema, "bronze")


def test_properties_of_no_record_type_fail_naming_the_type(spark):
    source_df = spark.createDataFrame([(ME, 1)], "category string, properties int")
    with pytest.raises(BronzeShapeError, match="properties has type int"):
        to_flat(source_df, detect_shape(source_df.schema))


def test_flat_is_returned_as_it_is(spark):
    flat_df = spark.createDataFrame([("2026-03-01T09:00:00Z",)], "Timestamp string")
    assert to_flat(flat_df, "flat") is flat_df


# --- Event Hubs -----------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "kind"), [("value", "binary"), ("body", "string")])
def test_event_hubs_bodies_give_their_records_and_kafka_columns_are_not_read(spark, body, kind):
    def message(records, offset):
        text = as_text({"records": records})
        value = bytearray(text.encode()) if kind == "binary" else text
        return (b"k", value, "insights-logs-advancedhunting-messageevents", 0, offset, BROKER_TIME, 0)

    first = [
        envelope(ME, "t1", props("m1", to=["a@partner.com"], ts="2026-03-01T09:00:00Z")),
        envelope(POST_DELIVERY, "t1", props("m9", to=["a@partner.com"])),
    ]
    second = [envelope(ME, "t2", props("m2", to=None, owned=False, threats="Phish", ts="2026-03-01T10:00:00Z"))]
    rows = [message(first, 1), message(second, 2)]
    not_json = (b"k", bytearray(b"not json") if kind == "binary" else "not json", "t", 0, 3, BROKER_TIME, 0)
    source_df = spark.createDataFrame([*rows, not_json], KAFKA_DDL.format(body=body, kind=kind))
    recipient = '[{"RecipientSmtpAddress":"a@partner.com","RecipientDisplayName":"a","RecipientType":"User"}]'
    expected_df = spark.createDataFrame(
        [
            ("t1", "2026-03-01T09:00:00Z", "/teams/g/channels/c/messages/m1", "rep-m1", "me@contoso.com", recipient,
             "true", "true", None, ""),
            ("t2", "2026-03-01T10:00:00Z", "/teams/g/channels/c/messages/m2", "rep-m2", "me@contoso.com", None,
             "true", "false", "Phish", ""),
            # The body that is not JSON: one empty record, for the contract to quarantine.
            (None, None, None, None, None, None, None, None, None, None),
        ],
        FLAT_TEXT_DDL,
    )
    assert detect_shape(source_df.schema) == "event-hubs"
    _equal(to_flat(source_df, "event-hubs"), expected_df)


# --- the same records through every shape ---------------------------------------------------

RECORDS = [
    ("t1", props("m1", to=["a@partner.com", "b@Partner.com"], ts="2026-03-01T09:00:00.1234567Z")),
    ("t1", props("m2", to=None, owned=False, threats="Phish", ts="2026-03-01T10:00:00Z")),
    ("t2", props("m3", to=["c@q.com"], external=None, owned=None, ts="2026-03-01T11:00:00Z")),
]


def test_struct_text_variant_and_event_hubs_records_give_the_same_canonical_rows(spark):
    envelope_ddl = f"{ENVELOPE_COLUMNS}, properties {{}}, Tenant string"
    struct_df = spark.createDataFrame([_envelope_row(ME, t, as_struct(p)) for t, p in RECORDS], envelope_ddl.format(PROPS_DDL))
    text_df = spark.createDataFrame([_envelope_row(ME, t, as_text(p)) for t, p in RECORDS], envelope_ddl.format("string"))
    variant_df = text_df.withColumn("properties", F.parse_json("properties"))
    hubs_df = spark.createDataFrame(
        [(b"k", bytearray(as_text({"records": [envelope(ME, t, p) for t, p in RECORDS]}).encode()), "t", 0, 1, BROKER_TIME, 0)],
        KAFKA_DDL.format(body="value", kind="binary"),
    )
    req = schema.Requirements(sender=True, message_id=True)

    def canonical(source_df):
        flat_df = to_flat(source_df, detect_shape(source_df.schema))
        schema.check_contract(flat_df.schema, "bronze", req)
        return schema.to_canonical(flat_df.select(*schema.needed_columns(flat_df.schema, req)), req)

    def at(hour, minute=0, micros=0):
        return datetime(2026, 3, 1, hour, minute, 0, micros, tzinfo=timezone.utc)

    expected_df = spark.createDataFrame(
        [
            ("t1", at(9, micros=123456), "/teams/g/channels/c/messages/m1", "rep-m1", "me@contoso.com",
             ["a@partner.com", "b@Partner.com"], True, True, None, at(9, micros=123456), None, None),
            ("t1", at(10), "/teams/g/channels/c/messages/m2", "rep-m2", "me@contoso.com", None, True, False, "Phish", at(10), None, None),
            ("t2", at(11), "/teams/g/channels/c/messages/m3", "rep-m3", "me@contoso.com", ["c@q.com"], None, None, None, at(11),
             None, None),
        ],
        schema.CANONICAL_SCHEMA,
    )
    for source_df in (struct_df, text_df, variant_df, hubs_df):
        _equal(canonical(source_df), expected_df)


def test_an_event_hubs_body_that_holds_no_records_is_quarantined_not_lost(spark):
    """A body that is not `{"records": [...]}` is one row the contract quarantines (no readable
    Timestamp) and counts; an empty `records` array is no row at all."""
    messages = spark.createDataFrame(
        [(bytearray(b"not json"),), (bytearray(b'{"records": []}'),)], "value binary"
    )
    flat_df = to_flat(messages, "event-hubs")
    canonical = flat_df.transform(schema.to_canonical, schema.Requirements()).select("Timestamp", "QuarantineReason")
    _equal(canonical, spark.createDataFrame([(None, schema.BAD_TIMESTAMP)], "Timestamp timestamp, QuarantineReason string"))
