"""Every run leaves a consistent state: reruns of plain table names, results as the
last commit, truthful ceiling failures, conservation of rows, racing creators, leftover folders."""

from __future__ import annotations

import threading
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from partner_hunt.cli import run_cli
from partner_hunt.commands import backfill, refresh, run
from partner_hunt.commands.steps import outputs
from partner_hunt.commands.steps.accounting import BadInputError
from partner_hunt.config import config_from_mapping
from partner_hunt.core import sample
from partner_hunt.core.tables import ALERTS_DDL
from partner_hunt.store import io, merge
from partner_hunt.store.locations import TableRef

pytestmark = pytest.mark.integration

D0 = date(2026, 3, 1)
T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    source = tmp_path_factory.mktemp("state_lake") / "events"
    sample.generate_events(spark, rows=200, days=2, seed=5, tenants=1, end=T0 + timedelta(days=2)).write.format("delta").save(str(source))
    return source


def cfg(source, output, **extra):
    return config_from_mapping(
        {"source": str(source), "output": str(output), "hunt": {"start": "2026-03-01", "end": "2026-03-03", "top": 0}, **extra}
    )


def test_plain_table_names_work_on_a_rerun_in_a_new_process(spark, lake, capsys):
    name = f"results_{uuid.uuid4().hex[:8]}"
    warehouse = spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:")
    # What an earlier process left: Delta folders in the warehouse that this catalog does not know.
    spark.createDataFrame([], ALERTS_DDL).write.format("delta").save(f"{warehouse}/{name}_alerts")
    argv = ["run", "--source", str(lake), "--output", name, "--start", "2026-03-01", "--end", "2026-03-03"]
    assert run_cli([*argv, "--master", "local[1]"]) == 0, capsys.readouterr().err
    assert spark.catalog.tableExists(f"{name}_alerts")
    assert run_cli([*argv, "--master", "local[1]"]) == 0, capsys.readouterr().err
    assert spark.table(f"{name}_run_log").filter("Status = 'succeeded'").count() == 2


def test_a_failure_before_the_results_commit_leaves_them_and_logs_the_counts(spark, lake, tmp_path, monkeypatch):
    out = tmp_path / "out"

    def broken(*_args, **_kwargs):
        raise RuntimeError("alerts table unavailable")

    monkeypatch.setattr(outputs, "write_outputs", broken)
    with pytest.raises(RuntimeError, match="alerts table unavailable"):
        run.run(spark, cfg(lake, out))
    assert not io.table_exists(spark, TableRef(str(out), True)), "the results were committed before the outputs"
    log = spark.read.format("delta").load(f"{out}_run_log").collect()
    assert [(r.Status, r.RowsRead > 0, r.RowsRead == r.RowsUsed + r.RowsQuarantined) for r in log] == [("failed", True, True)]


def test_a_backfill_stopped_by_the_ceiling_names_the_days_it_committed(spark, tmp_path):
    source = tmp_path / "events"
    events_df = sample.generate_events(spark, rows=200, days=2, seed=5, tenants=2, end=T0 + timedelta(days=2))
    day2 = F.to_date(F.col("Timestamp")) == F.lit(D0 + timedelta(days=1))
    # A third of day 2's rows lose their tenant (MISSING_TENANT_ID); day 1 is clean.
    bad = day2 & (F.abs(F.hash("TeamsMessageId")) % 3 == 0)
    events_df.withColumn("TenantId", F.when(bad, F.lit("")).otherwise(F.col("TenantId"))).write.format("delta").save(str(source))
    out = tmp_path / "out"
    config = config_from_mapping(
        {"source": str(source), "output": str(out), "hunt": {"top": 0, "backfill_batch_days": 1}, "quality": {"max_bad_fraction": 0.1}}
    )
    with pytest.raises(BadInputError) as caught:
        backfill.backfill(spark, config, D0, D0 + timedelta(days=2))
    assert "the partials of 2026-03-01 were already committed by this run" in str(caught.value)
    assert "a rerun resumes after them" in str(caught.value)
    row = spark.read.format("delta").load(f"{out}_run_log").collect()[0]
    assert row.Status == "failed" and row.RowsQuarantined > 0 and row.QuarantineByReason.get("MISSING_TENANT_ID", 0) > 0
    assert row.RowsRead == 200


def test_racing_first_writers_both_succeed(spark, tmp_path):
    target = TableRef(str(tmp_path / "t_alerts"), True)
    log = TableRef(str(tmp_path / "t_run_log"), True)
    errors = []

    def write(i):
        try:
            df = spark.createDataFrame([(f"a{i}", i)], "AlertId string, N int")
            merge.upsert(df, target, "AlertId")
            io.append(df, log)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.AlertId for r in io.read_table(spark, target).collect()) == ["a0", "a1"]
    assert io.read_table(spark, log).count() == 2


