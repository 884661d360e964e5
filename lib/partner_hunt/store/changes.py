"""Which UTC days of the source changed between two Delta versions, asked of Delta by name or path.

Nothing here lists or opens files under the table's storage: on Unity Catalog managed tables
path access is refused, so every question goes through Delta's own readers and commands (the
change data feed, `DESCRIBE HISTORY`, the streaming source), which accept a catalog name.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from partner_hunt.core import bronze, hunt, schema
from partner_hunt.store import io
from partner_hunt.store.errors import first_line
from partner_hunt.store.locations import TableRef

INCREMENTAL = "incremental"
FULL = "full"
FIRST_REFRESH = "first refresh: no earlier run to compare with"

# Commits that rewrite files without changing any row (dataChange=false in their actions), or
# change only table metadata that no row's value depends on: they touch no day.
_NO_DATA_CHANGE = frozenset(
    {
        "OPTIMIZE",
        "VACUUM START",
        "VACUUM END",
        "REORG",
        "CLUSTER BY",
        "SET TBLPROPERTIES",
        "UNSET TBLPROPERTIES",
        "UPGRADE PROTOCOL",
        "ADD CONSTRAINT",
        "DROP CONSTRAINT",
        "COMPUTE STATS",
        "ANALYZE",
        "ROW TRACKING BACKFILL",
        "DOMAIN METADATA CLEANUP",
        "ADD DELETION VECTORS TOMBSTONES",
        "UPGRADE UNIFORM",
        "EMPTY COMMIT",
    }
)
_APPEND_MODES = {"WRITE": "mode", "STREAMING UPDATE": "outputMode"}
_APPEND_ONLY_OPS = frozenset({"COPY INTO"})
# MERGE metrics that are all zero when a MERGE only inserted rows (WHEN NOT MATCHED INSERT).
_MERGE_CHANGE_METRICS = (
    "numTargetRowsUpdated",
    "numTargetRowsDeleted",
    "numTargetFilesRemoved",
    "numTargetDeletionVectorsAdded",
)
# `DESCRIBE HISTORY ... LIMIT n` reads only the newest n commits; a few more than the range
# leaves room for commits that landed after the version this run reads.
_HISTORY_SLACK = 20


@dataclass(frozen=True)
class ChangeResult:
    """The days touched by a range of commits (None: unknown, recompute the window), and why."""

    days: frozenset[date] | None
    kind: str
    reason: str

    @classmethod
    def full(cls, reason: str) -> ChangeResult:
        """Changes unknown: the refresh must recompute the whole window."""
        return cls(None, FULL, reason)


def enable_feed_hint(ref: TableRef) -> str:
    """The statement that makes the next refresh incremental whatever operations run on the source."""
    return (
        f"`ALTER TABLE {io.sql_identifier(ref)} SET TBLPROPERTIES (delta.enableChangeDataFeed = true)` "
        "makes tomorrow's refresh incremental"
    )


DaysOf = Callable[[DataFrame], DataFrame]


def changed_days(
    spark: SparkSession, ref: TableRef, from_version: int, to_version: int, days_of: DaysOf | None = None
) -> ChangeResult:
    """The UTC days whose rows the commits in `(from_version, to_version]` inserted, deleted or updated.

    `days_of` gives the days some changed rows touch (column `Day`); by default a source row's own
    day (`source_days`), for a signal table the day of the message it is about.

    With the change data feed on, its rows give the days exactly. Without it, commits that only
    append are read through Delta's streaming source; any other change (DELETE, UPDATE, MERGE,
    RESTORE, overwrite), history that is gone, or any error gives a full result with the reason.
    """
    try:
        return _changed_days(spark, ref, from_version, to_version, days_of or source_days)
    except Exception as exc:  # noqa: BLE001 - an unknown answer means "recompute", said out loud
        return ChangeResult.full(
            f"could not tell which days changed after version {from_version}: {type(exc).__name__}: {first_line(exc)}"
        )


def _changed_days(spark: SparkSession, ref: TableRef, from_version: int, to_version: int, days_of: DaysOf) -> ChangeResult:
    if to_version == from_version:
        return ChangeResult(frozenset(), INCREMENTAL, f"no commit after version {from_version}")
    if to_version < from_version:
        return ChangeResult.full(
            f"the source's version went back from {from_version} to {to_version}: the table was replaced"
        )
    first = from_version + 1
    span = f"versions {first}..{to_version}" if first < to_version else f"version {to_version}"
    commits = _history(spark, ref, from_version, to_version)
    missing = sorted(set(range(first, to_version + 1)) - {c["version"] for c in commits})
    if missing:
        return ChangeResult.full(
            f"the source's history of version {missing[0]} is gone (older than delta.logRetentionDuration); "
            "the next refresh starts from this run's version"
        )
    changes = [(c["version"], c["operation"]) for c in commits if not _appends_only(c)]
    feed_problem = ""
    if _feed_enabled(spark, ref):
        try:
            days = _feed_days(spark, ref, first, to_version, days_of)
            return ChangeResult(days, INCREMENTAL, f"change data feed of {span}")
        except Exception as exc:  # noqa: BLE001 - e.g. enabled after `first`, or its files vacuumed
            feed_problem = f"the change data feed of {span} cannot be read ({first_line(exc)})"
    if changes:
        version, operation = changes[0]
        why = feed_problem or "the source has no change data feed"
        fix = "" if feed_problem else f"; {enable_feed_hint(ref)}"
        return ChangeResult.full(f"{operation} at version {version} changed existing rows and {why}{fix}")
    try:
        days = _appended_days(spark, ref, first, days_of)
    except Exception as exc:
        cause = first_line(exc)
        if "FILE_NOT_EXIST" in cause or "FileNotFound" in cause:
            return ChangeResult.full(
                f"the files that {span} appended are gone (compacted, then vacuumed before this refresh read "
                f"them: {cause}); keep VACUUM's retention longer than the time between refreshes, or {enable_feed_hint(ref)}"
            )
        raise
    return ChangeResult(days, INCREMENTAL, f"{span} only appended rows, read through Delta's streaming source")


def _history(spark: SparkSession, ref: TableRef, from_version: int, to_version: int) -> list[Row]:
    """The commits in `(from_version, to_version]` that the table's history still holds."""
    limit = to_version - from_version + _HISTORY_SLACK

    def read(bounded: bool) -> list[Row]:
        # The identifier is validated by io; the limit is an int. Bounded: one row per commit.
        text = f"DESCRIBE HISTORY {io.sql_identifier(ref)}" + (f" LIMIT {int(limit)}" if bounded else "")
        return (
            spark.sql(text)
            .filter((F.col("version") > F.lit(from_version)) & (F.col("version") <= F.lit(to_version)))
            .select("version", "operation", "operationParameters", "operationMetrics")
            .collect()
        )

    rows = read(bounded=True)
    if len(rows) < to_version - from_version:
        # More commits than expected landed after `to_version`; read the whole history to be sure.
        rows = read(bounded=False)
    return rows


