"""The nightly refresh on sources as Databricks creates and changes them.

Each test builds a Delta source with delta-spark itself (deletion vectors, column mapping by
name, the change data feed, v2 checkpoints, liquid clustering on a catalog table), changes it
the way real tables are changed, and checks after every change that the refreshed report equals
a full recompute of the window over the table as it now is, and which days were recomputed.

The recompute is `run.run`'s own plan (`window.plan_window`, as
benchmarks/bench.py times it) evaluated in memory: the same rows `run` would write, without its
commits, so each comparison costs a read of the source instead of a run into another table.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, DataFrameReader, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import DataStreamReader

from partner_hunt.commands import backfill, refresh
from partner_hunt.commands.steps.window import plan_window
from partner_hunt.config import config_from_mapping
from partner_hunt.core import sample
from partner_hunt.store import changes, runlog

pytestmark = pytest.mark.integration

D0 = date(2026, 2, 1)
DAYS = 5
WINDOW_END = D0 + timedelta(days=DAYS + 2)
WINDOW = [D0 + timedelta(days=i) for i in range(DAYS + 2)]
RESULT_COLS = [
    "TenantId", "SenderFromDomain", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats",
    "Bad_Traffic_Percentage", "WindowStart", "WindowEnd", "Mode",
]
PARTIAL_COLS = [
    "TenantId", "Day", "Variant", "Mode", "Domain", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats",
]


def day(n: int) -> date:
    return D0 + timedelta(days=n)


def at(n: int, hour: int = 0) -> datetime:
    return datetime(D0.year, D0.month, D0.day, hour, tzinfo=timezone.utc) + timedelta(days=n)


@pytest.fixture(scope="module")
def events(spark):
    """Five days of a small two-tenant source, generated once; each test copies it."""
    rows = sample.generate_events(spark, rows=400, days=DAYS, seed=11, tenants=2, end=at(DAYS))
    # Threats on every day, so that a DELETE, an UPDATE or a MERGE moves the results.
    return rows.withColumn(
        "ThreatTypes", F.when(F.col("ReportId").endswith("7"), F.lit("Phish")).otherwise(F.col("ThreatTypes"))
    ).localCheckpoint()


def new_rows(spark, n: int, rows: int = 60, seed: int = 21) -> DataFrame:
    """`rows` events on day `n` (a new day, or late data for an old one)."""
    generated = sample.generate_events(spark, rows=rows, days=1, seed=seed + n, tenants=2, end=at(n + 1))
    # The generator numbers ReportId from 0: prefixed, so that a MERGE on it matches one row.
    return generated.withColumn("ReportId", F.concat(F.lit(f"new-{n}-{seed}-{rows}-"), F.col("ReportId")))


def config(source, output, start: date | None = None):
    # Evidence and alerts have tests of their own; here they would only add Delta commits.
    return config_from_mapping(
        {
            "source": str(source),
            "output": str(output),
            "hunt": {
                "top": 0,
                "end": WINDOW_END.isoformat(),
                "trailing_days": len(WINDOW),
                **({"start": start.isoformat()} if start else {}),
            },
            "spark": {"master": "local[2]"},
            "evidence": {"enabled": False},
            "alerts": {"enabled": False},
        }
    )


def results(spark, output) -> DataFrame:
    return spark.read.format("delta").load(str(output)).select(*RESULT_COLS)


def recompute(spark, source) -> DataFrame:
    """The window's results as `run.run` computes them from the source as it now is, unwritten."""
    cfg = config_with_window(source, "unwritten")
    return plan_window(spark, cfg, runlog.new_report(cfg, "run")).results_df.select(*RESULT_COLS)


def assert_equals_recompute(spark, output, source) -> None:
    expected = recompute(spark, source).localCheckpoint()
    assert expected.count() > 0
    assert_df_equality(results(spark, output), expected, ignore_row_order=True, ignore_nullable=True)