def test_a_killed_first_write_does_not_block_later_runs(spark, lake, tmp_path):
    out = tmp_path / "out"
    alerts = tmp_path / "out_alerts"
    spark.range(3).write.parquet(str(alerts))
    for marker in ("_SUCCESS", "._SUCCESS.crc"):  # Delta never writes these; Spark's Parquet writer does
        (alerts / marker).unlink()
    (alerts / "_delta_log").mkdir()
    report = run.run(spark, cfg(lake, out, alerts={"min_inbound_threats": 1}))
    assert report.status == "succeeded"
    assert io.table_exists(spark, TableRef(str(alerts), True))
    assert "id" not in io.read_table(spark, TableRef(str(alerts), True)).columns


# Conservation: messy rows, each either counted as used or quarantined with a reason, once.
record = st.fixed_dictionaries(
    {
        "hour": st.one_of(st.integers(min_value=0, max_value=47), st.none(), st.just("junk")),
        "tenant": st.sampled_from(["t1", "t2", ""]),
        "external": st.sampled_from([0, 1]),
        "recipients": st.sampled_from(['[{"RecipientSmtpAddress": "a@partner.com"}]', "not json", None]),
        "threats": st.sampled_from(["", "Phish"]),
    }
)
GOOD = '[{"RecipientSmtpAddress": "a@partner.com"}]'
# Every kind of row at least once (each example costs three commands' Delta commits, so there is
# one example): a good row on each day, no time, an unreadable time, no tenant, unreadable recipients.
EVERY_KIND = [
    {"hour": 3, "tenant": "t1", "external": 1, "recipients": GOOD, "threats": "Phish"},
    {"hour": 30, "tenant": "t2", "external": 1, "recipients": GOOD, "threats": ""},
    {"hour": None, "tenant": "t1", "external": 1, "recipients": GOOD, "threats": ""},
    {"hour": "junk", "tenant": "t1", "external": 1, "recipients": GOOD, "threats": ""},
    {"hour": 5, "tenant": "", "external": 1, "recipients": GOOD, "threats": ""},
    {"hour": 40, "tenant": "t1", "external": 1, "recipients": "not json", "threats": "Phish"},
    {"hour": 7, "tenant": "t2", "external": 0, "recipients": None, "threats": ""},
]
records = st.lists(record, min_size=0, max_size=8).map(lambda extra: EVERY_KIND + extra)


@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=records)
def test_every_row_read_is_used_or_quarantined_once(spark, tmp_path_factory, rows):
    root = tmp_path_factory.mktemp("conservation")
    source = root / "events"
    data = [
        (
            str(i),
            None if r["hour"] is None else r["hour"] if isinstance(r["hour"], str) else (T0 + timedelta(hours=r["hour"])).isoformat(),
            r["tenant"],
            r["external"],
            1,
            r["recipients"],
            r["threats"],
            "s@partner.com",
        )
        for i, r in enumerate(rows)
    ]
    schema = (
        "TeamsMessageId string, Timestamp string, TenantId string, IsExternalThread int, IsOwnedThread int, "
        "RecipientDetails string, ThreatTypes string, SenderEmailAddress string"
    )
    spark.createDataFrame(data, schema).write.format("delta").save(str(source))
    for command in ("run", "backfill", "incremental"):
        out = root / command
        config = config_from_mapping(
            {
                "source": str(source), "output": str(out), "hunt": {"start": "2026-03-01", "end": "2026-03-03", "top": 0},
                "quality": {"max_bad_fraction": 1.0}, "alerts": {"enabled": False}, "evidence": {"enabled": False},
            }
        )
        if command == "run":
            report = run.run(spark, config)
        elif command == "backfill":
            report = backfill.backfill(spark, config, D0, D0 + timedelta(days=2))
        else:
            report = refresh.run_incremental(spark, config)
        # Every row falls in the two days or has no readable time: all are read, once.
        assert report.rows_read == len(rows), command
        assert report.rows_used + report.rows_quarantined == report.rows_read
        # At least the row with no time and the one with an unreadable time (every day's, once).
        assert report.rows_quarantined >= 2, command
        quarantine = TableRef(f"{out}_quarantine", True)
        held = io.read_table(spark, quarantine).filter(F.col("RunId") == report.run_id) if io.table_exists(spark, quarantine) else None
        assert (held.count() if held is not None else 0) == report.rows_quarantined, command
        if held is not None:
            assert held.filter(F.col("Reason").isNull()).count() == 0
