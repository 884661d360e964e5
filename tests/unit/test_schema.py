"""The MessageEvents contract: one fixture per accepted shape and per malformed kind.

Each test feeds a few inline rows of one source shape through `to_canonical` and compares the
canonical columns with rows written by hand from the contract (docs/input-contract.md) and the
KQL semantics (mv-expand, property access, isempty).
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from partner_hunt.core import schema
from partner_hunt.core.domains import address_domain, recipient_addresses
from partner_hunt.core.schema import Requirements, SchemaContractError, check_contract, to_canonical

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
ADDR = "array<struct<RecipientSmtpAddress:string>>"
OK = None  # a row with no quarantine reason


def _equal(actual_df, expected_df):
    assert_df_equality(actual_df, expected_df, ignore_row_order=True, ignore_nullable=True)


def _source(spark, rows, ddl):
    """A source with the other required columns filled with tidy values; `k` is a row key."""
    return spark.createDataFrame(rows, ddl)


def _canon(source_df, *cols, req=Requirements()):
    # `ReportId` doubles as the row key in these fixtures.
    return to_canonical(source_df, req).select("ReportId", *cols)


# --- RecipientDetails -------------------------------------------------------------------------

TIDY = "Timestamp timestamp, IsExternalThread boolean, IsOwnedThread boolean, ThreatTypes string, ReportId string"


def _with_recipients(spark, dtype, values):
    rows = [(T0, True, True, "", f"r{i}", v) for i, v in enumerate(values)]
    return _source(spark, rows, f"{TIDY}, RecipientDetails {dtype}")


def test_recipients_array_of_struct_keeps_null_and_empty_apart(spark):
    dtype = "array<struct<RecipientSmtpAddress:string,RecipientDisplayName:string,RecipientType:string>>"
    source_df = _with_recipients(
        spark,
        dtype,
        [
            [("a@p.com", "A", "To"), ("b@q.com", "B", "Cc")],
            None,  # mv-expand: one row, domain ""
            [],  # mv-expand: no row
            [None, (None, "no address", "To")],
        ],
    )
    expected = spark.createDataFrame(
        [
            ("r0", ["a@p.com", "b@q.com"], OK),
            ("r1", None, OK),
            ("r2", [], OK),
            ("r3", [None, None], OK),
        ],
        "ReportId string, RecipientAddresses array<string>, QuarantineReason string",
    )
    _equal(_canon(source_df, "RecipientAddresses", "QuarantineReason"), expected)


def test_recipients_struct_without_address_field_gives_null_addresses(spark):
    source_df = _with_recipients(spark, "array<struct<RecipientDisplayName:string>>", [[("A",), ("B",)], None])
    expected = spark.createDataFrame(
        [("r0", [None, None]), ("r1", None)], "ReportId string, RecipientAddresses array<string>"
    )
    _equal(_canon(source_df, "RecipientAddresses"), expected)


def test_recipients_array_of_map(spark):
    source_df = _with_recipients(
        spark,
        "array<map<string,string>>",
        [
            [{"RecipientSmtpAddress": "a@p.com", "RecipientType": "To"}, {"RecipientType": "Cc"}],
            # Map keys are data: KQL property access is case-sensitive, so this key misses.
            [{"recipientsmtpaddress": "x@p.com"}],
            None,
            [],
        ],
    )
    expected = spark.createDataFrame(
        [
            ("r0", ["a@p.com", None], OK),
            ("r1", [None], OK),
            ("r2", None, OK),
            ("r3", [], OK),
        ],
        "ReportId string, RecipientAddresses array<string>, QuarantineReason string",
    )
    _equal(_canon(source_df, "RecipientAddresses", "QuarantineReason"), expected)


def test_recipients_json_string_array_null_and_empty(spark):
    source_df = _with_recipients(
        spark,
        "string",
        [
            '[{"RecipientSmtpAddress":"a@p.com","RecipientType":"To"},{"RecipientSmtpAddress":"b@q.com"}]',
            ' [ {"RecipientSmtpAddress":"c@p.com"}, "not-an-object", null, {"Other":1} ] ',
            "[]",
            None,
            "null",
            "",
        ],
    )
    expected = spark.createDataFrame(
        [
            ("r0", ["a@p.com", "b@q.com"], OK),
            # Elements that are not objects, or lack the key, give a null address (domain "").
            ("r1", ["c@p.com", None, None, None], OK),
            ("r2", [], OK),
            ("r3", None, OK),
            ("r4", None, OK),
            ("r5", None, OK),
        ],
        "ReportId string, RecipientAddresses array<string>, QuarantineReason string",
    )
    _equal(_canon(source_df, "RecipientAddresses", "QuarantineReason"), expected)


def test_recipients_json_single_object_has_bag_semantics(spark):
    """mv-expand kind=bag: one row per key; only the RecipientSmtpAddress row has an address."""
    source_df = _with_recipients(
        spark,
        "string",
        ['{"RecipientSmtpAddress":"a@p.com","RecipientType":"To","RecipientDisplayName":"A"}', "{}"],
    )
    domains_df = (
        to_canonical(source_df)
        .select("ReportId", F.explode(recipient_addresses(F.col("RecipientAddresses"))).alias("Address"))
        .select("ReportId", address_domain(F.col("Address")).alias("Domain"))
    )
    expected = spark.createDataFrame(
        [("r0", "p.com"), ("r0", ""), ("r0", "")], "ReportId string, Domain string"
    )
    _equal(domains_df, expected)


def test_recipients_unparseable_json_is_quarantined(spark):
    source_df = _with_recipients(
        spark,
        "string",
        ['[{"RecipientSmtpAddress":"a@p.com"}', "not json", "42", '"a@p.com"', '[{"RecipientSmtpAddress":"ok@p.com"}]'],
    )
    bad = schema.BAD_RECIPIENTS
    expected = spark.createDataFrame(
        [("r0", None, bad), ("r1", None, bad), ("r2", None, bad), ("r3", None, bad), ("r4", ["ok@p.com"], OK)],
        "ReportId string, RecipientAddresses array<string>, QuarantineReason string",
    )
    _equal(_canon(source_df, "RecipientAddresses", "QuarantineReason"), expected)


# --- flags ------------------------------------------------------------------------------------

def _with_flags(spark, dtype, pairs):
    rows = [(T0, ext, own, "", f"r{i}", None) for i, (ext, own) in enumerate(pairs)]
    return _source(
        spark,
        rows,
        f"Timestamp timestamp, IsExternalThread {dtype}, IsOwnedThread {dtype}, ThreatTypes string, "
        f"ReportId string, RecipientDetails {ADDR}",
    )


FLAG_COLS = ("IsExternalThread", "IsOwnedThread", "QuarantineReason")
FLAG_DDL = "ReportId string, IsExternalThread boolean, IsOwnedThread boolean, QuarantineReason string"


def test_flags_boolean(spark):
    source_df = _with_flags(spark, "boolean", [(True, False), (False, True), (None, True)])
    expected = spark.createDataFrame(
        [("r0", True, False, OK), ("r1", False, True, OK), ("r2", None, True, OK)], FLAG_DDL
    )
    _equal(_canon(source_df, *FLAG_COLS), expected)


def test_flags_integer_0_1_and_2_is_bad(spark):
    source_df = _with_flags(spark, "int", [(1, 0), (0, 1), (None, 1), (2, 1), (1, -1)])
    expected = spark.createDataFrame(
        [
            ("r0", True, False, OK),
            ("r1", False, True, OK),
            ("r2", None, True, OK),
            ("r3", None, True, schema.BAD_FLAG),
            ("r4", True, None, schema.BAD_FLAG),
        ],
        FLAG_DDL,
    )
    _equal(_canon(source_df, *FLAG_COLS), expected)


def test_flags_long_and_double(spark):
    """pandas writes an integer column with nulls as float64: 1.0 / 0.0 are accepted too."""
    source_df = _with_flags(spark, "double", [(1.0, 0.0), (None, 1.0), (0.5, 1.0)])
    expected = spark.createDataFrame(
        [("r0", True, False, OK), ("r1", None, True, OK), ("r2", None, True, schema.BAD_FLAG)], FLAG_DDL
    )
    _equal(_canon(source_df, *FLAG_COLS), expected)


def test_flags_strings_and_yes_is_bad(spark):
    source_df = _with_flags(
        spark,
        "string",
        [("true", "false"), ("1", "0"), (" TRUE ", "False"), ("", None), ("yes", "1"), ("1", "2")],
    )
    expected = spark.createDataFrame(
        [
            ("r0", True, False, OK),
            ("r1", True, False, OK),
            ("r2", True, False, OK),
            # An empty string is a missing flag (null), not a malformed one.
            ("r3", None, None, OK),
            ("r4", None, True, schema.BAD_FLAG),
            ("r5", True, None, schema.BAD_FLAG),
        ],
        FLAG_DDL,
    )
    _equal(_canon(source_df, *FLAG_COLS), expected)


# --- ThreatTypes ------------------------------------------------------------------------------

def _with_threats(spark, dtype, values):
    rows = [(T0, True, False, v, f"r{i}", None) for i, v in enumerate(values)]
    return _source(
        spark,
        rows,
        f"Timestamp timestamp, IsExternalThread boolean, IsOwnedThread boolean, ThreatTypes {dtype}, "
        f"ReportId string, RecipientDetails {ADDR}",
    )


THREAT_DDL = "ReportId string, ThreatTypes string, QuarantineReason string"


def test_threats_string_kept_byte_for_byte(spark):
    source_df = _with_threats(spark, "string", ["Phish, Malware", "", None, " ", "[not json]"])
    expected = spark.createDataFrame(
        [("r0", "Phish, Malware", OK), ("r1", "", OK), ("r2", None, OK), ("r3", " ", OK), ("r4", "[not json]", OK)],
        THREAT_DDL,
    )
    _equal(_canon(source_df, "ThreatTypes", "QuarantineReason"), expected)


def test_threats_array_of_strings(spark):
    source_df = _with_threats(spark, "array<string>", [["Phish", "Malware"], [], [""], None, [" "], [None, "Spam", ""]])
    expected = spark.createDataFrame(
        [
            ("r0", "Phish,Malware", OK),
            ("r1", "", OK),
            ("r2", "", OK),
            ("r3", None, OK),
            ("r4", " ", OK),
            ("r5", "Spam", OK),
        ],
        THREAT_DDL,
    )
    _equal(_canon(source_df, "ThreatTypes", "QuarantineReason"), expected)


def test_threats_json_string_of_an_array(spark):
    source_df = _with_threats(spark, "string", ['["Phish","Spam"]', "[]", '[""]', ' ["Malware"] ', "Phish"])
    expected = spark.createDataFrame(
        [("r0", "Phish,Spam", OK), ("r1", "", OK), ("r2", "", OK), ("r3", "Malware", OK), ("r4", "Phish", OK)],
        THREAT_DDL,
    )
    _equal(_canon(source_df, "ThreatTypes", "QuarantineReason"), expected)


# --- Timestamp --------------------------------------------------------------------------------

def _with_timestamps(spark, dtype, values):
    rows = [(v, True, True, "", f"r{i}", None) for i, v in enumerate(values)]
    return _source(
        spark,
        rows,
        f"Timestamp {dtype}, IsExternalThread boolean, IsOwnedThread boolean, ThreatTypes string, "
        f"ReportId string, RecipientDetails {ADDR}",
    )


TS_DDL = "ReportId string, Timestamp timestamp, QuarantineReason string"


def test_timestamp_typed_and_null_is_bad(spark):
    source_df = _with_timestamps(spark, "timestamp", [T0, None])
    expected = spark.createDataFrame([("r0", T0, OK), ("r1", None, schema.BAD_TIMESTAMP)], TS_DDL)
    _equal(_canon(source_df, "Timestamp", "QuarantineReason"), expected)


def test_timestamp_strings(spark):
    source_df = _with_timestamps(
        spark,
        "string",
        [
            "2026-03-01T12:00:00Z",
            "2026-03-01T12:00:00.1234567Z",  # Kusto's 7 fraction digits
            "2026-03-01 12:00:00",  # no zone: UTC
            "2026-03-01T14:00:00+02:00",
            "2026-03-01",
            "garbage",
            "",
            None,
        ],
    )
    expected = spark.createDataFrame(
        [
            ("r0", T0, OK),
            ("r1", datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc), OK),
            ("r2", T0, OK),
            ("r3", T0, OK),
            ("r4", datetime(2026, 3, 1, tzinfo=timezone.utc), OK),
            ("r5", None, schema.BAD_TIMESTAMP),
            ("r6", None, schema.BAD_TIMESTAMP),
            ("r7", None, schema.BAD_TIMESTAMP),
        ],
        TS_DDL,
    )
    _equal(_canon(source_df, "Timestamp", "QuarantineReason"), expected)


def test_timestamp_ntz_and_zone_less_strings_do_not_depend_on_the_session_zone(spark):
    ntz_df = _with_timestamps(spark, "timestamp_ntz", [datetime(2026, 3, 1, 12, 0), None])
    text_df = _with_timestamps(spark, "string", ["2026-03-01 12:00:00"])
    date_df = _with_timestamps(spark, "date", [date(2026, 3, 1)])
    previous = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        actual = (
            _canon(ntz_df, "Timestamp", "QuarantineReason")
            .unionByName(_canon(text_df.withColumn("ReportId", F.lit("text")), "Timestamp", "QuarantineReason"))
            .unionByName(_canon(date_df.withColumn("ReportId", F.lit("date")), "Timestamp", "QuarantineReason"))
            .select("ReportId", F.unix_micros("Timestamp").alias("micros"), "QuarantineReason")
        )
        micros = int(T0.timestamp()) * 1_000_000
        midnight = int(datetime(2026, 3, 1, tzinfo=timezone.utc).timestamp()) * 1_000_000
        expected = spark.createDataFrame(
            [("r0", micros, OK), ("r1", None, schema.BAD_TIMESTAMP), ("text", micros, OK), ("date", midnight, OK)],
            "ReportId string, micros long, QuarantineReason string",
        )
        _equal(actual, expected)
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous)


# --- keys: TenantId, TeamsMessageId -----------------------------------------------------------

KEYS_DDL = (
    f"TenantId string, TeamsMessageId string, Timestamp timestamp, IsExternalThread boolean, "
    f"IsOwnedThread boolean, ThreatTypes string, ReportId string, RecipientDetails {ADDR}"
)


def test_missing_message_id_is_bad_only_when_required(spark):
    rows = [("t1", "m1", T0, True, True, "", "r0", None), ("t1", None, T0, True, True, "", "r1", None),
            ("t1", " ", T0, True, True, "", "r2", None)]
    source_df = _source(spark, rows, KEYS_DDL)
    needed = _canon(source_df, "TeamsMessageId", "QuarantineReason", req=Requirements(message_id=True))
    expected = spark.createDataFrame(
        [("r0", "m1", OK), ("r1", None, schema.MISSING_MESSAGE_ID), ("r2", " ", schema.MISSING_MESSAGE_ID)],
        "ReportId string, TeamsMessageId string, QuarantineReason string",
    )
    _equal(needed, expected)
    not_needed = _canon(source_df, "TeamsMessageId", "QuarantineReason")
    expected = spark.createDataFrame(
        [("r0", "m1", OK), ("r1", None, OK), ("r2", " ", OK)],
        "ReportId string, TeamsMessageId string, QuarantineReason string",
    )
    _equal(not_needed, expected)


def test_null_tenant_is_bad_when_the_column_exists(spark):
    rows = [("t1", "m1", T0, True, True, "", "r0", None), (None, "m2", T0, True, True, "", "r1", None),
            ("", "m3", T0, True, True, "", "r2", None)]
    source_df = _source(spark, rows, KEYS_DDL)
    expected = spark.createDataFrame(
        [("r0", "t1", OK), ("r1", None, schema.MISSING_TENANT), ("r2", "", schema.MISSING_TENANT)],
        "ReportId string, TenantId string, QuarantineReason string",
    )
    _equal(_canon(source_df, "TenantId", "QuarantineReason"), expected)


def test_absent_tenant_column_is_the_default_tenant(spark):
    source_df = _with_flags(spark, "boolean", [(True, True)])
    expected = spark.createDataFrame(
        [("r0", "00000000-0000-0000-0000-000000000000", OK)],
        "ReportId string, TenantId string, QuarantineReason string",
    )
    _equal(_canon(source_df, "TenantId", "QuarantineReason"), expected)


def test_first_reason_wins_and_the_source_record_is_kept(spark):
    rows = [
        (None, "2", "not json", "", "r0"),  # bad time, bad flag, bad recipients: time comes first
        (T0, "2", "not json", "", "r1"),  # flag before recipients
        (T0, "1", "not json", "", "r2"),
        (T0, "1", "[]", "", "r3"),
    ]
    source_df = spark.createDataFrame(
        [(ts, ext, "0", th, rid, rec) for ts, ext, rec, th, rid in rows],
        "Timestamp timestamp, IsExternalThread string, IsOwnedThread string, ThreatTypes string, "
        "ReportId string, RecipientDetails string",
    )
    expected = spark.createDataFrame(
        [
            ("r0", schema.BAD_TIMESTAMP,
             '{"IsExternalThread":"2","IsOwnedThread":"0","ThreatTypes":"","ReportId":"r0","RecipientDetails":"not json"}'),
            ("r1", schema.BAD_FLAG,
             '{"Timestamp":"2026-03-01T12:00:00.000Z","IsExternalThread":"2","IsOwnedThread":"0","ThreatTypes":"",'
             '"ReportId":"r1","RecipientDetails":"not json"}'),
            ("r2", schema.BAD_RECIPIENTS,
             '{"Timestamp":"2026-03-01T12:00:00.000Z","IsExternalThread":"1","IsOwnedThread":"0","ThreatTypes":"",'
             '"ReportId":"r2","RecipientDetails":"not json"}'),
            ("r3", OK, None),
        ],
        "ReportId string, QuarantineReason string, SourceRecord string",
    )
    _equal(_canon(source_df, "QuarantineReason", "SourceRecord"), expected)


def test_column_names_match_case_insensitively_and_extras_are_ignored(spark):
    source_df = spark.createDataFrame(
        [("2026-03-01T12:00:00Z", 1, 1, "", "r0", '[{"RecipientSmtpAddress":"a@p.com"}]', "extra")],
        "timestamp string, isexternalthread int, ISOWNEDTHREAD int, threattypes string, reportid string, "
        "recipientdetails string, `Some.Extra` string",
    )
    check_contract(source_df.schema, "lake.events")
    pruned_df = source_df.select(*schema.needed_columns(source_df.schema, Requirements()))
    assert pruned_df.columns == ["Timestamp", "RecipientDetails", "IsExternalThread", "IsOwnedThread", "ThreatTypes", "ReportId"]
    expected = spark.createDataFrame(
        [("r0", T0, ["a@p.com"], True, True, OK)],
        "ReportId string, Timestamp timestamp, RecipientAddresses array<string>, IsExternalThread boolean, "
        "IsOwnedThread boolean, QuarantineReason string",
    )
    actual = _canon(source_df, "Timestamp", "RecipientAddresses", "IsExternalThread", "IsOwnedThread", "QuarantineReason")
    _equal(actual, expected)


def test_canonical_output_has_the_canonical_schema(spark):
    source_df = _with_recipients(spark, "string", ["[]"])
    assert to_canonical(source_df).schema.simpleString() == schema.CANONICAL_SCHEMA.simpleString()


# --- check_contract ---------------------------------------------------------------------------

def test_missing_required_column_names_the_column_and_the_table(spark):
    source_df = spark.createDataFrame(
        [], "Timestamp timestamp, IsExternalThread boolean, IsOwnedThread boolean, ThreatTypes string"
    )
    with pytest.raises(SchemaContractError) as err:
        check_contract(source_df.schema, "/lake/message_events")
    message = str(err.value)
    assert "RecipientDetails" in message and "/lake/message_events" in message
    assert "\n" not in message


def test_missing_optional_column_is_required_by_the_options(spark):
    source_df = _with_flags(spark, "boolean", [])
    check_contract(source_df.schema, "t")
    with pytest.raises(SchemaContractError, match="SenderEmailAddress, TeamsMessageId"):
        check_contract(source_df.schema, "t", Requirements(sender=True, message_id=True))


@pytest.mark.parametrize(
    ("column", "dtype"),
    [
        ("RecipientDetails", "array<string>"),
        ("RecipientDetails", "map<string,string>"),
        ("IsExternalThread", "array<int>"),
        ("ThreatTypes", "array<int>"),
        ("Timestamp", "bigint"),
        ("TenantId", "int"),
    ],
)
def test_unaccepted_type_is_named(spark, column, dtype):
    tidy = {
        "Timestamp": "timestamp",
        "RecipientDetails": ADDR,
        "IsExternalThread": "boolean",
        "IsOwnedThread": "boolean",
        "ThreatTypes": "string",
    }
    tidy[column] = dtype
    source_df = spark.createDataFrame([], ", ".join(f"{k} {v}" for k, v in tidy.items()))
    with pytest.raises(SchemaContractError) as err:
        check_contract(source_df.schema, "events")
    message = str(err.value)
    assert column in message and source_df.schema[column].dataType.simpleString() in message and "accepted:" in message