def _appends_only(commit: Row) -> bool:
    """True when a commit only added rows or changed no row (judged from its history entry)."""
    operation = str(commit["operation"]).upper()
    params: Mapping[str, str] = commit["operationParameters"] or {}
    metrics: Mapping[str, str] = commit["operationMetrics"] or {}
    if operation in _NO_DATA_CHANGE or operation in _APPEND_ONLY_OPS:
        return True
    if operation in _APPEND_MODES:
        return str(params.get(_APPEND_MODES[operation], "")).strip('"').lower() == "append"
    if operation == "MERGE":
        return all(str(metrics.get(name, "0")) == "0" for name in _MERGE_CHANGE_METRICS)
    return False


def _feed_enabled(spark: SparkSession, ref: TableRef) -> bool:
    """True when the table's current properties turn the change data feed on."""
    properties = io.table_properties(spark, ref)
    return str(properties.get("delta.enableChangeDataFeed", "false")).lower() == "true"


def feed_rows(spark: SparkSession, ref: TableRef, from_version: int, to_version: int) -> DataFrame | None:
    """Every change row (insert, delete, both images of an update) of the commits in
    `(from_version, to_version]`, lazily, when the table's change data feed is on; None when
    `changed_days` must answer instead.

    For callers that map several tables' changes in one job. The frame fails when it runs if the
    feed does not cover the range after all (enabled later, its files vacuumed, or the history of
    the range gone): the caller then asks `changed_days`, which says why.
    """
    if to_version <= from_version:
        return None
    if not _feed_enabled(spark, ref):
        return None
    return _feed(spark, ref, from_version + 1, to_version)


