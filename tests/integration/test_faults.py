"""Kill a command at each named fault point (`partner_hunt.faults`), resume it, and compare.

Every table the resumed command writes (results, partials, evidence, alerts, run log, quarantine)
and the alert JSON Lines must equal those of an uninterrupted run of the same command (one
reference per command, computed once in this process). Every point between commits is reached by
`backfill` and by `run --incremental`, and each table's first creation by one of them, on a 2-day
lake (and `mid-create-evidence` by `run`, the one command that writes evidence).

How each point is reached:

- A real SIGKILL, in a child process with `PARTNER_HUNT_FAULT=<point>`, for one point of each
  kind: after a commit (the partials), and in the middle of a table's first creation (the
  alerts). Each child starts its own JVM, which is what these cost; both run at once, on one core
  each, while this process reaches the other points.
- In this process, for the other `mid-create-<table>` points: the same fault point, with
  `faults.kill` made to raise a `BaseException` instead of sending SIGKILL. Nothing the
  command does after that line reaches the disk: no `except Exception` catches it (so no
  failed run-log row either), and the `finally` blocks it passes through only drop caches,
  temporary views and scoped settings. What stays on disk is what the kill leaves.
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from partner_hunt.commands import backfill, refresh, run
from partner_hunt.config import config_from_mapping
from partner_hunt.core import sample
from partner_hunt.store import faults
from tests.integration.spark_cluster import spark_env

pytestmark = pytest.mark.integration

START, END = date(2026, 3, 1), date(2026, 3, 3)
ALL_DAYS = {START, date(2026, 3, 2)}
# Columns a rerun legitimately changes: who wrote a row, and when.
VOLATILE = {"RunId", "ComputedAt", "FirstRaisedAt", "LastRaisedAt", "QuarantinedAt", "SourceVersion"}


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    """Two days of demo events plus two rows with no Timestamp (quarantined once per command)."""
    source = tmp_path_factory.mktemp("fault_lake") / "events"
    events_df = sample.generate_events(spark, rows=300, days=2, seed=11, tenants=1, end=datetime(2026, 3, 3, tzinfo=timezone.utc))
    # Threats on a tenth of the rows: this small lake then raises alerts, so their JSON Lines are compared.
    events_df = events_df.withColumn(
        "ThreatTypes", F.when(F.col("ReportId").endswith("7"), F.lit("Phish")).otherwise(F.col("ThreatTypes"))
    )
    timeless_df = events_df.limit(2).withColumn("Timestamp", F.lit(None).cast(events_df.schema["Timestamp"].dataType))
    events_df.unionByName(timeless_df).write.format("delta").save(str(source))
    return source


def config(source, output):
    return config_from_mapping(
        {
            "source": str(source),
            "output": str(output),
            "hunt": {"start": START.isoformat(), "end": END.isoformat(), "backfill_batch_days": 1, "top": 0},
            "quality": {"max_bad_fraction": 0.5},
            "spark": {"master": "local[1]"},
            # Low thresholds, so this small lake raises alerts and writes JSON Lines.
            "alerts": {"min_inbound_threats": 1},
        }
    )


def cli_args(command, source, output):
    base = ["--source", str(source), "--output", str(output), "--start", START.isoformat(), "--end", END.isoformat()]
    common = ["--master", "local[1]", "--max-bad-fraction", "0.5"]
    if command == "backfill":
        return ["backfill", *base, "--batch-days", "1", *common]
    if command == "incremental":
        return ["run", "--incremental", *base, *common]
    return ["run", *base, *common]


def resume(spark, command, source, output):
    cfg = config(source, output)
    if command == "backfill":
        return backfill.backfill(spark, cfg, START, END)
    if command == "incremental":
        return refresh.run_incremental(spark, cfg)
    return run.run(spark, cfg)


def write_alert_config(tmp: Path) -> Path:
    # One core and one partition per child: the work is tiny, and the other core runs the other child.
    path = tmp / "faults.yml"
    path.write_text(
        "alerts:\n  min_inbound_threats: 1\nhunt:\n  backfill_batch_days: 1\n  top: 0\n"
        "spark:\n  conf:\n    spark.ui.enabled: 'false'\n    spark.sql.shuffle.partitions: '1'\n"
        "    spark.default.parallelism: '1'\n    spark.databricks.delta.snapshotPartitions: '1'\n"
    )
    return path


def table(spark, path):
    df = spark.read.format("delta").load(str(path))
    return df.drop(*[c for c in df.columns if c in VOLATILE])


def assert_same_state(spark, out, reference):
    for suffix in ("", "_partials", "_alerts", "_quarantine", "_evidence"):
        expected_path = Path(f"{reference}{suffix}")
        actual_path = Path(f"{out}{suffix}")
        assert actual_path.exists() == expected_path.exists(), suffix
        if not expected_path.exists():
            continue
        expected_df = table(spark, expected_path)
        actual_df = table(spark, actual_path)
        if suffix == "_quarantine":
            # Each run appends its own quarantine rows; the resumed run's are the reference's.
            actual_df = actual_df.dropDuplicates()
            expected_df = expected_df.dropDuplicates()
        assert_df_equality(actual_df, expected_df, ignore_row_order=True, ignore_column_order=True, ignore_nullable=True)
    jsonl = ["start_time", "end_time", "count", "message", "severity_id", "mode", "window"]
    expected_jsonl = Path(f"{reference}_alerts_jsonl")
    assert Path(f"{out}_alerts_jsonl").exists() == expected_jsonl.exists()
    if not expected_jsonl.exists():
        return
    assert_df_equality(
        spark.read.json(f"{out}_alerts_jsonl").select(*jsonl),
        spark.read.json(str(expected_jsonl)).select(*jsonl),
        ignore_row_order=True,
    )
    runs = spark.read.format("delta").load(f"{out}_run_log").filter(F.col("Status") == "succeeded").count()
    assert runs >= 1


# Every named point of `partner_hunt.faults` that backfill and incremental pass through; both write
# their reports from the partials, so neither writes evidence (only `run` does). The points between
# commits are reached by both commands; a table's first creation goes through the same write
# whichever command makes it, so each `mid-create` point is reached by one of them.
BETWEEN = ["after-partials-commit", "before-report", "after-results-commit", "before-run-log"]
MID_CREATE = {"backfill": ["mid-create-run_log", "mid-create-alerts"], "incremental": ["mid-create-partials", "mid-create-quarantine"]}
assert sorted(p for points in MID_CREATE.values() for p in points) == sorted(
    f"mid-create-{table}" for table in faults.STATE_TABLES if table != "evidence"
)
# (command, point): these by a real SIGKILL in a child process; every other pair in this process.
KILLED = [
    ("backfill", "after-partials-commit"),
    ("backfill", "mid-create-alerts"),
]
SIMULATED = [
    *((command, point) for command in ("backfill", "incremental") for point in [*BETWEEN, *MID_CREATE[command]] if (command, point) not in KILLED),
    ("run", "mid-create-evidence"),
]
# Cold short-lived JVMs: C1 only (see spark_cluster.spark_env), and the serial collector, whose
# single thread does not compete with the job on a shared core.
CHILD_JAVA = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


class Killed(BaseException):
    """What `faults.kill` raises in this process: like SIGKILL, nothing catches it on the way out."""


def raise_killed() -> None:
    raise Killed()


def kill_child(command: str, point: str, lake: Path, out: Path, conf: Path) -> tuple[int, str]:
    """Run the CLI in a child that SIGKILLs itself at `point`; its return code and stderr's tail."""
    env = spark_env(PARTNER_HUNT_FAULT=point, JAVA_TOOL_OPTIONS=CHILD_JAVA)
    argv = [sys.executable, "-m", "partner_hunt.cli", *cli_args(command, lake, out), "--config", str(conf)]
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=900, start_new_session=True)
    return proc.returncode, proc.stderr.decode()[-2000:]


