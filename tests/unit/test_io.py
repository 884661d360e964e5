"""Table references, replaceWhere predicates: pure logic, no Spark needed."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone

import pytest

from partner_hunt.config import config_from_mapping
from partner_hunt.store import io
from partner_hunt.store.locations import Locations, TableFormatError, TableRef, folder_location, has_delta_log, is_local_folder
from partner_hunt.store.predicates import equality_predicate, in_predicate


@pytest.mark.parametrize(
    "text,is_path",
    [
        ("lake/message_events", True),
        ("/data/lake/events", True),
        ("./events", True),
        ("abfss://c@acct.dfs.core.windows.net/events", True),
        ("s3://bucket/events", True),
        ("main.security.message_events", False),
        ("security.message_events", False),
        ("events", False),
        ("`my-catalog`.sec.events", False),
        ("`my-catalog`.sec.`message-events`", False),
        ("default.`odd``name`", False),
        ("/Volumes/cat/sch/vol/events", True),
        ("dbfs:/mnt/lake/events", True),
        ("/mnt/lake/events", True),
    ],
)
def test_path_or_table_name(text, is_path):
    assert TableRef.parse(text).is_path is is_path


def test_bad_table_name_is_named():
    with pytest.raises(TableFormatError, match="'bad name; drop' is neither a path"):
        TableRef.parse("bad name; drop")
    with pytest.raises(TableFormatError, match="in backticks"):
        TableRef.parse("my-catalog.sec.events")
    with pytest.raises(TableFormatError):
        TableRef.parse("a.b.c.d")


@pytest.mark.parametrize(
    "name,expected",
    [
        ("results", "results_partials"),
        ("sec.results", "sec.results_partials"),
        ("main.sec.results", "main.sec.results_partials"),
        ("`message-events`", "`message-events_partials`"),
        ("`my-catalog`.sec.`message-events`", "`my-catalog`.sec.`message-events_partials`"),
        ("`my-catalog`.sec.events", "`my-catalog`.sec.events_partials"),
        ("`a.b`.`c``d`", "`a.b`.`c``d_partials`"),
    ],
)
def test_state_table_names_stay_valid_names(name, expected):
    sibling = TableRef.parse(name).sibling("partials")
    assert sibling == TableRef(expected, False)
    assert TableRef.parse(sibling.location) == sibling


def test_name_parts_keep_their_quotes():
    assert TableRef.parse("`my-catalog`.sec.`a.b`").name_parts == ["`my-catalog`", "sec", "`a.b`"]


def test_state_tables_sit_beside_the_output():
    assert TableRef.parse("lake/results").sibling("partials") == TableRef(os.path.abspath("lake/results_partials"), True)
    assert TableRef.parse("c.s.results").sibling("run_log") == TableRef("c.s.results_run_log", False)
    assert TableRef.parse("/Volumes/c/s/v/results/").sibling("partials") == TableRef("/Volumes/c/s/v/results_partials", True)
    assert TableRef.parse("abfss://c@a.dfs.core.windows.net/results").sibling("run_log") == TableRef(
        "abfss://c@a.dfs.core.windows.net/results_run_log", True
    )


@pytest.mark.parametrize(
    "text,expected",
    [
        ("/Volumes/cat/sch/vol/alerts/", "/Volumes/cat/sch/vol/alerts"),
        ("dbfs:/mnt/alerts", "dbfs:/mnt/alerts"),
        ("/mnt/lake/alerts", "/mnt/lake/alerts"),
        ("abfss://c@acct.dfs.core.windows.net/alerts/", "abfss://c@acct.dfs.core.windows.net/alerts"),
        ("s3://bucket/alerts", "s3://bucket/alerts"),
        ("lake/alerts", os.path.abspath("lake/alerts")),
    ],
)
def test_folders_are_kept_as_spark_reads_them(text, expected):
    assert folder_location(text) == expected


def test_alert_json_lines_can_go_to_a_volume():
    def jsonl(data):
        return Locations.from_config(config_from_mapping(data)).alerts_jsonl

    catalog = {"output": "main.sec.results"}
    assert jsonl({**catalog, "alerts": {"jsonl": "/Volumes/cat/sch/vol/alerts/"}}) == "/Volumes/cat/sch/vol/alerts"
    assert jsonl({**catalog, "alerts": {"jsonl": "dbfs:/alerts"}}) == "dbfs:/alerts"
    assert jsonl(catalog) is None
    assert jsonl({"output": "/mnt/lake/results"}) == "/mnt/lake/results_alerts_jsonl"


class _FakeConf:
    def __init__(self, master):
        self.master = master

    def get(self, key, default=None):
        return self.master if key == "spark.master" else default


class _FakeSpark:
    """Answers `spark.master` and records the SQL a check sends; DESCRIBE DETAIL says Delta."""

    def __init__(self, master="local[2]"):
        self.conf = _FakeConf(master)
        self.statements = []

    def sql(self, statement):
        self.statements.append(statement)
        return self

    def collect(self):
        return [{"format": "delta", "location": "x"}]


@pytest.fixture
def no_local_disk(monkeypatch):
    """Fail any look at the local filesystem."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"local filesystem checked: {args}")

    for name in ("isdir", "exists", "isfile"):
        monkeypatch.setattr(os.path, name, refuse)
    monkeypatch.setattr(os, "listdir", refuse)
    monkeypatch.setattr(os, "stat", refuse)


