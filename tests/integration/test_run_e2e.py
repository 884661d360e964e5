"""End to end: a small Delta source, `partner-hunt run`, the results table read back; reruns replace."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from chispa import assert_df_equality

from partner_hunt.cli import run_cli
from tests.conftest import problem_lines

pytestmark = pytest.mark.integration

SOURCE_DDL = (
    "Timestamp timestamp, TeamsMessageId string, SenderEmailAddress string, "
    "RecipientDetails array<struct<RecipientSmtpAddress:string,RecipientDisplayName:string>>, "
    "IsExternalThread boolean, IsOwnedThread boolean, ThreatTypes string, ReportId string, Extra string"
)
D1 = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
D2 = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)


def r(*addrs):
    return [(a, "name") for a in addrs]


@pytest.fixture(scope="module")
def source(spark, tmp_path_factory):
    """The source, written once for the module: its tests only read it."""
    rows = [
        (D1, "o1", "me@contoso.com", r("a@p.com", "b@p.com"), True, True, "", "r1", "x"),
        (D1, "o2", "me@contoso.com", None, True, True, "", "r2", "x"),
        (D1, "i1", "bad@p.com", r("x@p.com"), True, False, "Phish", "r3", "x"),
        (D1, "i2", "bad@p.com", None, True, False, " ", "r4", "x"),
        (D2, "o3", "me@contoso.com", r("c@p.com", "d@q.com"), True, True, "", "r5", "x"),
        (D2, "i3", "bad@q.com", r("y@q.com"), True, False, "Malware", "r6", "x"),
    ]
    path = tmp_path_factory.mktemp("lake") / "message_events"
    spark.createDataFrame(rows, SOURCE_DDL).write.format("delta").save(str(path))
    return path


def results(spark, output, start=None):
    df = spark.read.format("delta").load(str(output))
    return df


def test_run_writes_results_and_rerun_replaces_the_window(spark, source, tmp_path, capsys):
    output = tmp_path / "out" / "results"
    # The results table and its reruns; the analyst outputs have tests of their own.
    args = ["run", "--source", str(source), "--output", str(output), "--master", "local[2]", "--no-evidence", "--no-alerts"]
    assert run_cli(args + ["--start", "2026-03-01", "--end", "2026-03-02"]) == 0
    printed = capsys.readouterr().err
    assert "p.com" in printed

    expected_day1 = spark.createDataFrame(
        [("p.com", 2, 1, 0.5), ("", 1, 1, 1.0)],
        "SenderFromDomain string, OutboundTeamsMessages long, IncomingTeamsMessagesWithThreats long, "
        "Bad_Traffic_Percentage double",
    )
    cols = ["SenderFromDomain", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats", "Bad_Traffic_Percentage"]
    day1 = results(spark, output).select(*cols)
    assert_df_equality(day1, expected_day1, ignore_row_order=True, ignore_nullable=True)

    # Rerun the same window, then an all-data window: the first is replaced, not duplicated.
    assert run_cli(args + ["--start", "2026-03-01", "--end", "2026-03-02"]) == 0
    assert run_cli(args) == 0
    all_rows = results(spark, output)
    assert all_rows.count() == 5
    windowed = all_rows.filter("WindowStart IS NOT NULL").select(*cols)
    assert_df_equality(windowed, expected_day1, ignore_row_order=True, ignore_nullable=True)
    everything = all_rows.filter("WindowStart IS NULL").select(*cols)
    expected_all = spark.createDataFrame(
        [("p.com", 3, 1, 0.33), ("", 1, 1, 1.0), ("q.com", 1, 1, 1.0)], expected_day1.schema
    )
    assert_df_equality(everything, expected_all, ignore_row_order=True, ignore_nullable=True)
    assert {r.Mode for r in all_rows.collect()} == {"kql"}
    assert all_rows.select("TenantId").distinct().collect()[0][0] == "00000000-0000-0000-0000-000000000000"

    log = spark.read.format("delta").load(str(output) + "_run_log")
    assert log.count() == 3
    assert {r.Status for r in log.collect()} == {"succeeded"}


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--start", "2026-03-05", "--end", "2026-03-01"], "must be after hunt.start"),
        (["--start", "yesterday"], "hunt.start: 'yesterday' is not an ISO date"),
    ],
)
def test_bad_dates_exit_non_zero_with_one_line(source, tmp_path, capsys, extra, message):
    code = run_cli(["run", "--source", str(source), "--output", str(tmp_path / "o")] + extra)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(problem_lines(err)) == 1


def test_missing_table_and_missing_column(spark, tmp_path, capsys):
    code = run_cli(["run", "--source", str(tmp_path / "nope"), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "does not exist" in err and str(tmp_path / "nope") in err

    thin = tmp_path / "thin"
    spark.createDataFrame([(D1, True)], "Timestamp timestamp, IsOwnedThread boolean").write.format("delta").save(str(thin))
    code = run_cli(["run", "--source", str(thin), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "missing required columns RecipientDetails, IsExternalThread, ThreatTypes" in err
    assert str(thin) in err
