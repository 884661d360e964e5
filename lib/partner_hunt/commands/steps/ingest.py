"""Defender's exports, as they land, into the flat MessageEvents table: the step of `ingest`, and
of `demo --as-export`.

Lossless and exactly once, whatever is killed when: each blob's consumed bytes end at a line end
(a line still being written is read once it is complete); a record delivered twice (a re-read, a
retry, at-least-once delivery) is kept once, by (TenantId, ReportId or a hash of the record); the
table only ever gains rows (an insert-only MERGE), so `run --incremental` sees appends. The writes
go quarantine, table, then consumed offsets: a rerun after a kill reads the same lines again and
each write adds only what is not there yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from partner_hunt.config import Config
from partner_hunt.core import caching, landed, layout, privacy, signals
from partner_hunt.core.tables import INGEST_COUNTS, INGEST_QUARANTINE_DDL, columns
from partner_hunt.store import checks, faults, io, landing, merge, runlog
from partner_hunt.store.errors import first_line
from partner_hunt.store.locations import Locations, TableRef, folder_location, resolve, signal_tables
from partner_hunt.store.runlog import RunReport

log = logging.getLogger("partner_hunt")

ROUTES = ("defender-storage", "log-analytics-export")
# A table ingest creates: `run --incremental` reads its changes, and its data skipping statistics
# are kept for the columns the commands filter on (on every column, they cost a fifth of the write).
TABLE_PROPERTIES = {"delta.enableChangeDataFeed": "true", "delta.dataSkippingStatsColumns": "TenantId,Timestamp,LastEditedTime,IngestedAt"}
# A signal table ingest creates: the same, over the columns it has.
SIGNAL_TABLE_PROPERTIES = {"delta.enableChangeDataFeed": "true", "delta.dataSkippingStatsColumns": "TenantId,Timestamp,IngestedAt"}
# How often the batch's typed lines are computed when an executor holding them is lost.
_ATTEMPTS = 2
# Up to this many records delivered twice in one batch, their keys are sent to every task.
_FEW_REPEATED = 100_000
# The envelope's own times, kept as columns of the flat table under their own names.
ENVELOPE_TIMES = {"defender-storage": ("time", "_TimeReceivedBySvc"), "log-analytics-export": ("TimeGenerated",)}
# What else of the envelope is kept: the export's item id, and the workspace a record came from.
ENVELOPE_TEXT = {"defender-storage": (), "log-analytics-export": ("WorkspaceId", "_ItemId")}


@dataclass(frozen=True)
class IngestPlaces:
    """The tables an ingest writes: the flat table, its quarantine, and what it consumed."""

    into: TableRef
    quarantine: TableRef
    files: TableRef
    # Defender's Teams signal tables, by `signals.SignalTable.key`: their records go there.
    signals: dict[str, TableRef]

    @classmethod
    def of(cls, config: Config, into: str | None) -> IngestPlaces:
        """`--into` (default: the config's `source`), the others from `ingest.*` or beside it."""
        ref = TableRef.parse(into or config.source)
        settings = config.ingest
        return cls(
            ref,
            resolve(settings.quarantine, ref.sibling("ingest_quarantine")),
            resolve(settings.files, ref.sibling("ingest_files")),
            signal_tables(config, ref),
        )


def ingest_folder(
    spark: SparkSession,
    config: Config,
    route: str,
    input_folder: str,
    into: str | None = None,
    say: Callable[[str], None] | None = None,
) -> RunReport:
    """Read what is new in the export folder `input_folder` and add its MessageEvents to the table."""
    if route not in ROUTES:
        raise ValueError(f"--from {route!r} is not one of {', '.join(ROUTES)}")
    places = IngestPlaces.of(config, into)
    folder = folder_location(input_folder)
    # The run log sits where the other commands keep theirs; its Source is the table written.
    logged = replace(config, source=places.into.location)
    writes = {
        "--into": places.into,
        "ingest.quarantine": places.quarantine,
        "ingest.files": places.files,
        **{f"signals.{key}": ref for key, ref in places.signals.items()},
    }
    checks.check_ingest(spark, Locations.from_config(logged).run_log, folder, writes)
    with runlog.tracked(spark, logged, f"ingest --from {route}") as report:
        report.ingest_input = folder
        _ingest(spark, config, report, route, folder, places, say or (lambda _message: None))
    return report


def _ingest(
    spark: SparkSession, config: Config, report: RunReport, route: str, folder: str, places: IngestPlaces, say: Callable[[str], None]
) -> None:
    pattern = "*.json"
    blobs = landing.grown_blobs(landing.list_blobs(spark, folder, pattern), landing.read_consumed(spark, places.files))
    say(f"ingest: {len(blobs):,} blob(s) with new bytes in {folder}")
    batch = landing.read_new_lines(spark, folder, pattern, blobs)
    # Every line parsed and typed once: the counts, the quarantine and the table read this. A
    # line's text is kept only where the quarantine needs it.
    typed_df = (
        parse(batch.lines_df, route, config.ingest.workspace_tenants)
        .transform(landed.to_message_events, ENVELOPE_TIMES[route], ENVELOPE_TEXT[route])
        .withColumn("Line", F.when(F.col("QuarantineReason").isNotNull(), F.col("Line")))
    )
    for attempt in range(1, _ATTEMPTS + 1):
        events_df = caching.kept_on_disk(typed_df)
        try:
            counts, good, progress_df = _count(spark, events_df, batch.ends_df)
            report.ingest_counts = counts
            report.rows_read = counts["Records"]
            report.rows_quarantined = counts["Quarantined"]
            say(f"ingest: {counts['Records']:,} record(s) in {counts['BytesRead']:,} new bytes; writing")
            _write(spark, config, report, places, events_df, counts, good)
            break
        except Exception as exc:
            # The typed lines live with the executors that computed them. Losing one (a spot
            # instance, a scale-down) loses them, and every write above is idempotent, so the lines
            # are typed again and the ingest goes on, as a rerun after a kill would.
            if attempt == _ATTEMPTS or not caching.lost(exc):
                raise
            log.warning("ingest: an executor holding the typed lines was lost; typing them again (%s)", first_line(exc))
        finally:
            caching.release(events_df)
    faults.point("after-ingest-commit")
    landing.record_consumed(progress_df, places.files, report.run_id)


def parse(lines_df: DataFrame, route: str, workspace_tenants: Mapping[str, str]) -> DataFrame:
    """The lines parsed as their route writes them (`landed.PARSED_COLUMNS`)."""
    if route == "log-analytics-export":
        return landed.parse_log_analytics_lines(lines_df, workspace_tenants)
    return landed.parse_storage_lines(lines_df)


@dataclass(frozen=True)
class Good:
    """The batch's records that are not quarantined: how many, and their time span."""

    records: int
    first: datetime | None
    last: datetime | None
    # The signal tables' records of the batch, by category, and their time span.
    signal_records: dict[str, int]
    signal_first: datetime | None
    signal_last: datetime | None


def _count(spark: SparkSession, events_df: DataFrame, ends_df: DataFrame) -> tuple[dict[str, int], Good, DataFrame]:
    """The run log's counts and how far the ingest got in each blob, from one job over the typed
    lines (one row a line) and one over the blobs' ends."""
    bad = F.col("QuarantineReason").isNotNull()
    is_good = F.col("IsMessageEvent") & ~bad
    is_signal = F.col("IsSignal") & ~bad
    # Bounded: one row per blob read.
    per_blob = events_df.groupBy("File").agg(
        F.count(F.lit(1)).alias("Lines"),
        F.count_if(~bad & ~F.col("IsMessageEvent") & ~F.col("IsSignal")).alias("OtherCategories"),
        F.count_if(bad).alias("Quarantined"),
        F.count_if(is_good).alias("Good"),
        F.min(F.when(is_good, F.col("Timestamp"))).alias("First"),
        F.max(F.when(is_good, F.col("Timestamp"))).alias("Last"),
        *[F.count_if(is_signal & (F.col("Category") == F.lit(t.category))).alias(t.key) for t in signals.SIGNAL_TABLES],
        F.min(F.when(is_signal, F.col("Timestamp"))).alias("SignalFirst"),
        F.max(F.when(is_signal, F.col("Timestamp"))).alias("SignalLast"),
    ).collect()
    line_counts_df = spark.createDataFrame([(r["File"], r["Lines"]) for r in per_blob], "File string, Lines long")
    # Bounded: one row per blob. Kept on the driver, so the blobs are not read again after the commit.
    progress = landing.progress(ends_df, line_counts_df).collect()
    events = {name: sum(int(r[name]) for r in per_blob) for name in ("Lines", "OtherCategories", "Quarantined", "Good")}
    firsts = [r["First"] for r in per_blob if r["First"] is not None]
    lasts = [r["Last"] for r in per_blob if r["Last"] is not None]
    counts = dict.fromkeys(INGEST_COUNTS, 0)
    counts.update(
        FilesRead=len(progress),
        BytesRead=sum(int(r["BytesRead"]) for r in progress),
        Records=events["Lines"],
        OtherCategories=events["OtherCategories"],
        Quarantined=events["Quarantined"],
        IncompleteLinesHeldBack=sum(int(r["HeldBack"]) for r in progress),
    )
    per_table = {t.key: sum(int(r[t.key]) for r in per_blob) for t in signals.SIGNAL_TABLES}
    counts["SignalRecords"] = sum(per_table.values())
    signal_firsts = [r["SignalFirst"] for r in per_blob if r["SignalFirst"] is not None]
    signal_lasts = [r["SignalLast"] for r in per_blob if r["SignalLast"] is not None]
    good = Good(
        events["Good"],
        min(firsts, default=None),
        max(lasts, default=None),
        per_table,
        min(signal_firsts, default=None),
        max(signal_lasts, default=None),
    )
    return counts, good, spark.createDataFrame(progress, landing.PROGRESS_DDL)


def _write(
    spark: SparkSession, config: Config, report: RunReport, places: IngestPlaces, events_df: DataFrame, counts: dict[str, int], good: Good
) -> None:
    """Quarantine first, then the table: a line is never lost between them, and each is idempotent."""
    bad_df = events_df.filter(F.col("QuarantineReason").isNotNull())
    if counts["Quarantined"]:
        record = privacy.source_record(F.col("Line"), config.quality.quarantine_record)
        quarantine_df = bad_df.select(
            "File",
            "LineNumber",
            F.col("QuarantineReason").alias("Reason"),
            "Category",
            "TenantId",
            record.alias("Record"),
            F.lit(report.run_id).alias("RunId"),
            F.lit(report.started_at).cast("timestamp").alias("QuarantinedAt"),
        ).select(*columns(INGEST_QUARANTINE_DDL))
        merge.insert_new(quarantine_df, places.quarantine, ["File", "LineNumber"])
    faults.point("after-ingest-quarantine")
    if good.records:
        rows_df = events_df.filter(F.col("IsMessageEvent") & F.col("QuarantineReason").isNull()).drop(
            "QuarantineReason", "Line", "Category", "IsMessageEvent"
        )
        repeated_df = landed.repeated_keys(rows_df)
        # Most batches hold no record twice: the count spares them the dedupe's joins.
        repeated = repeated_df.count()
        if repeated:
            rows_df = landed.first_delivery(rows_df, repeated_df, few=repeated <= _FEW_REPEATED)
        rows_df = (
            # Where each record came from and which ingest wrote it, beside the record.
            rows_df.withColumnsRenamed({"File": "IngestFile", "LineNumber": "IngestLineNumber"})
            .withColumns({"IngestRunId": F.lit(report.run_id), "IngestedAt": F.lit(report.started_at).cast("timestamp")})
        )
        before = io.table_version(spark, places.into) if io.table_exists(spark, places.into) else None
        if before is None and good.first is not None and good.last is not None:
            # A table's first, usually largest, batch laid out one day a file: later batches'
            # MERGEs then compare only the files of their own days.
            rows_df = layout.by_day(rows_df, (good.last - good.first).days + 1)
        merge.insert_new(
            rows_df,
            places.into,
            ["TenantId", "IngestKey"],
            within=("Timestamp", good.first, good.last),
            properties=TABLE_PROPERTIES,
        )
        counts["RecordsIngested"] = inserted = _inserted(spark, places.into, before)
        counts["DuplicatesSkipped"] = good.records - inserted
    for table in signals.SIGNAL_TABLES:
        if good.signal_records[table.key]:
            inserted = _write_signal(spark, report, places.signals[table.key], events_df, table, good)
            counts["SignalRecordsIngested"] += inserted
            counts["DuplicatesSkipped"] += good.signal_records[table.key] - inserted
    report.ingest_counts = counts
    report.result_rows = counts["RecordsIngested"]


def _write_signal(
    spark: SparkSession, report: RunReport, ref: TableRef, events_df: DataFrame, table: signals.SignalTable, good: Good
) -> int:
    """Add the batch's records of one signal table to its flat table, each once; the rows added."""
    rows_df = events_df.transform(signals.to_signal_rows, table)
    repeated_df = landed.repeated_keys(rows_df)
    repeated = repeated_df.count()
    if repeated:
        rows_df = landed.first_delivery(rows_df, repeated_df, few=repeated <= _FEW_REPEATED)
    rows_df = rows_df.withColumnsRenamed({"File": "IngestFile", "LineNumber": "IngestLineNumber"}).withColumns(
        {"IngestRunId": F.lit(report.run_id), "IngestedAt": F.lit(report.started_at).cast("timestamp")}
    )
    before = io.table_version(spark, ref) if io.table_exists(spark, ref) else None
    merge.insert_new(
        rows_df, ref, ["TenantId", "IngestKey"], within=("Timestamp", good.signal_first, good.signal_last), properties=SIGNAL_TABLE_PROPERTIES
    )
    return _inserted(spark, ref, before)


def _inserted(spark: SparkSession, ref: TableRef, before: int | None) -> int:
    """Rows the ingest's commit added: from that commit's metrics (a MERGE that inserts nothing
    makes no commit at all), never by counting the table."""
    if before is not None and io.table_version(spark, ref) == before:
        return 0
    metrics = io.last_commit_metrics(spark, ref)
    return int(metrics.get("numTargetRowsInserted") or metrics.get("numOutputRows") or 0)
