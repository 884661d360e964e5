"""No result depends on the session the job joins: the same hunt in New York and Kolkata time
equals UTC, and equals it on a compute that refuses Spark's cache (Databricks serverless).

A session the job joins (Databricks, spark-submit) keeps its own `spark.sql.session.timeZone`.
Every window bound, day bucket, replaceWhere predicate and JSON time must still be the UTC one.

One module lake and one UTC baseline of `run`, `backfill` and `run --incremental`. Then the first
pass of all three runs in America/New_York (a whole-hour offset that moves midnight to the day
before) into fresh outputs, and the rerun of all three in Asia/Kolkata (a half-hour offset) over
what New York wrote: each pass's tables, run-log row and JSON Lines must equal the UTC run's.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from partner_hunt.commands import backfill, refresh, run
from partner_hunt.config import config_from_mapping
from partner_hunt.core import sample

pytestmark = pytest.mark.integration

D0 = date(2026, 3, 1)
DAYS = 4
END = datetime(2026, 3, 1 + DAYS, tzinfo=timezone.utc)
TIME_ZONE = "spark.sql.session.timeZone"
# Columns that name a run or the moment it ran: they differ between any two runs.
VOLATILE = {"RunId", "ComputedAt", "FirstRaisedAt", "LastRaisedAt", "QuarantinedAt"}
TABLES = ("", "_partials", "_evidence", "_alerts", "_quarantine")
RUN_LOG = [
    "Command", "Status", "Mode", "Variant", "WindowStart", "WindowEnd", "DaysComputed",
    "RowsRead", "RowsUsed", "RowsQuarantined", "RecipientRowsExploded", "ResultRows",
]
# OCSF times of when an alert was raised, not of what it is about.
OCSF_VOLATILE = {"time", "created_time", "modified_time"}


def config(source: Path, output: Path, **hunt):
    return config_from_mapping(
        {
            "source": str(source),
            "output": str(output),
            "hunt": {"top": 0, **hunt},
            # Low thresholds, so that every rule (the spike rule reads the partials) raises alerts.
            "alerts": {
                "min_inbound_threats": 2,
                "spike_factor": 0.5,
                "spike_baseline_days": 2,
                "spike_min_baseline_days": 1,
                "spike_min_inbound": 1,
            },
            # A generous ceiling: the demo lake's few malformed rows land in the quarantine table.
            "quality": {"max_bad_fraction": 0.5},
        }
    )


def hunt(spark, source: Path, root: Path, command: str, rerun: bool = False) -> None:
    """One of `run`, `backfill` (trailing windows) or `run --incremental`, into `root/<command>`."""
    output = root / command
    if command == "run":
        run.run(spark, config(source, output, start=D0.isoformat(), end=END.isoformat()))
    elif command == "backfill":
        # Three trailing two-day windows; all days in one batch, so one commit of partials.
        start = D0 + timedelta(days=DAYS - 3)
        trailing = config(source, output, backfill_trailing_days=2, backfill_batch_days=DAYS)
        backfill.backfill(spark, trailing, start, END.date(), force=rerun)
    else:
        refresh.run_incremental(spark, config(source, output, end=END.isoformat(), trailing_days=DAYS))


def table(spark, path: Path):
    df = spark.read.format("delta").load(str(path))
    return df.select(*[c for c in df.columns if c not in VOLATILE])


def ocsf_lines(folder: Path) -> dict[str, list[dict]]:
    """The alert JSON Lines per partition folder, without the raised-at times."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in OCSF_VOLATILE}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    out: dict[str, list[dict]] = {}
    for part in sorted(folder.glob("mode=*/window=*/*.json")):
        key = str(part.parent.relative_to(folder))
        lines = [strip(json.loads(line)) for line in part.read_text().splitlines() if line.strip()]
        out.setdefault(key, []).extend(lines)
    return {k: sorted(v, key=json.dumps) for k, v in out.items()}


