"""The core over Spark Connect (the protocol of Databricks serverless and Databricks Connect).

A Connect server runs in its own JVM with the Delta JARs and extensions; the client side runs in
child processes, because a classic session (the suite's fixture) and a Connect session do not mix
in one Python process. Connect has no `sparkContext` and no RDDs, so anything in the core that
needs them fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from chispa import assert_df_equality

from partner_hunt.cli import run_cli
from partner_hunt.core import sample
from tests.integration.connect_client import results
from tests.integration.spark_cluster import (
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
    sample.generate_events(spark, 3_000, days=5, seed=5, end=END).repartition(2).write.format("delta").save(str(path))
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


RESULT_COLUMNS = [
    "TenantId", "SenderFromDomain", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats",
    "Bad_Traffic_Percentage", "WindowStart", "WindowEnd", "Mode",
]
LOG_COUNTS = ["Status", "RowsRead", "RowsUsed", "RowsQuarantined", "RecipientRowsExploded", "ResultRows"]


def test_job_end_to_end_over_connect(spark, server, source, tmp_path):
    """`partner-hunt run` over Connect reruns a classic run's window: same results, evidence and alerts.

    The real command (Delta source, results, run log, quarantine, evidence, alerts) with
    PARTNER_HUNT_REMOTE set. It reruns the window a classic run has just written, so over Connect
    the job takes the paths of a rerun: table checks and versions through SQL, replaceWhere on the
    results and evidence, and a MERGE into the existing alerts table. Corrected mode, so the
    normalisation, edit dedupe and message counting run too (the parity suite covers kql mode).
    """
    output = tmp_path / "results"
    # The embedded config, with an alert threshold this small lake crosses, so the MERGE runs.
    settings = yaml.safe_load(Path("conf/local.yml").read_text())
    settings["alerts"] = {**(settings.get("alerts") or {}), "min_inbound_threats": 1}
    config_file = tmp_path / "connect.yml"
    config_file.write_text(yaml.safe_dump(settings))
    window = ["--config", str(config_file), "--source", str(source), "--output", str(output),
              "--mode", "corrected", "--start", "2026-02-24", "--end", "2026-03-01"]
    assert run_cli(["run", *window, "--top", "0"]) == 0
    classic = {
        name: spark.sql(f"DESCRIBE HISTORY delta.`{output}{suffix}` LIMIT 1").collect()[0]["version"]
        for name, suffix in (("results", ""), ("evidence", "_evidence"), ("alerts", "_alerts"))
    }
    # Stored alerts that no longer say what the run finds: a rerun that finds the same makes no
    # alerts commit, and this one must MERGE through Connect.
    spark.sql(f"UPDATE delta.`{output}_alerts` SET SeverityId = -1")

    proc = run_child(["-m", "partner_hunt.cli", "run", *window, "--top", "3"], server.url,
                     PARTNER_HUNT_REMOTE=server.url)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]

    def table(suffix: str, version: int | None = None):
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(f"{output}{suffix}")

    connect_df = table("")
    assert connect_df.count() > 5, "the seeded lake gives too few corrected-mode domains to compare"
    assert_df_equality(
        connect_df.select(*RESULT_COLUMNS), table("", classic["results"]).select(*RESULT_COLUMNS),
        ignore_row_order=True, ignore_nullable=True,
    )
    # Two runs, one per session kind, both succeeded with the same row accounting.
    log_df = table("_run_log").orderBy("StartedAt")
    runs = log_df.select("RunId", *LOG_COUNTS).collect()
    assert [r["Status"] for r in runs] == ["succeeded", "succeeded"]
    assert [r[c] for c in LOG_COUNTS for r in runs[:1]] == [r[c] for c in LOG_COUNTS for r in runs[1:]]
    connect_run = runs[1]["RunId"]
    assert set(r["RunId"] for r in connect_df.select("RunId").distinct().collect()) == {connect_run}

    evidence_cols = [c for c in table("_evidence").columns if c not in ("RunId", "ComputedAt")]
    assert_df_equality(
        table("_evidence").select(*evidence_cols), table("_evidence", classic["evidence"]).select(*evidence_cols),
        ignore_row_order=True, ignore_nullable=True,
    )
    # MERGE through Connect: the same alerts, once each, now stamped with the Connect run.
    alerts_df, alerts_before = table("_alerts"), table("_alerts", classic["alerts"]).select("AlertId", "RuleId")
    assert alerts_before.count() > 0, "the seeded lake raises no alert, so the MERGE is not exercised"
    assert alerts_df.count() == alerts_df.select("AlertId").distinct().count()
    assert_df_equality(alerts_df.select("AlertId", "RuleId"), alerts_before, ignore_row_order=True, ignore_nullable=True)
    assert {r["RunId"] for r in alerts_df.select("RunId").distinct().collect()} == {connect_run}


def test_ingest_over_connect_equals_classic(spark, server, tmp_path):
    """`partner-hunt ingest` over Connect (as on serverless, where the typed lines are kept by a
    Connect local checkpoint): the same table and quarantine as a classic ingest of the same folder."""
    from pyspark.sql import functions as F

    from tests.integration.test_ingest import R1, R2, R4, crlf, envelope, write_blob

    folder = tmp_path / "insights-logs-advancedhunting-messageevents"
    write_blob(folder, 1, 9, crlf(envelope(R1), "not json {", envelope(R2), envelope(R1), envelope(R4)))
    classic, remote = tmp_path / "classic" / "message_events", tmp_path / "connect" / "message_events"
    args = ["ingest", "--from", "defender-storage", "--input", str(folder)]
    assert run_cli([*args, "--into", str(classic), "--output", str(classic.parent / "results")]) == 0
    proc = run_child(
        ["-m", "partner_hunt.cli", *args, "--into", str(remote), "--output", str(remote.parent / "results")],
        server.url, PARTNER_HUNT_REMOTE=server.url,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    assert "ingested 3 of 5 record(s)" in proc.stderr and "no local checkpoint" not in proc.stderr, proc.stderr[-4000:]

    def table(path: Path, suffix: str = "", drop: tuple[str, ...] = ()):
        df = spark.read.format("delta").load(f"{path}{suffix}")
        # A map cannot be ordered by: compared as its sorted entries.
        maps = {f.name for f in df.schema.fields if f.dataType.typeName() == "map"}
        return df.select(*[F.array_sort(F.map_entries(c)).alias(c) if c in maps else c for c in df.columns if c not in drop])

    lineage = ("IngestRunId", "IngestedAt", "IngestFile")
    assert table(classic).count() == 3
    assert_df_equality(table(remote, drop=lineage), table(classic, drop=lineage), ignore_row_order=True, ignore_nullable=True)
    kept = ("File", "RunId", "QuarantinedAt")
    assert_df_equality(
        table(remote, "_ingest_quarantine", kept), table(classic, "_ingest_quarantine", kept), ignore_row_order=True, ignore_nullable=True
    )
