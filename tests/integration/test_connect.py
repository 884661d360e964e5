"""The core over Spark Connect (the protocol of Databricks serverless and Databricks Connect).

A Connect server runs in its own JVM with the Delta JARs and extensions; the client side runs in
child processes, because a classic session (the suite's fixture) and a Connect session do not mix
in one Python process. Connect has no `sparkContext` and no RDDs, so anything in the core that
needs them fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from chispa import assert_df_equality

from partner_hunt import demo
from partner_hunt.cli import main
from tests.integration.connect_client import results
from tests.integration.spark_cluster import (
    DELTA_CONNECT_PACKAGES,
    JOB_TIMEOUT,
    REPO,
    ConnectServer,
    spark_env,
)

pytestmark = pytest.mark.integration

pytest.importorskip("grpc", reason="Spark Connect needs pyspark[connect]")
pytest.importorskip("pandas", reason="Spark Connect needs pyspark[connect]")

END = datetime(2026, 3, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A Connect server on a free loopback port, stopped even when a test fails."""
    started = ConnectServer(tmp_path_factory.mktemp("connect")).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def source(spark, tmp_path_factory):
    """A small seeded Delta source, with the demo's odd inputs (bad addresses, null flags, edits)."""
    path = tmp_path_factory.mktemp("connect_lake") / "message_events"
    demo.generate_events(spark, 3_000, days=5, seed=5, end=END).repartition(2).write.format("delta").save(str(path))
    return path


def run_child(args: list[str], remote: str, **env: str) -> subprocess.CompletedProcess:
    """Run a Python child with the repo importable and the Connect URL in its environment."""
    child_env = spark_env(PARTNER_HUNT_TEST_REMOTE=remote, PYTHONPATH=str(REPO), **env)
    child_env.pop("SPARK_REMOTE", None)
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=child_env, capture_output=True, text=True, timeout=JOB_TIMEOUT
    )


def test_parity_suite_passes_over_connect(server):
    """tests/unit/test_hunt.py, unchanged, with its `spark` fixture swapped for a Connect session."""
    proc = run_child(
        ["-m", "pytest", "--noconftest", "-p", "tests.integration.connect_plugin", "-p", "no:cacheprovider",
         "-q", "tests/unit/test_hunt.py"],
        server.url,
    )
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1]


def test_schema_contract_and_hunt_over_connect_match_classic(spark, server, source, tmp_path):
    """Delta in and out through the DataFrame API, both modes; Connect gives the classic answer."""
    proc = run_child(
        ["-m", "tests.integration.connect_client", server.url, str(source), str(tmp_path / "out")], server.url
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["session"].startswith("pyspark.sql.connect")

    source_df = spark.read.format("delta").load(str(source))
    for mode in ("kql", "corrected"):
        expected_df = results(source_df, mode)
        assert expected_df.count() > 0, f"the seeded lake gives no {mode} results to compare"
        actual_df = spark.createDataFrame([tuple(r[c] for c in expected_df.columns) for r in got[mode]], expected_df.schema)
        assert_df_equality(actual_df, expected_df, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.skipif(
    not DELTA_CONNECT_PACKAGES,
    reason="the job's Delta utility calls (DeltaTable.isDeltaTable/history) need the Delta Connect server "
    "plugin; set PARTNER_HUNT_DELTA_CONNECT_PACKAGES to its Maven coordinates (docs/cluster.md)",
)
def test_job_end_to_end_over_connect(spark, server, source, tmp_path):
    """`partner-hunt run` with PARTNER_HUNT_REMOTE gives the same results table as a classic run."""
    connect_out, local_out = tmp_path / "connect_results", tmp_path / "local_results"
    proc = run_child(
        ["-m", "partner_hunt.cli", "run", "--source", str(source), "--output", str(connect_out), "--top", "0"],
        server.url,
        PARTNER_HUNT_REMOTE=server.url,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    assert main(["run", "--source", str(source), "--output", str(local_out), "--top", "0"]) == 0
    cols = ["TenantId", "SenderFromDomain", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats",
            "Bad_Traffic_Percentage", "WindowStart", "WindowEnd", "Mode"]
    assert_df_equality(
        spark.read.format("delta").load(str(connect_out)).select(*cols),
        spark.read.format("delta").load(str(local_out)).select(*cols),
        ignore_row_order=True,
        ignore_nullable=True,
    )
