"""The job on a real multi-process Spark standalone cluster (a master and two workers on loopback).

`local[*]` runs every task in one JVM, so it hides serialisation and shuffle bugs and code that
only works when the driver and executors share memory. Here the job is submitted with
`spark-submit` (package zipped into `--py-files`, Delta from `--packages`) and run with
`partner-hunt run --master spark://...`, and both must give exactly the `local[2]` answer. The
fault test kills an executor mid-job: Spark must retry the lost work and still give that answer.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from chispa import assert_df_equality

from partner_hunt.cli import run_cli
from partner_hunt.config import Config
from partner_hunt.core import sample
from tests.conftest import settings_restored
from tests.integration.spark_cluster import (
    DELTA_CONF,
    JOB_TIMEOUT,
    REPO,
    StandaloneCluster,
    package_zip,
    spark_env,
    spark_submit_args,
    tail,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("pgrep") is None, reason="needs pgrep to find executor processes"),
]

COMPARED = [
    "TenantId", "SenderFromDomain", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats",
    "Bad_Traffic_Percentage", "WindowStart", "WindowEnd", "Mode",
]
LOG_COUNTS = ["Status", "RowsRead", "RowsUsed", "RowsQuarantined", "RecipientRowsExploded", "ResultRows"]
END = datetime(2026, 3, 1, tzinfo=timezone.utc)
# Small enough for a busy 2-core machine; spread over several files so both executors get tasks.
ROWS, FILES = 6_000, 4
# The cluster's executors fit a 1 GiB worker; few partitions keep a tiny job from being all overhead.
JOB_CONF = {
    **DELTA_CONF,
    "spark.executor.memory": "768m",
    "spark.sql.shuffle.partitions": "2",
    "spark.databricks.delta.snapshotPartitions": "2",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A master and two 1-core workers; torn down (process groups killed) even when a test fails."""
    started = StandaloneCluster(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    """A seeded Delta source on local disk, its config, its `local[2]` results, and the package zip."""
    root = tmp_path_factory.mktemp("lake")
    source = root / "message_events"
    (
        sample.generate_events(spark, ROWS, days=7, seed=11, end=END)
        .repartition(FILES)
        .write.format("delta")
        .save(str(source))
    )
    # conf/cluster.yml as shipped, with only the settings that suit a tiny test changed.
    settings = yaml.safe_load((REPO / "conf" / "cluster.yml").read_text())
    settings["source"] = str(source)
    settings["spark"]["conf"].update(
        {k: v for k, v in JOB_CONF.items() if k.startswith("spark.sql.shuffle") or "snapshot" in k}
    )
    # The analyst outputs add a dozen small Spark jobs each and have their own tests; the cluster
    # tests are about the hunt's shuffle and retries, so they are left out to keep the run short.
    # Corrected mode: besides the hunt's aggregation it dedupes edits (a window) and counts distinct
    # messages, so more shuffles cross executors, and the seeded lake gives more domains to compare.
    settings.setdefault("hunt", {})["mode"] = "corrected"
    for section in ("evidence", "alerts"):
        if section in {f.name for f in dataclasses.fields(Config)}:
            settings[section] = {"enabled": False}
    config = root / "cluster-test.yml"
    config.write_text(yaml.safe_dump(settings))
    local_output = root / "local_results"
    # The session fixture is local[2], so this is the single-JVM reference answer.
    with settings_restored(spark):
        assert run_cli(["run", "--config", str(config), "--output", str(local_output), "--top", "0"]) == 0
    return {
        "root": root,
        "source": source,
        "config": config,
        "local_output": local_output,
        "zip": package_zip(root / "partner_hunt.zip"),
    }


def submit(cluster: StandaloneCluster, lake: dict, output: Path, log: Path) -> subprocess.Popen:
    """Start `spark-submit jobs/partner_hunt_job.py run` against the cluster."""
    args = spark_submit_args(
        cluster.url,
        JOB_CONF,
        lake["zip"],
        [str(REPO / "jobs" / "partner_hunt_job.py"), "run", "--config", str(lake["config"]),
         "--output", str(output), "--top", "3"],
    )
    handle = log.open("wb")
    try:
        # Not from the repo root: the job must import partner_hunt from the shipped zip.
        return subprocess.Popen(
            args, stdout=handle, stderr=subprocess.STDOUT, env=spark_env(), cwd=lake["root"],
            start_new_session=True,
        )
    finally:
        handle.close()


def finish(proc: subprocess.Popen, log: Path) -> str:
    """Wait for a job, killing it on timeout; return its output, failing on a non-zero exit."""
    try:
        proc.wait(timeout=JOB_TIMEOUT)
    except subprocess.TimeoutExpired:
        import os
        import signal

        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"job did not finish in {JOB_TIMEOUT:.0f}s:\n{tail(log)}")
    output = log.read_text(errors="replace")
    assert proc.returncode == 0, f"job failed ({proc.returncode}):\n{tail(log, 8000)}"
    return output


