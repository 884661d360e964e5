"""`partner-hunt ingest`: export folders built by hand in each shape Defender writes, ingested and
checked row for row. Expected rows are written from docs/ingest.md, never from the code."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from partner_hunt.commands import ingest
from partner_hunt.commands.steps.window import plan_window
from partner_hunt.config import config_from_mapping
from partner_hunt.core import caching
from partner_hunt.store import faults, io, runlog
from partner_hunt.store.locations import TableRef

pytestmark = pytest.mark.integration

TENANT = "11111111-2222-3333-4444-555555555555"
HOUR = "tenantId={tenant}/y=2026/m=03/d={day:02d}/h={hour:02d}/m=00/PT1H.json"


def properties(report, ts, to, owned=True, external=True, threats=None, sender="me@contoso.com"):
    props = {
        "Timestamp": ts,
        "TeamsMessageId": f"/teams/t/messages/{report or 'x'}",
        "SenderEmailAddress": sender,
        "SenderDisplayName": "Me",
        "RecipientDetails": None if to is None else [{"RecipientSmtpAddress": a, "RecipientDisplayName": "N"} for a in to],
        "IsOwnedThread": owned,
        "IsExternalThread": external,
        "ThreatTypes": threats,
        "MessageType": "Text",
    }
    if report is not None:
        props["ReportId"] = report
    return props


def envelope(props, category="AdvancedHunting-MessageEvents", tenant=TENANT):
    """One line as the Streaming API writes it to storage (no line end)."""
    return json.dumps(
        {
            "time": "2026-03-01T09:59:59.1234567Z",
            "tenantId": tenant,
            "operationName": "Publish",
            "category": category,
            "_TimeReceivedBySvc": "2026-03-01T09:59:58.0000000Z",
            "properties": props,
            "Tenant": "DefaultTenant",
        }
    )


def write_blob(folder: Path, day: int, hour: int, text: str, mode: str = "w") -> Path:
    path = folder / HOUR.format(tenant=TENANT, day=day, hour=hour)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode, encoding="utf-8", newline="") as handle:
        handle.write(text)
    return path


def crlf(*lines: str) -> str:
    return "".join(f"{line}\r\n" for line in lines)


R1 = properties("r1", "2026-03-01T09:00:00.000Z", ["a@p.com", "b@p.com"])
R2 = properties("r2", "2026-03-01T09:01:00.000Z", ["me@contoso.com"], owned=False, threats="Phish", sender="evil@p.com")
R4 = properties("r4", "2026-03-01T09:04:00.000Z", None, owned=None, external=None)
R5 = properties("r5", "2026-03-01T09:05:00.000Z", ["c@p.com"])
R6 = properties("r6", "2026-03-01T10:00:00.000Z", ["x@q.com"], owned=False, threats="Malware", sender="bad@q.com")
R7 = properties("r7", "2026-02-27T05:00:00.000Z", ["d@q.com"])
NO_ID = properties(None, "2026-03-01T10:30:00.000Z", ["e@q.com"])


def run_ingest(spark, folder, into, output, record="redacted"):
    config = config_from_mapping({"source": str(into), "output": str(output), "quality": {"quarantine_record": record}})
    return ingest.ingest(spark, config, "defender-storage", str(folder))


def table_rows(spark, into):
    return io.read_table(spark, TableRef(str(into), True)).select(
        "TenantId", "ReportId", "Timestamp", F.col("RecipientDetails.RecipientSmtpAddress").alias("To"),
        "IsOwnedThread", "IsExternalThread", "ThreatTypes", "MessageType", "IngestLineNumber",
    )


ROWS_DDL = (
    "TenantId string, ReportId string, Timestamp timestamp, To array<string>, IsOwnedThread boolean, "
    "IsExternalThread boolean, ThreatTypes string, MessageType string, IngestLineNumber long"
)


def ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def expected_row(props, line):
    to = None if props["RecipientDetails"] is None else [r["RecipientSmtpAddress"] for r in props["RecipientDetails"]]
    return (TENANT, props.get("ReportId"), ts(props["Timestamp"]), to, props["IsOwnedThread"], props["IsExternalThread"], props["ThreatTypes"], "Text", line)


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory):
    """An export folder ingested three times as it grows: each stage's reports and the paths."""
    tmp = tmp_path_factory.mktemp("ingest")
    folder, into, output = tmp / "insights-logs-advancedhunting-messageevents", tmp / "lake" / "message_events", tmp / "lake" / "results"
    r5_line = envelope(R5)
    hour9 = crlf(envelope(R1), "not json {", envelope(R2), envelope(R1, category="AdvancedHunting-EmailEvents"), envelope(R4))
    # The blob is still being appended: its last line has no line end yet.
    write_blob(folder, 1, 9, hour9 + r5_line[:50])
    first = run_ingest(spark, folder, into, output)
    # The line is completed and the blob grows; a new hour repeats r1 (at-least-once) and holds a
    # record without ReportId twice; a blob for an hour days old appears late.
    write_blob(folder, 1, 9, r5_line[50:] + "\r\n" + crlf(envelope(R6)), mode="a")
    write_blob(folder, 1, 10, crlf(envelope(R1), envelope(NO_ID), envelope(NO_ID)))
    write_blob(folder, 1, 11, "")  # a blob created before its first line: nothing to read yet
    late = folder / f"tenantId={TENANT}/y=2026/m=02/d=27/h=05/m=00/PT1H.json"
    late.parent.mkdir(parents=True, exist_ok=True)
    late.write_text(crlf(envelope(R7)), encoding="utf-8", newline="")
    second = run_ingest(spark, folder, into, output)
    third = run_ingest(spark, folder, into, output)
    return {"folder": folder, "into": into, "output": output, "reports": (first, second, third)}