def _feed(spark: SparkSession, ref: TableRef, first: int, last: int) -> DataFrame:
    reader = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", first)
        .option("endingVersion", last)
    )
    return reader.load(ref.location) if ref.is_path else reader.table(ref.location)


def _feed_days(spark: SparkSession, ref: TableRef, first: int, last: int, days_of: DaysOf) -> frozenset[date]:
    """The days of every change row (insert, delete, both images of an update) in `[first, last]`."""
    # Bounded: one row per distinct day.
    return frozenset(r["Day"] for r in days_of(_feed(spark, ref, first, last)).collect())


def _appended_days(spark: SparkSession, ref: TableRef, first: int, days_of: DaysOf) -> frozenset[date]:
    """The days of the rows appended from version `first` on, read by Delta's streaming source.

    The stream cannot stop at a version (there is no `endingVersion` for streams): it reads to
    the latest commit when it starts, which may include appends after the version this run
    reads. Those days are recomputed now as well, which is safe (and redone by the next run,
    which starts from this run's version); a day missed would not be. Commits that change no
    data are skipped by the source itself; any commit that removes rows makes it fail (no
    `skipChangeCommits`), so a commit the history misjudged cannot slip through unseen.
    """
    days: set[date] = set()

    def collect(batch_df: DataFrame, _batch_id: int) -> None:
        # Bounded: one row per distinct day of the batch. A driver-side set: classic Spark only
        # (over Spark Connect this function runs in the server's Python worker).
        days.update(r["Day"] for r in days_of(batch_df).collect())

    # Only the driver writes a foreachBatch query's checkpoint (there is no state), so a local
    # folder is correct on a cluster too; it is deleted whatever happens.
    checkpoint = tempfile.mkdtemp(prefix="partner-hunt-changes-")
    try:
        reader = spark.readStream.format("delta").option("startingVersion", first)
        stream_df = reader.load(ref.location) if ref.is_path else reader.table(ref.location)
        query = (
            stream_df.writeStream.foreachBatch(collect)
            .option("checkpointLocation", Path(checkpoint).as_uri())
            .trigger(availableNow=True)
            .queryName(f"partner_hunt_changes_{Path(checkpoint).name.replace('-', '_')}")
            .start()
        )
        try:
            query.awaitTermination()
        finally:
            query.stop()
        failure = query.exception()
        if failure is not None:
            raise RuntimeError(first_line(failure))
    finally:
        shutil.rmtree(checkpoint, ignore_errors=True)
    return frozenset(days)


def source_days(rows_df: DataFrame) -> DataFrame:
    """The distinct UTC days of some source rows, Timestamp in any accepted shape (column `Day`).

    Rows whose time cannot be read belong to no day (`run` over a window quarantines them). A
    bronze table's changed rows are read as `run` reads the table (`bronze.to_flat`).
    """
    flat_df = bronze.to_flat(rows_df, bronze.detect_shape(rows_df.schema))
    canonical = flat_df.transform(schema.to_canonical, schema.Requirements())
    return canonical.select(hunt.utc_day(F.col("Timestamp")).alias("Day")).filter(F.col("Day").isNotNull()).distinct()
