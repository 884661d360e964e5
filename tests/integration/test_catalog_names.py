"""Catalog tables end to end: backticked names and three-part names, state tables beside them."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest
from pyspark.sql import functions as F

from partner_hunt.commands import backfill, run
from partner_hunt.config import config_from_mapping
from partner_hunt.core import sample

pytestmark = pytest.mark.integration

D0 = date(2026, 3, 1)
END = datetime(2026, 3, 4, tzinfo=timezone.utc)


def config(source: str, output: str, jsonl: str):
    return config_from_mapping(
        {
            "source": source,
            "output": output,
            "hunt": {"top": 0, "start": D0.isoformat(), "end": END.isoformat()},
            "alerts": {"min_inbound_threats": 1, "spike_factor": None, "jsonl": jsonl},
            "quality": {"max_bad_fraction": 0.5},
        }
    )


@pytest.fixture(scope="module")
def source_table(spark):
    """One catalog source, created once: named with backticks by one test, in three parts by the other."""
    spark.sql("DROP TABLE IF EXISTS default.message_events_bt")
    sample.generate_events(spark, rows=300, days=3, seed=5, tenants=1, end=END).write.format("delta").saveAsTable(
        "default.`message_events_bt`"
    )
    yield "message_events_bt"
    spark.sql("DROP TABLE IF EXISTS default.message_events_bt")


def count(spark, name: str, where: str = "true") -> int:
    return spark.read.table(name).filter(where).count()


def check_run(spark, output: str, state: dict[str, str], runs: int) -> None:
    """The results, run log, evidence and alerts of the window sit beside `output`."""
    window = f"WindowStart = TIMESTAMP '{D0.isoformat()} 00:00:00+00:00' AND WindowEnd = TIMESTAMP '2026-03-04 00:00:00+00:00'"
    results = count(spark, output, window)
    assert results > 0 and count(spark, output) == results
    log = spark.read.table(state["run_log"])
    assert log.count() == runs
    assert {(r.Status, r.Output) for r in log.collect()} == {("succeeded", output)}
    # One evidence row per results row; alerts only for rows that cross the threshold.
    assert count(spark, state["evidence"], window) == results
    assert 0 < count(spark, state["alerts"], window) <= results


def test_backticked_names(spark, source_table, tmp_path):
    # Spark's local session catalog refuses a hyphen in a table name (INVALID_SCHEMA_OR_RELATION_NAME;
    # Unity Catalog allows it), so the backticks are exercised with names it accepts; the hyphenated
    # names' state tables are checked in tests/unit/test_io.py.
    source, output = f"default.`{source_table}`", "default.`hunt_results_bt`"
    state = {k: f"default.`hunt_results_bt_{k}`" for k in ("run_log", "evidence", "alerts", "partials")}
    try:
        cfg = config(source, output, str(tmp_path / "alerts"))
        report = run.run(spark, cfg)
        assert report.status == "succeeded"
        check_run(spark, output, state, runs=1)
        # The alert JSON Lines went to the configured folder, one window partition.
        lines = [json.loads(line) for f in (tmp_path / "alerts").glob("mode=kql/window=*/*.json") for line in f.read_text().splitlines()]
        assert len(lines) == count(spark, state["alerts"])

        backfill.backfill(spark, cfg, D0, END.date())
        markers = spark.read.table(state["partials"]).filter(F.col("Domain").isNull())
        assert sorted(r.Day for r in markers.collect()) == [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
        assert {r.Source for r in markers.collect()} == {source}
        # Backfill rewrote the same window from the partials: still one copy of each row.
        check_run(spark, output, state, runs=2)
    finally:
        for name in (output, *state.values(), "default.`hunt_results_bt_quarantine`"):
            spark.sql(f"DROP TABLE IF EXISTS {name}")


def test_three_part_name_and_rerun(spark, source_table, tmp_path):
    source, output = f"spark_catalog.default.{source_table}", "spark_catalog.default.results3"
    state = {k: f"{output}_{k}" for k in ("run_log", "evidence", "alerts")}
    try:
        cfg = config(source, output, str(tmp_path / "alerts"))
        run.run(spark, cfg)
        check_run(spark, output, state, runs=1)
        before = sorted(spark.read.table(output).drop("RunId", "ComputedAt").collect())
        # A rerun over existing catalog tables replaces the window: same rows, no duplicates.
        run.run(spark, cfg)
        check_run(spark, output, state, runs=2)
        assert sorted(spark.read.table(output).drop("RunId", "ComputedAt").collect()) == before
        assert spark.catalog.tableExists("default.results3_evidence")
    finally:
        for name in (output, *state.values(), f"{output}_quarantine"):
            spark.sql(f"DROP TABLE IF EXISTS {name}")
