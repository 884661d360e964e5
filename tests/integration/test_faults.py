"""Kill a command at each named fault point (`partner_hunt.faults`), resume it, and compare.

Each kill runs in a child process with `PARTNER_HUNT_FAULT=<point>`, which SIGKILLs itself
there; the same command then runs to the end in this process, and every table it writes
(results, partials, alerts, run log, quarantine) and the alert JSON Lines must equal those of an
uninterrupted run. Child JVM start-ups are the cost, so each point is proven once, on a 2-day lake.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from partner_hunt import backfill, demo, incremental, pipeline
from partner_hunt.config import config_from_mapping
from tests.integration.spark_cluster import spark_env

pytestmark = pytest.mark.integration

START, END = date(2026, 3, 1), date(2026, 3, 3)
# Columns a rerun legitimately changes: who wrote a row, and when.
VOLATILE = {"RunId", "ComputedAt", "FirstRaisedAt", "LastRaisedAt", "QuarantinedAt", "SourceVersion"}


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    """Two days of demo events plus two rows with no Timestamp (quarantined once per command)."""
    source = tmp_path_factory.mktemp("fault_lake") / "events"
    events_df = demo.generate_events(spark, rows=300, days=2, seed=11, tenants=1, end=datetime(2026, 3, 3, tzinfo=timezone.utc))
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
        return incremental.run_incremental(spark, cfg)
    return pipeline.run(spark, cfg)


def write_alert_config(tmp: Path) -> Path:
    path = tmp / "faults.yml"
    path.write_text("alerts:\n  min_inbound_threats: 1\nhunt:\n  backfill_batch_days: 1\n  top: 0\n")
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


# (command, point): every point once; mid-create points on the command that first creates that table.
POINTS = [
    ("backfill", "after-partials-commit"),
    ("backfill", "before-report"),
    ("backfill", "after-results-commit"),
    ("backfill", "before-run-log"),
    ("backfill", "mid-create-alerts"),
    ("backfill", "mid-create-quarantine"),
    ("incremental", "mid-create-partials"),
    ("incremental", "mid-create-run_log"),
    ("run", "mid-create-evidence"),
]


@pytest.fixture(scope="module")
def references(spark, lake, tmp_path_factory):
    """One uninterrupted run per command, into its own output."""
    refs = {}
    for command in ("backfill", "incremental", "run"):
        out = tmp_path_factory.mktemp(f"ref_{command}") / "results"
        resume(spark, command, lake, out)
        refs[command] = out
    return refs


def test_killed_at_each_point_then_resumed_equals_an_uninterrupted_run(spark, lake, references, tmp_path):
    started = time.monotonic()
    conf = write_alert_config(tmp_path)
    children = []
    # Two children at a time: the machine has two cores, and each child mostly waits on its JVM.
    for i in range(0, len(POINTS), 2):
        batch = []
        for command, point in POINTS[i : i + 2]:
            out = tmp_path / f"{command}_{point}" / "results"
            out.parent.mkdir()
            env = spark_env(PARTNER_HUNT_FAULT=point)
            argv = [sys.executable, "-m", "partner_hunt.cli", *cli_args(command, lake, out), "--config", str(conf)]
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
            batch.append((command, point, out, proc))
        for command, point, out, proc in batch:
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == -9, f"{command} did not die at {point} (rc {proc.returncode}): {err.decode()[-2000:]}"
            children.append((command, point, out))
    child_seconds = time.monotonic() - started
    for command, point, out in children:
        if point.startswith("mid-create-"):
            table_dir = Path(f"{out}_{point.removeprefix('mid-create-')}")
            assert (table_dir / "_delta_log").is_dir() and not any((table_dir / "_delta_log").glob("*.json")), point
        report = resume(spark, command, lake, out)
        assert report.status == "succeeded", point
        assert_same_state(spark, out, references[command])
    print(f"fault children: {child_seconds:.0f} s for {len(POINTS)} points; total {time.monotonic() - started:.0f} s")