class Refresher:
    """One source and its refreshed output, compared with a recompute of the window each time."""

    def __init__(self, spark: SparkSession, source: str, root: Path):
        self.spark, self.source = spark, source
        self.out = root / "results"

    def refresh(self, expect_days: list[date], kind: str = changes.INCREMENTAL, compare: bool = True):
        """Refresh, check the recomputed days and kind, and compare with a full recompute."""
        report = refresh.run_incremental(self.spark, config(self.source, self.out))
        assert report.refresh_kind == kind, report.refresh_reason
        assert sorted(report.days_computed) == expect_days, report.refresh_reason
        if not compare:
            return report
        assert_equals_recompute(self.spark, self.out, self.source)
        return report

    def sql(self, text: str) -> None:
        self.spark.sql(text.replace("SRC", ident(self.source)))


def config_with_window(source, output):
    """The same window for `run`, which takes explicit bounds."""
    return config(source, output, start=D0)


def ident(source: str) -> str:
    return f"delta.`{source}`" if "/" in source else source


def run_log(spark, out) -> DataFrame:
    return spark.read.format("delta").load(str(out) + "_run_log").filter("Command = 'run --incremental'")


def create(spark, events_df, source: str, properties: dict[str, str]) -> None:
    """The source as `CREATE TABLE ... TBLPROPERTIES (...) AS SELECT` makes it."""
    view = f"src_{abs(hash(source))}"
    events_df.createOrReplaceTempView(view)
    props = ", ".join(f"'{k}' = '{v}'" for k, v in properties.items())
    spark.sql(f"CREATE TABLE {ident(source)} USING delta TBLPROPERTIES ({props}) AS SELECT * FROM {view}")
    spark.catalog.dropTempView(view)


def test_change_feed_source_recomputes_exactly_the_touched_days(spark, events, tmp_path):
    """Deletion vectors, column mapping by name, v2 checkpoints and the change data feed."""
    source = str(tmp_path / "events")
    create(
        spark,
        events,
        source,
        {
            "delta.enableDeletionVectors": "true",
            "delta.columnMapping.mode": "name",
            "delta.minReaderVersion": "2",
            "delta.minWriterVersion": "5",
            "delta.checkpointPolicy": "v2",
            "delta.checkpointInterval": "3",
        },
    )
    r = Refresher(spark, source, tmp_path)
    # delta-spark 4.0.1 refuses column mapping and the change feed in one CTAS: enabled after.
    r.sql("ALTER TABLE SRC SET TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')")
    first = r.refresh(WINDOW, kind=changes.FULL, compare=False)
    assert first.refresh_reason == changes.FIRST_REFRESH

    # A new day lands, and late rows for an old one.
    new_rows(spark, DAYS).write.format("delta").mode("append").save(source)
    new_rows(spark, 1).write.format("delta").mode("append").save(source)
    assert r.refresh([day(1), day(DAYS)]).refresh_reason.startswith("change data feed of versions ")

    # A GDPR erasure: one sender's messages, which fall on several days.
    utc_day = F.date_from_unix_date((F.unix_seconds("Timestamp") / 86_400).cast("int"))
    senders = (
        spark.read.format("delta").load(source).groupBy("SenderEmailAddress")
        .agg(F.sort_array(F.collect_set(utc_day)).alias("Days"))
        .filter(F.size("Days").between(2, 3)).orderBy("SenderEmailAddress")
    )
    sender, erased = senders.first()
    r.sql(f"DELETE FROM SRC WHERE SenderEmailAddress = '{sender}'")
    r.refresh(erased)

    # An UPDATE of day 2's first hours, and a MERGE updating rows of day 3 and inserting rows for day 4.
    r.sql(f"UPDATE SRC SET ThreatTypes = 'Malware' WHERE Timestamp >= '{at(2).isoformat()}' AND Timestamp < '{at(2, 6).isoformat()}'")
    new_rows(spark, 4, rows=20).unionByName(
        spark.read.format("delta").load(source).filter(F.col("Timestamp").between(at(3), at(3, 4)))
        .withColumn("ThreatTypes", F.lit("Spam"))
    ).createOrReplaceTempView("merge_src")
    r.sql("MERGE INTO SRC t USING merge_src s ON t.ReportId = s.ReportId "
          "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *")
    r.refresh([day(2), day(3), day(4)])

    # Maintenance rewrites files and purges deletion vectors, but changes no row.
    r.sql("OPTIMIZE SRC")
    r.sql("REORG TABLE SRC APPLY (PURGE)")
    with no_retention_check(spark):
        r.sql("VACUUM SRC RETAIN 0 HOURS")
    r.refresh([])
    assert {row.RefreshKind for row in run_log(spark, r.out).collect()} == {"full", "incremental"}