def test_each_stage_ingests_exactly_the_complete_new_records(spark, ingested):
    first, second, third = ingested["reports"]
    assert first.ingest_counts == {
        "FilesRead": 1, "BytesRead": first.ingest_counts["BytesRead"], "Records": 5, "RecordsIngested": 3,
        "DuplicatesSkipped": 0, "OtherCategories": 1, "Quarantined": 1, "IncompleteLinesHeldBack": 1,
        "SignalRecords": 0, "SignalRecordsIngested": 0,
    }
    assert second.ingest_counts == {
        "FilesRead": 3, "BytesRead": second.ingest_counts["BytesRead"], "Records": 6, "RecordsIngested": 4,
        "DuplicatesSkipped": 2, "OtherCategories": 0, "Quarantined": 0, "IncompleteLinesHeldBack": 0,
        "SignalRecords": 0, "SignalRecordsIngested": 0,
    }
    assert third.ingest_counts == dict.fromkeys(third.ingest_counts, 0)
    expected = spark.createDataFrame(
        [
            expected_row(R1, 1), expected_row(R2, 3), expected_row(R4, 5), expected_row(R5, 6), expected_row(R6, 7),
            expected_row(R7, 1), expected_row(NO_ID, 2),
        ],
        ROWS_DDL,
    )
    assert_df_equality(table_rows(spark, ingested["into"]), expected, ignore_row_order=True, ignore_nullable=True)
    # `run --incremental` reads the table's changes: a table the ingest creates has them on.
    assert io.table_properties(spark, TableRef(str(ingested["into"]), True)).get("delta.enableChangeDataFeed") == "true"


def test_unreadable_lines_are_quarantined_once_with_file_and_line(spark, ingested):
    into = ingested["into"]
    rows = io.read_table(spark, TableRef(f"{into}_ingest_quarantine", True)).collect()
    assert [(Path(r["File"]).parts[-2:], r["LineNumber"], r["Reason"], r["Record"]) for r in rows] == [
        (("m=00", "PT1H.json"), 2, "NOT_JSON", "not json {")
    ]
    log = io.read_table(spark, TableRef(f"{ingested['output']}_run_log", True)).orderBy("StartedAt").collect()
    assert [(r["Command"], r["Status"], r["IngestCounts"]["RecordsIngested"]) for r in log] == [
        ("ingest --from defender-storage", "succeeded", 3),
        ("ingest --from defender-storage", "succeeded", 4),
        ("ingest --from defender-storage", "succeeded", 0),
    ]