@pytest.fixture(scope="module")
def children(lake, tmp_path_factory):
    """The SIGKILL children, started first: they run while this process computes the references."""
    root = tmp_path_factory.mktemp("killed")
    conf = write_alert_config(root)
    pool = ThreadPoolExecutor(max_workers=2)
    started: list[tuple[str, str, Path, Future]] = []
    for command, point in KILLED:
        out = root / f"{command}_{point}" / "results"
        out.parent.mkdir()
        started.append((command, point, out, pool.submit(kill_child, command, point, lake, out, conf)))
    yield started
    pool.shutdown(wait=True)


@pytest.fixture(scope="module")
def references(spark, lake, tmp_path_factory):
    """One uninterrupted run per command, into its own output."""
    refs = {}
    for command in ("backfill", "incremental", "run"):
        out = tmp_path_factory.mktemp(f"ref_{command}") / "results"
        resume(spark, command, lake, out)
        # Alerts were raised: the alerts table and JSON Lines hold something to get wrong.
        assert table(spark, Path(f"{out}_alerts")).count() > 0, command
        refs[command] = out
    return refs


def assert_left_mid_create(out: Path, point: str) -> None:
    """What a kill inside a table's first write leaves: a log folder with no commit in it."""
    if point.startswith("mid-create-"):
        table_dir = Path(f"{out}_{point.removeprefix('mid-create-')}")
        assert (table_dir / "_delta_log").is_dir() and not any((table_dir / "_delta_log").glob("*.json")), point


def committed_days(spark, out: Path) -> set[date]:
    """The days whose partials are committed (one marker row each)."""
    markers = spark.read.format("delta").load(f"{out}_partials").filter(F.col("Domain").isNull())
    return {row.Day for row in markers.select("Day").collect()}


def test_killed_at_each_point_then_resumed_equals_an_uninterrupted_run(spark, lake, children, references, tmp_path, monkeypatch):
    started = time.monotonic()
    # The in-process points first, while the children still run.
    monkeypatch.setattr(faults, "kill", raise_killed)
    for command, point in SIMULATED:
        out = tmp_path / f"{command}_{point}" / "results"
        monkeypatch.setenv(faults.ENV, point)
        with pytest.raises(Killed):
            resume(spark, command, lake, out)
        monkeypatch.delenv(faults.ENV)
        assert_left_mid_create(out, point)
        done = committed_days(spark, out) if point == "after-partials-commit" else set()
        report = resume(spark, command, lake, out)
        assert report.status == "succeeded", point
        if point == "after-partials-commit":
            # The resumed command computes exactly the days the killed one had not committed.
            assert done and set(report.days_computed) == ALL_DAYS - done, (command, done, report.days_computed)
        assert_same_state(spark, out, references[command])
    for command, point, out, future in children:
        returncode, err = future.result()
        assert returncode == -9, f"{command} did not die at {point} (rc {returncode}): {err}"
        assert_left_mid_create(out, point)
        done = committed_days(spark, out) if point == "after-partials-commit" else set()
        report = resume(spark, command, lake, out)
        assert report.status == "succeeded", point
        if point == "after-partials-commit":
            # Killed after its first one-day batch: the resumed run computes only the other day.
            assert done == {START}
            assert report.days_computed == [date(2026, 3, 2)]
        assert_same_state(spark, out, references[command])
    print(f"fault points: {time.monotonic() - started:.0f} s after the references")