def test_append_only_source_stays_incremental_until_rows_change(spark, events, tmp_path, caplog):
    """No change feed: appends and maintenance are read from the history; a DELETE recomputes the window, loudly."""
    source = str(tmp_path / "events")
    create(spark, events, source, {"delta.enableDeletionVectors": "true", "delta.checkpointPolicy": "v2"})
    r = Refresher(spark, source, tmp_path)
    r.refresh(WINDOW, kind=changes.FULL, compare=False)

    # Appends (a new day, late rows), an insert-only MERGE, then compaction.
    new_rows(spark, DAYS).unionByName(new_rows(spark, 0, rows=10)).write.format("delta").mode("append").save(source)
    new_rows(spark, 2, rows=10).createOrReplaceTempView("insert_src")
    r.sql("MERGE INTO SRC t USING insert_src s ON t.ReportId = s.ReportId WHEN NOT MATCHED THEN INSERT *")
    r.sql("OPTIMIZE SRC")
    appended = r.refresh([day(0), day(2), day(DAYS)])
    assert "only appended rows" in appended.refresh_reason
    # VACUUM after the refresh read the appends (a VACUUM of them before it would leave nothing
    # to read: see docs/refresh.md).
    with no_retention_check(spark):
        r.sql("VACUUM SRC RETAIN 0 HOURS")
    r.refresh([], compare=False)

    r.sql(f"DELETE FROM SRC WHERE Timestamp >= '{at(1).isoformat()}' AND Timestamp < '{at(1, 3).isoformat()}'")
    with caplog.at_level(logging.WARNING, logger="partner_hunt"):
        full = r.refresh(WINDOW, kind=changes.FULL)
    version = spark.sql(f"DESCRIBE HISTORY {ident(source)} LIMIT 1").first().version
    hint = f"`ALTER TABLE {ident(source)} SET TBLPROPERTIES (delta.enableChangeDataFeed = true)` makes tomorrow's refresh incremental"
    assert full.refresh_reason == (
        f"DELETE at version {version} changed existing rows and the source has no change data feed; {hint}"
    )
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert warnings == [f"run --incremental recomputes the whole window {D0}..{WINDOW_END}: {full.refresh_reason}"]
    logged = run_log(spark, r.out).orderBy(F.col("StartedAt").desc()).first()
    assert (logged.RefreshKind, logged.RefreshReason) == ("full", full.refresh_reason)

    # The feed turned on after an UPDATE does not cover it: still the whole window, saying why.
    r.sql(f"UPDATE SRC SET ThreatTypes = 'Phish' WHERE Timestamp < '{at(0, 5).isoformat()}'")
    r.sql("ALTER TABLE SRC SET TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')")
    covered = r.refresh(WINDOW, kind=changes.FULL, compare=False)
    assert covered.refresh_reason.startswith(f"UPDATE at version {version + 1} changed existing rows and the change data feed of versions {version + 1}..{version + 2} cannot be read")

    # From then on, changes are read from the feed.
    r.sql(f"UPDATE SRC SET ThreatTypes = '' WHERE Timestamp >= '{at(4).isoformat()}' AND Timestamp < '{at(4, 8).isoformat()}'")
    r.refresh([day(4)])


