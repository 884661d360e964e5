"""Months of data: backfill, incremental runs, concurrency, tenants, run history.

A backfill killed with SIGKILL after a committed day and then resumed (which days the resumed
run computes, and that its tables equal an uninterrupted run's) is tests/integration/test_faults.py's
`after-partials-commit` point, reached deterministically rather than by polling a child's commits.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from partner_hunt.commands import backfill, refresh, run
from partner_hunt.commands.steps.window import plan_window
from partner_hunt.config import config_from_mapping
from partner_hunt.core import sample
from partner_hunt.store import runlog
from partner_hunt.store.partials_table import PartialsMismatchError

pytestmark = pytest.mark.integration

D0 = date(2026, 2, 1)
DAYS = 6
END = datetime(2026, 2, 1 + DAYS, tzinfo=timezone.utc)
RESULT_COLS = [
    "TenantId", "SenderFromDomain", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats",
    "Bad_Traffic_Percentage", "WindowStart", "WindowEnd", "Mode",
]
PARTIAL_COLS = [
    "TenantId", "Day", "Variant", "Mode", "Domain", "OutboundTeamsMessages",
    "IncomingTeamsMessagesWithThreats", "FirstSeen", "LastSeen", "Source", "SourceVersion",
]


def day(n: int) -> date:
    return D0 + timedelta(days=n)


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    """A small two-tenant source over six days, generated once for the module."""
    root = tmp_path_factory.mktemp("lake")
    source = root / "message_events"
    sample.generate_events(spark, rows=4000, days=DAYS, seed=7, tenants=2, end=END).write.format("delta").save(str(source))
    return source


@pytest.fixture(scope="module")
def clean(spark, lake, tmp_path_factory):
    """An uninterrupted six-day backfill of `lake` (batches of three days), computed once: the
    reference the rerun, force and kill-and-resume tests compare with. Tests copy it, never change it."""
    out = tmp_path_factory.mktemp("clean") / "results"
    report = backfill.backfill(spark, make_config(lake, out), day(0), day(DAYS))
    return out, report


def copy_tables(out: Path, target: Path) -> Path:
    """Copy a results table and its state tables (path tables: their logs hold relative paths)."""
    for table in out.parent.glob(out.name + "*"):
        shutil.copytree(table, target.parent / (target.name + table.name[len(out.name):]))
    return target


def make_config(source, output, **hunt):
    # Evidence and alerts have tests of their own; here they would only add Delta commits.
    return config_from_mapping(
        {
            "source": str(source),
            "output": str(output),
            "hunt": {"top": 5, "backfill_batch_days": 3, **hunt},
            "spark": {"master": "local[2]"},
            "evidence": {"enabled": False},
            "alerts": {"enabled": False},
        }
    )


def read(spark, path, cols):
    return spark.read.format("delta").load(str(path)).select(*cols)


def direct(spark, source, output, start, end, **hunt):
    """What `run.run` of `[start, end)` computes for its results table, evaluated in memory.

    Its own plan (`window.plan_window`, as benchmarks/bench.py times it), without the commits of a
    run into another table."""
    config = make_config(source, output, start=start.isoformat(), end=end.isoformat(), **hunt)
    plan = plan_window(spark, config, runlog.new_report(config, "run"))
    return plan.results_df.select(*RESULT_COLS).localCheckpoint()


def test_backfill_equals_direct_run_and_rerun_is_idempotent(spark, lake, clean, tmp_path):
    out = copy_tables(clean[0], tmp_path / "results")
    config = make_config(lake, out)
    assert sorted(clean[1].days_computed) == [day(i) for i in range(DAYS)]
    expected = direct(spark, lake, tmp_path / "direct", day(0), day(DAYS))
    assert expected.count() > 0
    assert_df_equality(read(spark, out, RESULT_COLS), expected, ignore_row_order=True, ignore_nullable=True)

    partials_before = read(spark, str(out) + "_partials", PARTIAL_COLS + ["RunId"]).collect()
    again = backfill.backfill(spark, config, day(0), day(DAYS))
    assert again.days_computed == []
    after = read(spark, str(out) + "_partials", PARTIAL_COLS + ["RunId"])
    assert_df_equality(after, spark.createDataFrame(partials_before, after.schema), ignore_row_order=True)
    assert_df_equality(read(spark, out, RESULT_COLS), expected, ignore_row_order=True, ignore_nullable=True)

    forced = backfill.backfill(spark, config, day(1), day(3), force=True)
    assert sorted(forced.days_computed) == [day(1), day(2)]

    log = spark.read.format("delta").load(str(out) + "_run_log")
    assert log.filter("Command = 'backfill' AND Status = 'succeeded'").count() == 3
    assert {r.SourceVersion for r in log.collect()} == {0}


def test_trailing_windows_each_equal_a_direct_run(spark, lake, tmp_path):
    out = tmp_path / "results"
    backfill.backfill(spark, make_config(lake, out, backfill_trailing_days=3), day(3), day(5))
    windows = {(r.WindowStart.date(), r.WindowEnd.date()) for r in read(spark, out, RESULT_COLS).collect()}
    assert windows == {(day(1), day(4)), (day(2), day(5))}
    last = read(spark, out, RESULT_COLS).filter(F.col("WindowEnd") == F.lit(datetime(2026, 2, 6)))
    expected = direct(spark, lake, tmp_path / "direct", day(2), day(5))
    assert_df_equality(last, expected, ignore_row_order=True, ignore_nullable=True)


def test_incremental_recomputes_only_changed_days_including_late_data(spark, lake, tmp_path):
    source = tmp_path / "source"
    spark.read.format("delta").load(str(lake)).write.format("delta").save(str(source))
    out = tmp_path / "results"
    window_end = day(DAYS + 1)
    config = make_config(source, out, end=window_end.isoformat(), trailing_days=DAYS + 1)
    first = refresh.run_incremental(spark, config)
    assert sorted(first.days_computed) == [day(i) for i in range(DAYS + 1)]

    # One new day lands, plus late data for an old day.
    new_day = sample.generate_events(spark, rows=600, days=1, seed=8, tenants=2, end=datetime(2026, 2, 8, tzinfo=timezone.utc))
    late = sample.generate_events(spark, rows=300, days=1, seed=9, tenants=2, end=datetime(2026, 2, 3, tzinfo=timezone.utc))
    new_day.unionByName(late).write.format("delta").mode("append").save(str(source))

    second = refresh.run_incremental(spark, config)
    assert sorted(second.days_computed) == [day(1), day(DAYS)]
    total_rows = spark.read.format("delta").load(str(source)).count()
    assert second.rows_read < total_rows / 2
    expected = direct(spark, source, tmp_path / "direct", day(0), window_end)
    assert_df_equality(read(spark, out, RESULT_COLS), expected, ignore_row_order=True, ignore_nullable=True)

    third = refresh.run_incremental(spark, config)
    assert third.days_computed == []
    log = spark.read.format("delta").load(str(out) + "_run_log").filter("Command = 'run --incremental'")
    assert sorted(r.SourceVersion for r in log.collect()) == [0, 1, 1]


def test_concurrent_backfills_of_disjoint_days_both_succeed(spark, lake, tmp_path):
    out = tmp_path / "results"
    errors: list[BaseException] = []

    def job(start: date, end: date) -> None:
        try:
            backfill.backfill(spark, make_config(lake, out), start, end)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(day(0), day(3))), threading.Thread(target=job, args=(day(3), day(6)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    markers = spark.read.format("delta").load(str(out) + "_partials").filter("Domain IS NULL")
    assert sorted(r.Day for r in markers.collect()) == [day(i) for i in range(DAYS)]
    assert read(spark, out, ["WindowStart"]).distinct().count() == 2


def test_partials_refuse_to_mix_another_source(spark, lake, tmp_path):
    out = tmp_path / "results"
    backfill.backfill(spark, make_config(lake, out), day(0), day(1))
    other = tmp_path / "other"
    spark.read.format("delta").load(str(lake)).limit(10).write.format("delta").save(str(other))
    with pytest.raises(PartialsMismatchError, match="was computed from source"):
        backfill.backfill(spark, make_config(other, out), day(0), day(1))


def test_tenants_have_their_own_exclusions(spark, lake, tmp_path):
    out = tmp_path / "results"
    config = make_config(lake, out, start=day(0).isoformat(), end=day(DAYS).isoformat())
    everything = run.run(spark, config)
    rows = read(spark, out, RESULT_COLS).collect()
    assert {r.TenantId for r in rows} == {"tenant-00", "tenant-01"}
    assert any(r.SenderFromDomain == "contoso.com" for r in rows)
    scoped = replace(config, tenants=replace(config.tenants, exclude_domains={"tenant-00": ("contoso.com",)}))
    run.run(spark, scoped)
    rows = read(spark, out, RESULT_COLS).collect()
    owners = {r.TenantId for r in rows if r.SenderFromDomain == "contoso.com"}
    assert owners == {"tenant-01"}
    assert everything.result_rows == len(rows) + 1
