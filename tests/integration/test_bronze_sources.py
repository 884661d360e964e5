"""Bronze tables read as they are, end to end through `run`: the same events as a flat Delta table,
as Auto Loader's envelope (properties as a struct, and as JSON text) and as an Event Hubs table
read through Kafka give the same results, in both modes; a rescued contract value fails the run
before anything is written."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from partner_hunt.commands.run import run
from partner_hunt.config import config_from_mapping
from partner_hunt.core.bronze import BronzeShapeError
from partner_hunt.store import io
from partner_hunt.store.locations import TableRef

pytestmark = pytest.mark.integration

ME = "AdvancedHunting-MessageEvents"
START, END = datetime(2026, 3, 1, tzinfo=timezone.utc), datetime(2026, 3, 2, tzinfo=timezone.utc)
# The envelope's `time` and Kafka's `timestamp` fall outside the window: read as Timestamp, they
# would leave every row out of it.
ENVELOPE_TIME = "2026-03-05T00:00:00.0000000Z"
BROKER_TIME = datetime(2026, 3, 9, tzinfo=timezone.utc)
RESULT_COLS = ["TenantId", "SenderFromDomain", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats", "Bad_Traffic_Percentage"]
RESULT_DDL = (
    "TenantId string, SenderFromDomain string, OutboundTeamsMessages long, IncomingTeamsMessagesWithThreats long, "
    "Bad_Traffic_Percentage double"
)
# (tenant, message, hour, sender, recipients or None, external, owned, threats)
EVENTS = [
    ("t1", "o1", 9, "me@contoso.com", ["a@partner.com", "b@partner.com"], True, True, None),
    ("t1", "o2", 9, "me@contoso.com", None, True, True, None),
    ("t1", "i1", 10, "evil@Partner.com", ["x@partner.com", "us@contoso.com"], True, False, "Phish"),
    ("t1", "i2", 11, "evil@partner.com", None, True, False, "Malware"),
    ("t1", "n1", 12, "someone@partner.com", ["c@partner.com"], None, None, "Phish"),
    ("t2", "o3", 9, "u@fabrikam-customer.com", ["d@fabrikam.com"], True, True, None),
    ("t2", "i3", 10, "bad@fabrikam.com", ["d@fabrikam.com"], True, False, "Phish"),
]
# Written by hand from the query. kql: both sides take the recipients' domains, (message x
# recipient) rows; the null-flag row is on neither side; contoso.com is inbound only.
EXPECTED = {
    "kql": [("t1", "partner.com", 2, 1, 0.5), ("t1", "", 1, 1, 1.0), ("t2", "fabrikam.com", 1, 1, 1.0)],
    # corrected: distinct messages; inbound takes the sender's domain, normalised (Partner.com);
    # "" has no inbound message left, so it is not a result.
    "corrected": [("t1", "partner.com", 1, 2, 2.0), ("t2", "fabrikam.com", 1, 1, 1.0)],
}
RECIPIENTS_DDL = "array<struct<RecipientSmtpAddress:string,RecipientDisplayName:string,RecipientType:string>>"
PROPS_DDL = (
    "struct<Timestamp:string,LastEditedTime:string,TeamsMessageId:string,SenderEmailAddress:string,"
    f"SenderDisplayName:string,RecipientDetails:{RECIPIENTS_DDL},IsOwnedThread:boolean,IsExternalThread:boolean,"
    "ThreatTypes:string,ReportId:string,MessageType:string>"
)
ENVELOPE_DDL = (
    f"time string, tenantId string, operationName string, category string, _TimeReceivedBySvc string, "
    f"properties {PROPS_DDL}, Tenant string"
)


def _timestamp(hour):
    return f"2026-03-01T{hour:02d}:06:30.965Z"


def _properties(msg, hour, sender, to, external, owned, threats):
    """A record's properties as Defender's Streaming API writes them."""
    return {
        "Timestamp": _timestamp(hour),
        "LastEditedTime": "",
        "TeamsMessageId": f"/teams/g/channels/c/messages/{msg}",
        "SenderEmailAddress": sender,
        "SenderDisplayName": sender.split("@")[0],
        "RecipientDetails": None if to is None else [
            {"RecipientSmtpAddress": a, "RecipientDisplayName": a.split("@")[0], "RecipientType": "User"} for a in to
        ],
        "IsOwnedThread": owned,
        "IsExternalThread": external,
        "ThreatTypes": threats,
        "ReportId": f"rep-{msg}",
        "MessageType": "Chat",
    }


def _envelopes():
    """The events as envelopes, plus a record of another category that would count if it were read."""
    records = [
        {"time": ENVELOPE_TIME, "tenantId": tenant, "operationName": "Publish", "category": ME,
         "_TimeReceivedBySvc": ENVELOPE_TIME, "properties": _properties(msg, hour, *rest), "Tenant": "DefaultTenant"}
        for tenant, msg, hour, *rest in EVENTS
    ]
    other = _properties("p1", 9, "me@contoso.com", ["e@partner.com"], True, True, None)
    records.insert(2, {**records[0], "category": "AdvancedHunting-MessagePostDeliveryEvents", "properties": other})
    return records


def _save(df, path):
    df.write.format("delta").save(str(path))
    return str(path)


def _flat(spark, path):
    rows = [
        (tenant, datetime.fromisoformat(_timestamp(hour)), f"/teams/g/channels/c/messages/{msg}", f"rep-{msg}", sender,
         None if to is None else [(a, a.split("@")[0], "User") for a in to], external, owned, threats)
        for tenant, msg, hour, sender, to, external, owned, threats in EVENTS
    ]
    ddl = (
        "TenantId string, Timestamp timestamp, TeamsMessageId string, ReportId string, SenderEmailAddress string, "
        f"RecipientDetails {RECIPIENTS_DDL}, IsExternalThread boolean, IsOwnedThread boolean, ThreatTypes string"
    )
    return _save(spark.createDataFrame(rows, ddl), path)


def _lines(spark, records):
    return spark.createDataFrame([(json.dumps(r),) for r in records], "line string")


def _auto_loader_struct(spark, path, records, rescued=None):
    """As Auto Loader lands JSON with a given schema: the envelope's columns, `properties` a struct."""
    parsed = _lines(spark, records).select(F.from_json("line", ENVELOPE_DDL).alias("r")).select("r.*")
    rescued_col = F.lit(None).cast("string") if rescued is None else rescued
    return _save(parsed.withColumn("_rescued_data", rescued_col), path)