@pytest.mark.parametrize(
    "location",
    [
        "/Volumes/cat/sch/vol/events",
        "dbfs:/mnt/lake/events",
        "/mnt/lake/events",
        "/dbfs/lake/events",
        "/Workspace/Users/me/events",
        "abfss://c@acct.dfs.core.windows.net/events",
        "s3://bucket/events",
        "file:/tmp/events",
    ],
)
def test_remote_tables_are_checked_by_spark_not_on_this_disk(no_local_disk, location):
    spark = _FakeSpark(master="local[*, 4]")
    ref = TableRef.parse(location)
    assert not is_local_folder(spark, ref.location)
    assert io.table_exists(spark, ref) is True
    assert spark.statements == [f"DESCRIBE DETAIL delta.`{location}`"]


def test_plain_paths_are_local_only_on_a_local_master(monkeypatch):
    assert is_local_folder(_FakeSpark("local[2]"), "/data/events")
    assert not is_local_folder(_FakeSpark("spark://host:7077"), "/data/events")
    assert not is_local_folder(_FakeSpark("yarn"), "/data/events")
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")
    assert not is_local_folder(_FakeSpark("local[*, 4]"), "/tmp/events")


def test_a_local_table_exists_only_once_a_version_is_committed(tmp_path):
    spark = _FakeSpark("local[2]")
    ref = TableRef(str(tmp_path / "t"), True)
    assert not io.table_exists(spark, ref)
    log = tmp_path / "t" / "_delta_log"
    log.mkdir(parents=True)
    assert not io.table_exists(spark, ref)
    (log / ".00000000000000000000.json.5f1c.tmp").write_text("{}")
    (log / "_commits").mkdir()
    assert not io.table_exists(spark, ref)
    (log / "00000000000000000000.json").write_text("{}")
    assert io.table_exists(spark, ref)
    assert spark.statements == []
    (log / "00000000000000000000.json").unlink()
    (log / "00000000000000000010.checkpoint.parquet").write_text("")
    assert has_delta_log(str(tmp_path / "t"))


def test_predicates_render_typed_values():
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert (
        equality_predicate({"WindowStart": start, "WindowEnd": None, "Mode": "kql"})
        == "WindowStart = TIMESTAMP '2026-03-01 00:00:00+00:00' AND WindowEnd IS NULL AND Mode = 'kql'"
    )
    assert equality_predicate({"Variant": "it's"}) == "Variant = 'it\\'s'"
    # Another offset is rendered as the same instant in UTC, microseconds kept.
    ist = timezone(timedelta(hours=5, minutes=30))
    assert equality_predicate({"T": datetime(2026, 3, 1, 5, 30, 0, 250, tzinfo=ist)}) == "T = TIMESTAMP '2026-03-01 00:00:00.000250+00:00'"
    assert in_predicate("Day", [date(2026, 3, 1)]) == "Day IN (DATE '2026-03-01')"
    with pytest.raises(ValueError):
        equality_predicate({"a; drop": 1})
