"""Messy real-world sources end to end through `partner-hunt run`: drifted shapes, malformed rows,
the bad-row ceiling, a missing column and a corrupt data file."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from urllib.parse import unquote, urlparse

import pytest
from chispa import assert_df_equality

from partner_hunt.cli import run_cli
from tests.conftest import problem_lines

pytestmark = pytest.mark.integration

D1 = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
RESULT_COLS = ["SenderFromDomain", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats", "Bad_Traffic_Percentage"]
RESULT_DDL = (
    "SenderFromDomain string, OutboundTeamsMessages long, IncomingTeamsMessagesWithThreats long, "
    "Bad_Traffic_Percentage double"
)
TIDY_DDL = (
    "Timestamp timestamp, TeamsMessageId string, ReportId string, "
    "RecipientDetails array<struct<RecipientSmtpAddress:string,RecipientType:string>>, "
    "IsExternalThread boolean, IsOwnedThread boolean, ThreatTypes string"
)
# (id, recipients, external, owned, threats)
EVENTS = [
    ("o1", ["a@p.com", "b@p.com"], True, True, ""),
    ("o2", None, True, True, ""),
    ("o3", ["c@q.com"], True, True, ""),
    ("i1", ["x@p.com"], True, False, "Phish"),
    ("i2", None, True, False, "Malware"),
    ("i3", ["y@q.com"], True, False, ""),
    ("i4", ["z@p.com"], False, False, "Phish"),
]


def _args(source, output, *extra):
    # These tests are about reading the source; the analyst outputs have tests of their own.
    return ["run", "--source", str(source), "--output", str(output), "--master", "local[2]", "--mode", "kql",
            "--no-evidence", "--no-alerts", *extra]


def _results(spark, output):
    return spark.read.format("delta").load(str(output)).select(*RESULT_COLS)


def _write(df, path):
    df.write.format("delta").save(str(path))
    return path


def test_json_recipients_integer_flags_and_threat_arrays_match_the_documented_schema(spark, tmp_path):
    tidy_rows = [
        (D1, mid, f"r-{mid}", None if to is None else [(a, "To") for a in to], ext, own, threats)
        for mid, to, ext, own, threats in EVENTS
    ]
    messy_rows = [
        (
            "2026-03-01T09:00:00.0000000Z",
            mid,
            f"r-{mid}",
            None if to is None else json.dumps([{"RecipientSmtpAddress": a, "RecipientType": "To"} for a in to]),
            int(ext),
            int(own),
            [threats] if threats else [],
            "an extra column",
        )
        for mid, to, ext, own, threats in EVENTS
    ]
    tidy = _write(spark.createDataFrame(tidy_rows, TIDY_DDL), tmp_path / "tidy")
    messy = _write(
        spark.createDataFrame(
            messy_rows,
            "Timestamp string, TeamsMessageId string, ReportId string, RecipientDetails string, "
            "IsExternalThread int, IsOwnedThread int, ThreatTypes array<string>, Extra string",
        ),
        tmp_path / "messy",
    )
    assert run_cli(_args(tidy, tmp_path / "tidy_out" / "results")) == 0
    assert run_cli(_args(messy, tmp_path / "messy_out" / "results")) == 0

    # p.com: 2 outbound recipients, 1 inbound threat; "": the null RecipientDetails on both sides.
    expected = spark.createDataFrame([("p.com", 2, 1, 0.5), ("", 1, 1, 1.0)], RESULT_DDL)
    tidy_df = _results(spark, tmp_path / "tidy_out" / "results")
    messy_df = _results(spark, tmp_path / "messy_out" / "results")
    assert_df_equality(tidy_df, expected, ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(messy_df, tidy_df, ignore_row_order=True, ignore_nullable=True)


def _source_with_bad_rows(spark, path, good=198):
    """`good` tidy outbound/inbound rows, one unparseable RecipientDetails and one flag of 2."""
    rows = []
    for i in range(good):
        owned = i % 2
        rows.append(("2026-03-01T09:00:00Z", f"m{i}", f"r{i}", '[{"RecipientSmtpAddress":"u@p.com"}]', 1, owned,
                     "" if owned else "Phish"))
    rows.append(("2026-03-01T09:00:00Z", "bad1", "r-bad1", '[{"RecipientSmtpAddress":', 1, 1, ""))
    rows.append(("2026-03-01T09:00:00Z", "bad2", "r-bad2", "[]", 2, 1, ""))
    df = spark.createDataFrame(
        rows,
        "Timestamp string, TeamsMessageId string, ReportId string, RecipientDetails string, "
        "IsExternalThread int, IsOwnedThread int, ThreatTypes string",
    )
    return _write(df, path)


def test_one_percent_malformed_is_accounted_for_and_above_the_ceiling_nothing_changes(spark, tmp_path, capsys):
    source = _source_with_bad_rows(spark, tmp_path / "events")
    output = tmp_path / "out" / "results"
    assert run_cli(_args(source, output)) == 0
    printed = capsys.readouterr().err
    assert "quarantined 2" in printed

    log = spark.read.format("delta").load(f"{output}_run_log").select(
        "Status", "RowsRead", "RowsUsed", "RowsQuarantined", "QuarantineByReason"
    )
    expected_log = spark.createDataFrame(
        [("succeeded", 200, 198, 2, {"BAD_FLAG": 1, "BAD_RECIPIENT_DETAILS": 1})],
        "Status string, RowsRead long, RowsUsed long, RowsQuarantined long, QuarantineByReason map<string,bigint>",
    )
    assert_df_equality(log, expected_log, ignore_nullable=True)
    quarantine = spark.read.format("delta").load(f"{output}_quarantine").select("Reason", "ReportId", "TeamsMessageId")
    expected_quarantine = spark.createDataFrame(
        [("BAD_RECIPIENT_DETAILS", "r-bad1", "bad1"), ("BAD_FLAG", "r-bad2", "bad2")],
        "Reason string, ReportId string, TeamsMessageId string",
    )
    assert_df_equality(quarantine, expected_quarantine, ignore_row_order=True, ignore_nullable=True)
    before = _results(spark, output).collect()
    assert sorted(before) == sorted(spark.createDataFrame([("p.com", 99, 99, 1.0)], RESULT_DDL).collect())

    # Above the ceiling: one clear line, exit 2, and results and quarantine are untouched.
    assert run_cli(_args(source, output, "--max-bad-fraction", "0.005")) == 2
    err = capsys.readouterr().err.strip()
    assert len(problem_lines(err)) == 1 and "max_bad_fraction" in err and "not changed" in err
    assert sorted(_results(spark, output).collect()) == sorted(before)
    assert spark.read.format("delta").load(f"{output}_quarantine").count() == 2
    statuses = [r["Status"] for r in spark.read.format("delta").load(f"{output}_run_log").collect()]
    assert sorted(statuses) == ["failed", "succeeded"]


def test_missing_recipient_details_fails_fast_naming_the_column(spark, tmp_path, capsys):
    source = _write(
        spark.createDataFrame(
            [(D1, True, True, "")], "Timestamp timestamp, IsExternalThread boolean, IsOwnedThread boolean, ThreatTypes string"
        ),
        tmp_path / "no_recipients",
    )
    started = time.monotonic()
    assert run_cli(_args(source, tmp_path / "out" / "results")) == 2
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err.strip()
    assert len(problem_lines(err)) == 1 and "RecipientDetails" in err and str(source) in err


def test_corrupt_data_file_is_named_by_default_and_skipped_on_request(spark, tmp_path, capsys):
    rows = [(D1, f"m{i}", f"r{i}", [("u@p.com", "To")], True, bool(i % 2), "" if i % 2 else "Phish") for i in range(40)]
    source = tmp_path / "events"
    spark.createDataFrame(rows, TIDY_DDL).repartition(4).write.format("delta").save(str(source))
    files = sorted(spark.read.format("delta").load(str(source)).inputFiles())
    assert len(files) == 4
    victim = unquote(urlparse(files[0]).path)
    with open(victim, "r+b") as fh:
        fh.truncate(os.path.getsize(victim) // 2)
    # Local Hadoop file systems keep a checksum beside each file; real object stores do not.
    crc = os.path.join(os.path.dirname(victim), f".{os.path.basename(victim)}.crc")
    if os.path.exists(crc):
        os.remove(crc)
    output = tmp_path / "out" / "results"

    assert run_cli(_args(source, output)) == 2
    err = capsys.readouterr().err.strip()
    assert len(problem_lines(err)) == 1 and os.path.basename(victim) in err and "--skip-corrupt-files" in err

    assert run_cli(_args(source, output, "--skip-corrupt-files")) == 0
    out = capsys.readouterr().err  # no terminal: the job's lines go through logging, to stderr
    assert "skipped 1 unreadable source file" in out and os.path.basename(victim) in out
    log = spark.read.format("delta").load(f"{output}_run_log").filter("Status = 'succeeded'").collect()
    assert len(log) == 1 and [os.path.basename(f) for f in log[0]["SkippedFiles"]] == [os.path.basename(victim)]
    assert log[0]["RowsRead"] < 40