def _auto_loader_text(spark, path, records):
    """As Auto Loader lands JSON read as text: `properties` a JSON string."""
    line = F.col("line")
    return _save(
        _lines(spark, records).select(
            *[F.get_json_object(line, f"$.{name}").alias(name) for name in ("time", "tenantId", "operationName", "category",
                                                                             "_TimeReceivedBySvc", "properties", "Tenant")],
            F.lit(None).cast("string").alias("_rescued_data"),
        ),
        path,
    )


def _event_hubs(spark, path, records):
    """An Event Hubs table read through Kafka: the records in two messages' binary `value`."""
    messages = [records[:3], records[3:]]
    rows = [
        (b"insights", bytearray(json.dumps({"records": batch}).encode()), "insights-logs-advancedhunting-messageevents",
         0, offset, BROKER_TIME, 0)
        for offset, batch in enumerate(messages)
    ]
    ddl = "key binary, value binary, topic string, partition int, offset bigint, timestamp timestamp, timestampType int"
    return _save(spark.createDataFrame(rows, ddl), path)


@pytest.fixture(scope="module")
def sources(spark, tmp_path_factory):
    """The same events in each shape, written once for the module: its tests only read them."""
    lake = tmp_path_factory.mktemp("bronze")
    records = _envelopes()
    return {
        "flat": _flat(spark, lake / "flat"),
        "auto_loader_struct": _auto_loader_struct(spark, lake / "auto_loader_struct", records),
        "auto_loader_text": _auto_loader_text(spark, lake / "auto_loader_text", records),
        "event_hubs": _event_hubs(spark, lake / "event_hubs", records),
    }


def _config(source, output, mode="kql"):
    return config_from_mapping(
        {
            "source": source,
            "output": str(output),
            "hunt": {"start": START.isoformat(), "end": END.isoformat(), "mode": mode},
            "evidence": {"enabled": False},
            "alerts": {"enabled": False},
        }
    )


def _equal(actual_df, expected_df):
    assert_df_equality(actual_df, expected_df, ignore_row_order=True, ignore_nullable=True)