def test_log_cleaned_up_after_checkpoints_recomputes_the_window(spark, events, tmp_path):
    """The commits since the last run are gone from the log: nothing can say which days changed."""
    source = str(tmp_path / "events")
    create(spark, events, source, {"delta.checkpointInterval": "1", "delta.logRetentionDuration": "interval 1 hours"})
    r = Refresher(spark, source, tmp_path)
    r.refresh(WINDOW, kind=changes.FULL, compare=False)
    new_rows(spark, DAYS).write.format("delta").mode("append").save(source)
    new_rows(spark, 1).write.format("delta").mode("append").save(source)
    # Delta deletes only log files older than the retention, counted in whole days: age them.
    log_dir = Path(source) / "_delta_log"
    old = time.time() - 3 * 86_400
    for f in log_dir.rglob("*"):
        if f.is_file():
            os.utime(f, (old, old))
    # The next commit writes a checkpoint (interval 1) and cleans up the expired log behind it.
    new_rows(spark, 3, rows=10).write.format("delta").mode("append").save(source)
    assert not (log_dir / f"{1:020d}.json").exists()
    report = r.refresh(WINDOW, kind=changes.FULL)
    assert report.refresh_reason.startswith("the source's history of version 1 is gone")


def test_catalog_table_refreshes_by_name_with_path_reads_failing(spark, events, tmp_path, monkeypatch):
    """A catalog table with liquid clustering: the refresh never reads the table's storage by path."""
    name = "default.src_refresh_catalog"
    spark.sql(f"DROP TABLE IF EXISTS {name}")
    events.createOrReplaceTempView("catalog_src")
    # Liquid clustering: delta-spark 4.0.1 accepts CLUSTER BY on a catalog table (not on a path).
    spark.sql(
        f"CREATE TABLE {name} USING delta CLUSTER BY (TenantId) "
        "TBLPROPERTIES ('delta.enableDeletionVectors' = 'true') AS SELECT * FROM catalog_src"
    )
    try:
        location = spark.sql(f"DESCRIBE DETAIL {name}").first().location
        out = tmp_path / "results"
        backfill.backfill(spark, config(name, out), WINDOW[0], WINDOW_END)
        new_rows(spark, DAYS).write.format("delta").mode("append").saveAsTable(name)
        spark.sql(f"OPTIMIZE {name}")
        forbid_path_reads(monkeypatch, location)
        # The guard itself: the old change detection read `<location>/_delta_log/NNN.json` like this.
        with pytest.raises(PermissionError):
            spark.read.json(f"{location}/_delta_log/{0:020d}.json")
        report = refresh.run_incremental(spark, config(name, out))
        assert (report.refresh_kind, sorted(report.days_computed)) == ("incremental", [day(DAYS)]), report.refresh_reason
        monkeypatch.undo()
        assert_equals_recompute(spark, out, name)
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {name}")


def forbid_path_reads(monkeypatch, location: str) -> None:
    """Make every read of `location` by path fail, as Unity Catalog does for managed tables."""
    bare = location.removeprefix("file:").lstrip("/")

    def check(*args):
        for arg in args:
            for text in arg if isinstance(arg, (list, tuple)) else [arg]:
                if isinstance(text, str) and bare in text:
                    raise PermissionError(f"path access to a catalog table's storage: {text}")

    def guard(cls, method):
        original = getattr(cls, method)

        def guarded(self, *args, **kwargs):
            check(*args, *kwargs.values())
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, method, guarded)

    for method in ("load", "parquet", "json", "text", "csv", "orc"):
        guard(DataFrameReader, method)
    for method in ("load", "parquet", "json", "text"):
        guard(DataStreamReader, method)
    guard(SparkSession, "sql")


class no_retention_check:
    """VACUUM RETAIN 0 HOURS is refused unless Delta's retention check is off: off here, then restored."""

    KEY = "spark.databricks.delta.retentionDurationCheck.enabled"

    def __init__(self, spark):
        self.spark = spark

    def __enter__(self):
        self.previous = self.spark.conf.get(self.KEY, None)
        self.spark.conf.set(self.KEY, "false")

    def __exit__(self, *exc):
        if self.previous is None:
            self.spark.conf.unset(self.KEY)
        else:
            self.spark.conf.set(self.KEY, self.previous)
