"""Bad locations are refused before anything is read or written: exit 2, one line, in seconds.

The sources here are only folders with a hand-made `_delta_log` (or Parquet-named files): the
checks look at metadata only, so a test that got past them would fail reading, not pass.
"""

from __future__ import annotations

import time

import pytest

from partner_hunt.cli import run_cli
from partner_hunt.config import config_from_mapping
from partner_hunt.store import checks, io
from partner_hunt.store.locations import Locations, TableRef, is_leftover


def fake_delta(folder):
    """A folder that looks like a committed Delta table to the checks."""
    (folder / "_delta_log").mkdir(parents=True)
    (folder / "_delta_log" / "00000000000000000000.json").write_text("{}\n")
    return folder


def leftover(folder):
    """What a killed first write leaves: part files and an empty log."""
    (folder / "_delta_log").mkdir(parents=True)
    (folder / "part-00000-abc-c000.snappy.parquet").write_bytes(b"PAR1")
    (folder / ".part-00000-abc-c000.snappy.parquet.crc").write_bytes(b"")
    return folder


def refused(capsys, argv, expected):
    started = time.monotonic()
    code = run_cli([*argv, "--master", "local[1]"])
    elapsed = time.monotonic() - started
    # Log lines (e.g. joining the test session) are not the error; the error is one line.
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("partner-hunt:")]
    assert code == 2
    assert len(err) == 1 and expected in err[0], err
    assert elapsed < 20
    return err[0]


WINDOW = ["--start", "2026-03-01", "--end", "2026-03-02"]
COMMANDS = [["run"], ["backfill"], ["run", "--incremental"], ["diff"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_an_output_that_is_a_file_is_refused(spark, capsys, tmp_path, command):
    source = fake_delta(tmp_path / "events")
    (tmp_path / "out").write_text("not a table")
    line = refused(capsys, [*command, "--source", str(source), "--output", str(tmp_path / "out"), *WINDOW], "is a file, not a table folder")
    assert str(tmp_path / "out") in line


def test_a_state_table_that_is_a_file_is_refused(spark, capsys, tmp_path):
    source = fake_delta(tmp_path / "events")
    (tmp_path / "out_alerts").write_text("")
    refused(capsys, ["run", "--source", str(source), "--output", str(tmp_path / "out"), *WINDOW], "state.alerts")


def test_the_output_must_not_be_the_source(spark, capsys, tmp_path):
    source = fake_delta(tmp_path / "events")
    refused(capsys, ["backfill", "--source", str(source), "--output", str(source) + "/", *WINDOW], "is the source table")


def test_the_output_must_not_be_inside_the_source(spark, capsys, tmp_path):
    source = fake_delta(tmp_path / "events")
    refused(capsys, ["run", "--source", str(source), "--output", str(source / "results"), *WINDOW], "is inside the source table")


def test_an_existing_output_that_is_not_delta_is_refused(spark, capsys, tmp_path):
    source = fake_delta(tmp_path / "events")
    out = tmp_path / "out"
    out.mkdir()
    (out / "part-00000.parquet").write_bytes(b"PAR1")
    (out / "_SUCCESS").write_text("")
    refused(capsys, ["run", "--source", str(source), "--output", str(out), *WINDOW], "exists but is not a Delta table")


def test_a_parquet_source_is_not_a_delta_table(spark, capsys, tmp_path):
    source = tmp_path / "events"
    source.mkdir()
    (source / "part-00000-x.snappy.parquet").write_bytes(b"PAR1")
    line = refused(capsys, ["run", "--incremental", "--source", str(source), "--output", str(tmp_path / "out"), *WINDOW], "is not a Delta table (found Parquet files")
    assert "does not exist" not in line


def test_demo_refuses_a_bad_output_before_generating_anything(spark, capsys, tmp_path):
    (tmp_path / "partner_hunt_results").write_text("")
    refused(capsys, ["demo", "--lake", str(tmp_path), "--rows", "50", "--days", "1"], "is a file")
    assert not (tmp_path / "message_events").exists()


def test_locations_that_hold_no_table_yet_pass(spark, tmp_path):
    source = fake_delta(tmp_path / "events")
    (tmp_path / "out").mkdir()  # empty folder
    leftover(tmp_path / "out_alerts")  # a killed first write: counts as absent
    fake_delta(tmp_path / "out_partials")
    cfg = config_from_mapping({"source": str(source), "output": str(tmp_path / "out")})
    locations = Locations.from_config(cfg)
    checks.check_locations(spark, locations)
    assert locations.alerts == TableRef(str(tmp_path / "out_alerts"), True)


def test_backticked_output_names_give_parsable_state_names(spark):
    cfg = config_from_mapping({"source": "/tmp/nowhere/events", "output": "default.`myresults`"})
    locations = Locations.from_config(cfg)
    checks.check_locations(spark, locations, source_must_exist=False)
    assert locations.evidence == TableRef("default.`myresults_evidence`", False)
    assert TableRef.parse(locations.run_log.location) == locations.run_log


def test_catalog_output_named_like_the_source_is_refused(spark):
    cfg = config_from_mapping({"source": "default.events", "output": "`default`.`EVENTS`"})
    with pytest.raises(checks.PrecheckError, match="is the source table"):
        checks.check_locations(spark, Locations.from_config(cfg), source_must_exist=False)


def test_only_a_killed_first_write_counts_as_leftover(tmp_path):
    assert is_leftover(leftover(tmp_path / "a"))
    spark_parquet = leftover(tmp_path / "b")
    (spark_parquet / "_SUCCESS").write_text("")  # a Spark Parquet dataset, never ours
    assert not is_leftover(spark_parquet)
    other = leftover(tmp_path / "c")
    (other / "notes.txt").write_text("")
    assert not is_leftover(other)
    assert not is_leftover(fake_delta(tmp_path / "d"))
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "part-0.parquet").write_bytes(b"")  # no _delta_log: not provably ours
    assert not is_leftover(tmp_path / "e")


@pytest.mark.parametrize(
    "message",
    [
        "[DELTA_PATH_EXISTS] Cannot write to already existent path file:/x without setting OVERWRITE = 'true'.",
        "[TABLE_OR_VIEW_ALREADY_EXISTS] Cannot create table or view `default`.`t_alerts`",
        "io.delta.exceptions.ConcurrentAppendException: Files were added by a concurrent update",
        "io.delta.exceptions.MetadataChangedException: The metadata of the Delta table has been changed",
    ],
)
def test_writes_that_lose_a_race_are_retried(monkeypatch, message):
    monkeypatch.setattr(io.time, "sleep", lambda _s: None)
    calls = []

    def write():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError(message)

    io._with_retries(write)
    assert len(calls) == 3


def test_other_write_errors_are_not_retried(monkeypatch):
    monkeypatch.setattr(io.time, "sleep", lambda _s: None)
    calls = []

    def write():
        calls.append(1)
        raise RuntimeError("[DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION] Cannot create table")

    with pytest.raises(RuntimeError):
        io._with_retries(write)
    assert len(calls) == 1