@pytest.mark.parametrize("mode", ["kql", "corrected"])
def test_run_over_the_ingested_table_equals_run_over_the_same_events_written_flat(spark, ingested, tmp_path, mode):
    """Compares two paths: the hunt over the ingested table and over a flat table of the same events."""
    flat = tmp_path / "flat"
    events = [R1, R2, R4, R5, R6, R7, NO_ID]
    rows = [
        (TENANT, ts(p["Timestamp"]), p["TeamsMessageId"], p["SenderEmailAddress"],
         None if p["RecipientDetails"] is None else [(r["RecipientSmtpAddress"],) for r in p["RecipientDetails"]],
         p["IsExternalThread"], p["IsOwnedThread"], p["ThreatTypes"], p.get("ReportId"))
        for p in events
    ]
    spark.createDataFrame(
        rows,
        "TenantId string, Timestamp timestamp, TeamsMessageId string, SenderEmailAddress string, "
        "RecipientDetails array<struct<RecipientSmtpAddress:string>>, IsExternalThread boolean, IsOwnedThread boolean, "
        "ThreatTypes string, ReportId string",
    ).write.format("delta").save(str(flat))

    def planned(source):
        config = config_from_mapping({"source": str(source), "output": str(tmp_path / "out"), "hunt": {"mode": mode}})
        columns = ["TenantId", "SenderFromDomain", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats", "Bad_Traffic_Percentage"]
        return plan_window(spark, config, runlog.new_report(config, "run")).results_df.select(*columns)

    from_ingest, from_flat = planned(ingested["into"]), planned(flat)
    assert from_flat.count() > 0
    assert_df_equality(from_ingest, from_flat, ignore_row_order=True, ignore_nullable=True)


class Killed(BaseException):
    """What `faults.kill` raises in this process: like SIGKILL, nothing catches it on the way out."""


@pytest.mark.parametrize("point", ["after-ingest-quarantine", "after-ingest-commit", "before-run-log"])
def test_a_killed_ingest_resumes_exactly(spark, ingested, tmp_path, monkeypatch, point):
    """Killed at `point` in its first stage, then run again: the same table and quarantine as the
    uninterrupted ingest of the same folder."""
    folder, into, output = tmp_path / "export", tmp_path / "lake" / "events", tmp_path / "lake" / "results"
    write_blob(folder, 1, 9, crlf(envelope(R1), "not json {", envelope(R2), envelope(R1)))

    def boom():
        raise Killed()

    monkeypatch.setattr(faults, "kill", boom)
    monkeypatch.setenv(faults.ENV, point)
    with pytest.raises(Killed):
        run_ingest(spark, folder, into, output)
    monkeypatch.delenv(faults.ENV)
    report = run_ingest(spark, folder, into, output)
    assert report.status == "succeeded"
    got = table_rows(spark, into).select("ReportId", "IngestLineNumber")
    assert sorted((r[0], r[1]) for r in got.collect()) == [("r1", 1), ("r2", 3)]
    quarantine = io.read_table(spark, TableRef(f"{into}_ingest_quarantine", True)).select("LineNumber", "Reason").collect()
    assert [(r[0], r[1]) for r in quarantine] == [(2, "NOT_JSON")]
    if point == "after-ingest-commit":
        # Killed before it recorded its offsets: the resumed ingest recorded them, so nothing is
        # read a third time.
        assert run_ingest(spark, folder, into, output).ingest_counts["Records"] == 0


def test_an_executor_lost_with_the_typed_lines_costs_typing_them_again(spark, tmp_path, monkeypatch):
    """The typed lines are kept on the executors' disks; losing them between the quarantine and
    the table's commit types them again, and the ingest ends as an uninterrupted one."""
    folder, into, output = tmp_path / "export", tmp_path / "lake" / "events", tmp_path / "lake" / "results"
    write_blob(folder, 1, 9, crlf(envelope(R1), "not json {", envelope(R2), envelope(R1)))
    kept = []
    keep = caching.kept_on_disk
    monkeypatch.setattr(caching, "kept_on_disk", lambda df: kept.append(keep(df)) or kept[-1])

    def lose_them_once():
        if len(kept) == 1:
            caching.release(kept[0])

    monkeypatch.setattr(faults, "kill", lose_them_once)
    monkeypatch.setenv(faults.ENV, "after-ingest-quarantine")
    report = run_ingest(spark, folder, into, output)
    assert report.status == "succeeded" and len(kept) == 2
    got = table_rows(spark, into).select("ReportId", "IngestLineNumber")
    assert sorted((r[0], r[1]) for r in got.collect()) == [("r1", 1), ("r2", 3)]
    quarantine = io.read_table(spark, TableRef(f"{into}_ingest_quarantine", True)).select("LineNumber", "Reason").collect()
    assert [(r[0], r[1]) for r in quarantine] == [(2, "NOT_JSON")]
    assert report.ingest_counts["Records"] == 4 and report.ingest_counts["RecordsIngested"] == 2


def test_log_analytics_export_maps_workspaces_to_tenants(spark, tmp_path):
    folder, into, output = tmp_path / "am-messageevents", tmp_path / "lake" / "events", tmp_path / "lake" / "results"

    def flat(props, workspace, kind="MessageEvents", item="i"):
        return json.dumps({**props, "TenantId": workspace, "Type": kind, "TimeGenerated": "2026-03-01T09:10:00Z", "_ItemId": item})

    blob = folder / "WorkspaceResourceId=/subscriptions/s/workspaces/ws/y=2026/m=03/d=01/h=09/m=05/PT05M.json"
    blob.parent.mkdir(parents=True)
    blob.write_text(
        crlf(flat(R1, "ws-1", item="i1"), flat(R2, "ws-2", item="i2"), flat(R5, "ws-1", kind="SigninLogs", item="i3")),
        encoding="utf-8",
        newline="",
    )
    config = config_from_mapping(
        {"source": str(into), "output": str(output), "ingest": {"workspace_tenants": {"ws-1": "tenant-a"}}}
    )
    report = ingest.ingest(spark, config, "log-analytics-export", str(folder))
    assert (report.ingest_counts["RecordsIngested"], report.ingest_counts["OtherCategories"]) == (2, 1)
    got = io.read_table(spark, TableRef(str(into), True)).select("TenantId", "WorkspaceId", "ReportId", "TimeGenerated", "_ItemId")
    expected = spark.createDataFrame(
        [("tenant-a", "ws-1", "r1", ts("2026-03-01T09:10:00Z"), "i1"), ("ws-2", "ws-2", "r2", ts("2026-03-01T09:10:00Z"), "i2")],
        "TenantId string, WorkspaceId string, ReportId string, TimeGenerated timestamp, _ItemId string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_an_input_that_is_not_a_folder_is_refused_before_any_write(spark, tmp_path, capsys):
    from partner_hunt.cli import run_cli

    missing = tmp_path / "nowhere"
    into = tmp_path / "lake" / "events"
    code = run_cli(["ingest", "--from", "defender-storage", "--input", str(missing), "--into", str(into), "--master", "local[2]"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("partner-hunt:")]
    assert code == 2 and len(err) == 1 and "does not exist" in err[0] and str(missing) in err[0]
    assert not into.exists()


def test_refresh_after_an_ingest_recomputes_only_the_days_it_touched(spark, tmp_path):
    from datetime import date

    from partner_hunt.commands import backfill, refresh

    folder, into, output = tmp_path / "export", tmp_path / "lake" / "events", tmp_path / "lake" / "results"
    day2 = properties("d2", "2026-03-02T08:00:00.000Z", ["f@p.com"])
    write_blob(folder, 1, 9, crlf(envelope(R1), envelope(R2)))
    write_blob(folder, 2, 8, crlf(envelope(day2)))
    run_ingest(spark, folder, into, output)
    config = config_from_mapping(
        {"source": str(into), "output": str(output), "hunt": {"end": "2026-03-04", "trailing_days": 3}, "alerts": {"enabled": False}}
    )
    backfill.backfill(spark, config, date(2026, 3, 1), date(2026, 3, 4))
    # A late record for 2 March lands in that hour's blob, days after its time.
    late = properties("late", "2026-03-02T08:30:00.000Z", ["g@p.com"], owned=False, threats="Phish", sender="x@p.com")
    write_blob(folder, 2, 8, crlf(envelope(late)), mode="a")
    assert run_ingest(spark, folder, into, output).ingest_counts["RecordsIngested"] == 1
    report = refresh.run_incremental(spark, config)
    assert (report.refresh_kind, report.days_computed) == ("incremental", [date(2026, 3, 2)])


def test_demo_as_export_equals_the_demo_written_flat(spark, tmp_path):
    """Compares two paths: the sample through the export and `ingest` (the demo's results table),
    and the same sample written as the table (what `run` plans over it, unwritten)."""
    from partner_hunt.cli import run_cli
    from partner_hunt.commands import demo
    from partner_hunt.core import sample

    from partner_hunt.config import load_config

    conf = tmp_path / "demo.yml"
    conf.write_text("demo:\n  rows: 4000\n  days: 3\n  seed: 5\n  tenants: 2\n")
    assert run_cli(["demo", "--config", str(conf), "--lake", str(tmp_path / "exported"), "--as-export", "--master", "local[2]"]) == 0
    config = demo.demo_config(load_config(conf, {"demo.lake": str(tmp_path / "flat")}))
    exported = io.read_table(spark, TableRef(str(tmp_path / "exported" / "message_events"), True))
    # The same generated rows: the demo's lake ends today, so take its span from what it ingested.
    end = exported.agg(F.max("Timestamp")).collect()[0][0]
    events = sample.generate_events(spark, 4000, days=3, seed=5, tenants=2, end=_demo_end(end))
    io.overwrite(events, TableRef(config.source, True))
    columns = ["TenantId", "SenderFromDomain", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats", "Bad_Traffic_Percentage"]
    flat = plan_window(spark, config, runlog.new_report(config, "run")).results_df.select(*columns)
    assert flat.count() > 0
    got = io.read_table(spark, TableRef(str(tmp_path / "exported" / "partner_hunt_results"), True)).select(*columns)
    assert_df_equality(got, flat, ignore_row_order=True, ignore_nullable=True)
    log = io.read_table(spark, TableRef(str(tmp_path / "exported" / "partner_hunt_results_run_log"), True))
    ingested = log.filter(F.col("Command") == "ingest --from defender-storage").collect()
    assert len(ingested) == 1 and ingested[0]["IngestCounts"]["RecordsIngested"] == 4000


def _demo_end(last: datetime) -> datetime:
    """The demo's window end (the next UTC midnight after its last event)."""
    from datetime import timedelta

    day = last.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1)


def test_offsets_are_bytes_whatever_the_text_holds(spark, tmp_path):
    """A blob cut inside a two-byte character, after a line that is not UTF-8 at all: the cut line
    is held back, then read whole, and what is consumed ends exactly at the blob's end."""
    folder, into, output = tmp_path / "export", tmp_path / "lake" / "message_events", tmp_path / "lake" / "results"
    named = dict(R5, SenderDisplayName="Zoë Ångström")
    line = json.dumps(json.loads(envelope(named)), ensure_ascii=False).encode("utf-8")
    cut = line.index("ë".encode()) + 1  # between the two bytes of "ë"
    blob = write_blob(folder, 1, 9, "")
    blob.write_bytes(b"\xff\xfe not text\r\n" + line[:cut])
    first = run_ingest(spark, folder, into, output)
    with blob.open("ab") as handle:
        handle.write(line[cut:] + b"\r\n")
    second = run_ingest(spark, folder, into, output)
    third = run_ingest(spark, folder, into, output)
    counts = [tuple(r.ingest_counts[k] for k in ("Records", "Quarantined", "IncompleteLinesHeldBack")) for r in (first, second, third)]
    assert counts == [(1, 1, 1), (1, 0, 0), (0, 0, 0)]
    assert first.ingest_counts["BytesRead"] + second.ingest_counts["BytesRead"] == blob.stat().st_size
    rows = io.read_table(spark, TableRef(str(into), True)).select("ReportId", "SenderDisplayName", "IngestLineNumber").collect()
    assert [tuple(r) for r in rows] == [("r5", "Zoë Ångström", 2)]