def assert_same_outputs(spark, actual: Path, expected: Path, command: str, run_log_rows: int | None = None) -> None:
    for suffix in TABLES:
        path = expected / f"{command}{suffix}"
        if not path.exists():
            assert not (actual / f"{command}{suffix}").exists(), f"{command}{suffix}"
            continue
        actual_df, expected_df = table(spark, actual / f"{command}{suffix}"), table(spark, path)
        if suffix == "_quarantine":
            # Appended by every run: a rerun adds the same rows again.
            actual_df, expected_df = actual_df.distinct(), expected_df.distinct()
        assert_df_equality(actual_df, expected_df, ignore_row_order=True)
    if run_log_rows is not None:
        # The zone's own run (the last row) did what the UTC run did: same windows, days and counts.
        log_df = table(spark, actual / f"{command}_run_log")
        assert log_df.count() == run_log_rows
        last = log_df.orderBy("StartedAt", ascending=False).limit(1).select(*RUN_LOG)
        assert_df_equality(last, table(spark, expected / f"{command}_run_log").select(*RUN_LOG), ignore_row_order=True)
    assert ocsf_lines(actual / f"{command}_alerts_jsonl") == ocsf_lines(expected / f"{command}_alerts_jsonl")


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    """A small seeded source, written once in UTC."""
    source = tmp_path_factory.mktemp("tz_lake") / "message_events"
    events_df = sample.generate_events(spark, rows=1600, days=DAYS, seed=12, tenants=2, end=END)
    # Threats on a tenth of the rows, so that every alert rule has something to raise on each day.
    events_df = events_df.withColumn(
        "ThreatTypes", F.when(F.col("ReportId").endswith("7"), F.lit("Phish")).otherwise(F.col("ThreatTypes"))
    )
    events_df.write.format("delta").save(str(source))
    return source


@pytest.fixture(scope="module")
def utc_baseline(spark, lake, tmp_path_factory):
    """Every output of the three commands, computed with the session in UTC."""
    assert spark.conf.get(TIME_ZONE) == "UTC"
    root = tmp_path_factory.mktemp("tz_utc")
    for command in ("run", "backfill", "incremental"):
        hunt(spark, lake, root, command)
    # The baseline is not empty: windows, days and alerts were all there to get wrong.
    assert table(spark, root / "run_alerts").count() > 0
    assert table(spark, root / "backfill").select("WindowEnd").distinct().count() == 3
    assert table(spark, root / "backfill_alerts").count() > 0
    assert ocsf_lines(root / "run_alerts_jsonl")
    return root


def test_results_do_not_depend_on_the_session_time_zone(spark, lake, utc_baseline, tmp_path):
    # First pass in New York: every output fresh, every day bucketed and every window bound made in
    # this zone. The rerun in Kolkata then replaces New York's rows: each replaceWhere predicate
    # (and the alerts MERGE) must match rows written in another zone; `force` recomputes every
    # day's partials, and the incremental rerun finds nothing new.
    try:
        spark.conf.set(TIME_ZONE, "America/New_York")
        for command in ("run", "backfill", "incremental"):
            hunt(spark, lake, tmp_path, command)
            assert_same_outputs(spark, tmp_path, utc_baseline, command, run_log_rows=1)
        spark.conf.set(TIME_ZONE, "Asia/Kolkata")
        for command in ("run", "backfill", "incremental"):
            hunt(spark, lake, tmp_path, command, rerun=True)
            assert_same_outputs(spark, tmp_path, utc_baseline, command, run_log_rows=None if command == "incremental" else 2)
    finally:
        spark.conf.set(TIME_ZONE, "UTC")


def test_a_compute_that_refuses_the_cache_gets_the_same_outputs(spark, lake, utc_baseline, tmp_path, monkeypatch):
    """Serverless compute raises NOT_SUPPORTED_WITH_SERVERLESS for `cache`, `persist` and
    `unpersist`: every command must then compute again what it would have cached, not fail."""
    from pyspark.sql.classic.dataframe import DataFrame as ClassicDataFrame

    refusals = []

    def refuse(self, *args, **kwargs):
        refusals.append(1)
        raise RuntimeError("[NOT_SUPPORTED_WITH_SERVERLESS] PERSIST TABLE is not supported on serverless compute. SQLSTATE: 0A000")

    for name in ("cache", "persist", "unpersist"):
        monkeypatch.setattr(ClassicDataFrame, name, refuse)
    for command in ("run", "backfill", "incremental"):
        hunt(spark, lake, tmp_path, command)
        assert_same_outputs(spark, tmp_path, utc_baseline, command, run_log_rows=1)
    assert refusals, "no command asked for the cache: this test no longer covers the refusal"