def assert_same_results(spark, lake: dict, output: Path) -> None:
    """The cluster's results and run-log counts equal the local run's."""
    expected_df = spark.read.format("delta").load(str(lake["local_output"])).select(*COMPARED)
    actual_df = spark.read.format("delta").load(str(output)).select(*COMPARED)
    assert expected_df.count() > 5, "the reference run found too few domains to compare"
    assert_df_equality(actual_df, expected_df, ignore_row_order=True, ignore_nullable=True)
    expected_log = spark.read.format("delta").load(str(lake["local_output"]) + "_run_log").select(*LOG_COUNTS)
    actual_log = spark.read.format("delta").load(str(output) + "_run_log").select(*LOG_COUNTS)
    assert_df_equality(actual_log, expected_log, ignore_row_order=True, ignore_nullable=True)


def workers_that_ran_tasks(cluster: StandaloneCluster, before: set[Path]) -> set[str]:
    """Workers whose executors started since `before` ran at least one task."""
    return {
        log.parts[-4]
        for log in set(cluster.executor_logs()) - before
        if "Running task" in log.read_text(errors="replace")
    }


def test_cli_master_flag_on_cluster_matches_local(spark, cluster, lake, tmp_path):
    """`partner-hunt run --master spark://...` outside spark-submit: Delta JARs come from the session."""
    output = tmp_path / "cli_results"
    log = tmp_path / "cli.log"
    before = set(cluster.executor_logs())
    cli = Path(sys.executable).with_name("partner-hunt")
    handle = log.open("wb")
    proc = subprocess.Popen(
        [str(cli), "run", "--master", cluster.url, "--config", str(lake["config"]), "--output", str(output),
         "--top", "3"],
        stdout=handle, stderr=subprocess.STDOUT, cwd=lake["root"], start_new_session=True,
        env=spark_env(),
    )
    handle.close()
    finish(proc, log)

    assert workers_that_ran_tasks(cluster, before) == {"worker0", "worker1"}
    assert_same_results(spark, lake, output)


def test_spark_submit_on_cluster_survives_a_killed_executor(spark, cluster, lake, tmp_path):
    """`spark-submit` onto the cluster, then kill -9 one executor once it has finished a task.

    The job must have run on the standalone master with tasks on both workers, and Spark's
    retries must still give exactly the `local[2]` answer. (One submission covers both the
    spark-submit path and the fault: each submission costs a minute and a half on two cores.)
    """
    output = tmp_path / "fault_results"
    log = tmp_path / "fault.log"
    before = set(cluster.executor_logs())
    proc = submit(cluster, lake, output, log)
    victim = None
    try:
        deadline = time.monotonic() + JOB_TIMEOUT
        while victim is None and proc.poll() is None and time.monotonic() < deadline:
            for stderr in set(cluster.executor_logs()) - before:
                if "Finished task" in stderr.read_text(errors="replace"):
                    pids = cluster.executor_pids()
                    if pids:
                        victim = pids[0]
                        subprocess.run(["kill", "-9", str(victim)], check=True)
                        break
            time.sleep(0.2)
    finally:
        printed = finish(proc, log)

    assert victim is not None, "the job finished before an executor could be killed; make the source bigger"
    assert "Connected to Spark cluster" in printed, "the job did not run on the standalone master"
    assert workers_that_ran_tasks(cluster, before) == {"worker0", "worker1"}
    assert re.search(r"Lost executor \d+|Executor \S+ removed", printed), tail(log, 8000)
    assert_same_results(spark, lake, output)


def test_ingest_on_cluster_matches_local(spark, cluster, lake, tmp_path):
    """`partner-hunt ingest --master spark://...`: the typed lines are kept on the executors' disks
    (a local checkpoint) and read back by the counts, the quarantine and the write on both workers;
    the table equals the one a `local[2]` ingest writes from the same export."""
    from partner_hunt.store import landing

    folder = tmp_path / "insights-logs-advancedhunting-messageevents"
    # Two days of hourly blobs, so both executors get tasks; one line that is not JSON.
    events_df = sample.generate_events(spark, 3_000, days=2, seed=13, end=END)
    landing.write_local_export(sample.export_lines(events_df), str(folder))
    with next(folder.rglob("PT1H.json")).open("a", encoding="utf-8", newline="") as blob:
        blob.write("not json {\r\n")
    args = ["ingest", "--config", str(lake["config"]), "--from", "defender-storage", "--input", str(folder)]
    local, remote = tmp_path / "local" / "message_events", tmp_path / "cluster" / "message_events"
    with settings_restored(spark):
        assert run_cli([*args, "--into", str(local), "--output", str(local.parent / "results")]) == 0
    log = tmp_path / "ingest.log"
    before = set(cluster.executor_logs())
    cli = Path(sys.executable).with_name("partner-hunt")
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            [str(cli), *args, "--master", cluster.url, "--into", str(remote), "--output", str(remote.parent / "results")],
            stdout=handle, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True, env=spark_env(),
        )
    printed = finish(proc, log)
    assert re.search(r"ingested [\d,]+ of 3,001 record\(s\)", printed) and "quarantined 1 " in printed, tail(log)
    assert workers_that_ran_tasks(cluster, before) == {"worker0", "worker1"}
    lineage = ("IngestRunId", "IngestedAt", "IngestFile")

    def table(path: Path):
        df = spark.read.format("delta").load(str(path))
        return df.select(*[c for c in df.columns if c not in lineage and df.schema[c].dataType.typeName() != "map"])

    assert_df_equality(table(remote), table(local), ignore_row_order=True, ignore_nullable=True)
