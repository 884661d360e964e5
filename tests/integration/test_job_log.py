"""What a Databricks job run keeps: timestamped `logging` lines, no rich boxes or bars, the job run id."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone

import pytest

from partner_hunt.cli import run_cli

pytestmark = pytest.mark.integration

SOURCE_DDL = (
    "Timestamp timestamp, TeamsMessageId string, SenderEmailAddress string, "
    "RecipientDetails array<struct<RecipientSmtpAddress:string,RecipientDisplayName:string>>, "
    "IsExternalThread boolean, IsOwnedThread boolean, ThreatTypes string, ReportId string"
)
D1 = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
D2 = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
# Box drawing and block elements: what rich tables and progress bars are drawn with.
RICH_DRAWING = re.compile("[\u2500-\u259f\u2501]")
TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) partner_hunt(\.\w+)*: ")


@pytest.fixture
def source(spark, tmp_path):
    rows = [
        (D1, "o1", "me@contoso.com", [("a@p.com", "A")], True, True, "", "r1"),
        (D1, "i1", "bad@p.com", [("x@p.com", "X")], True, False, "Phish", "r2"),
        (D2, "o2", "me@contoso.com", [("c@p.com", "C")], True, True, "", "r3"),
        (D2, "i2", "bad@p.com", [("y@p.com", "Y")], True, False, "Malware", "r4"),
    ]
    path = tmp_path / "message_events"
    spark.createDataFrame(rows, SOURCE_DDL).write.format("delta").save(str(path))
    return path


@pytest.fixture
def job_log(caplog):
    """The records of the `partner_hunt` logger (which does not propagate to the root logger)."""
    logger = logging.getLogger("partner_hunt")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def test_a_backfill_without_a_terminal_logs_each_day_and_the_summary(spark, source, tmp_path, capsys, job_log):
    output = tmp_path / "out" / "results"
    argv = ["backfill", "--source", str(source), "--output", str(output), "--start", "2026-03-01",
            "--end", "2026-03-03", "--job-run-id", "734501"]
    assert run_cli(argv) == 0  # capsys: stdout is not a terminal, as in a job

    messages = [r.getMessage() for r in job_log.records if r.name == "partner_hunt"]
    assert "backfill: day 2026-03-01 committed (1/2)" in messages
    assert "backfill: day 2026-03-02 committed (2/2)" in messages
    assert any(m.startswith("Top partner domains (kql mode, [2026-03-01 00:00:00Z, 2026-03-03 00:00:00Z)): 1 domains") for m in messages)
    assert "  SenderFromDomain=p.com, OutboundTeamsMessages=2, IncomingTeamsMessagesWithThreats=2, Bad_Traffic_Percentage=1.00" in messages
    assert any(m.startswith("rows read 4 | used 4 | quarantined 0") for m in messages)
    assert any(m.startswith("run log    -> ") and m.endswith(", job run 734501)") for m in messages)
    assert {r.levelname for r in job_log.records} <= {"INFO", "WARNING"}

    printed = capsys.readouterr()
    assert printed.out == "", "without a terminal nothing bypasses logging"
    assert not RICH_DRAWING.search(printed.err), printed.err
    lines = [line for line in printed.err.splitlines() if line.strip()]
    assert lines and all(TIMESTAMPED.match(line) for line in lines), lines[:5]

    run_log = spark.read.format("delta").load(f"{output}_run_log").select("Command", "Status", "JobRunId").collect()
    assert [tuple(r) for r in run_log] == [("backfill", "succeeded", "734501")]