def _results(spark, sources, tmp_path, mode, names):
    """Each named source's results table after `run` in `mode`."""
    results = {}
    for name in names:
        output = tmp_path / mode / name / "results"
        report = run(spark, _config(sources[name], output, mode))
        # The other category's record is not read; the flat table has only MessageEvents.
        assert (report.rows_read, report.rows_quarantined) == (len(EVENTS), 0), name
        results[name] = spark.read.format("delta").load(str(output)).select(*RESULT_COLS)
    return results


BRONZE = ("auto_loader_struct", "auto_loader_text", "event_hubs")


def test_every_bronze_shape_gives_the_flat_tables_results_in_kql_mode(spark, sources, tmp_path, caplog):
    expected_df = spark.createDataFrame(EXPECTED["kql"], RESULT_DDL)
    with caplog.at_level(logging.INFO, logger="partner_hunt"):
        results = _results(spark, sources, tmp_path, "kql", ("flat", *BRONZE))
    _equal(results["flat"], expected_df)
    for name in BRONZE:
        _equal(results[name], results["flat"])
        _equal(results[name], expected_df)
    said = [r.getMessage() for r in caplog.records if r.name == "partner_hunt"]
    assert sum("is an Auto Loader bronze table" in line for line in said) == 2
    assert sum("is an Event Hubs bronze table" in line for line in said) == 1
    assert not any(f"source {sources['flat']} is" in line for line in said)


def test_every_bronze_shape_gives_the_expected_results_in_corrected_mode(spark, sources, tmp_path):
    # The flat table's corrected results are tested throughout the suite; here only the bronze
    # shapes run (one `run` less), against the same hand-written rows.
    expected_df = spark.createDataFrame(EXPECTED["corrected"], RESULT_DDL)
    for results_df in _results(spark, sources, tmp_path, "corrected", BRONZE).values():
        _equal(results_df, expected_df)


def test_a_rescued_flag_fails_the_run_naming_it_and_writes_no_results(spark, tmp_path):
    records = _envelopes()
    # Auto Loader could not fit "yes" into the boolean IsOwnedThread: null there, the value rescued.
    rescued_msg = records[3]["properties"]["TeamsMessageId"]
    records[3]["properties"]["IsOwnedThread"] = None
    rescued = F.when(
        F.col("properties.TeamsMessageId") == F.lit(rescued_msg),
        F.lit('{"properties":{"IsOwnedThread":"yes"},"_file_path":"abfss://c@a.dfs.core.windows.net/tenantId=t1/PT1H.json"}'),
    )
    source = _auto_loader_struct(spark, tmp_path / "rescued", records, rescued)
    output = tmp_path / "out" / "results"
    with pytest.raises(BronzeShapeError, match=r"_rescued_data holds its IsOwnedThread"):
        run(spark, _config(source, output))
    assert not io.table_exists(spark, TableRef.parse(str(output)))
    assert not io.table_exists(spark, TableRef.parse(f"{output}_quarantine"))


@pytest.mark.parametrize("shape", ["event_hubs"])
def test_the_refresh_over_a_bronze_table_recomputes_only_the_days_its_appends_touch(spark, tmp_path, shape):
    from datetime import date

    from partner_hunt.commands.backfill import backfill
    from partner_hunt.commands.refresh import run_incremental

    records = _envelopes()
    writers = {"auto_loader_struct": _auto_loader_struct, "event_hubs": _event_hubs}
    source = writers[shape](spark, tmp_path / "bronze", records)
    config = config_from_mapping(
        {"source": source, "output": str(tmp_path / "out"), "hunt": {"end": "2026-03-03", "trailing_days": 2},
         "evidence": {"enabled": False}, "alerts": {"enabled": False}}
    )
    backfill(spark, config, date(2026, 3, 1), date(2026, 3, 3))
    # A record of 2 March lands (Auto Loader and the Kafka reader only ever append).
    late = {**records[0], "properties": {**records[0]["properties"], "Timestamp": "2026-03-02T08:00:00.000Z", "ReportId": "late"}}
    staged = tmp_path / "staged"
    writers[shape](spark, staged, [late])
    spark.read.format("delta").load(str(staged)).write.format("delta").mode("append").save(source)
    report = run_incremental(spark, config)
    assert (report.refresh_kind, report.days_computed) == ("incremental", [date(2026, 3, 2)])
