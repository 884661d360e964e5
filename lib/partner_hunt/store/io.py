"""Every read and write of a Delta table: paths or catalog names, formats, write modes.

Where tables are (`TableRef`, `Locations`) lives in `locations.py`, the SQL predicates a write
takes in `predicates.py`."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import random
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from partner_hunt.store import faults
from partner_hunt.store.locations import (
    TableFormatError,
    TableNotFoundError,
    TableRef,
    folder_named_like,
    has_delta_log,
    is_leftover,
    is_local_folder,
    local_catalog_folder,
)


def _sql_identifier(ref: TableRef) -> str:
    """The table as a SQL identifier: `delta.`path`` or the validated catalog name."""
    if ref.is_path:
        if "`" in ref.location:
            raise TableFormatError(f"path '{ref.location}' must not contain a backtick")
        return f"delta.`{ref.location}`"
    return ref.location


def _detail(spark: SparkSession, ref: TableRef) -> Row:
    """`DESCRIBE DETAIL` of a Delta table (SQL, so it also works over Spark Connect)."""
    # The identifier is a validated name or a backtick-free path; there are no values to bind.
    return spark.sql(f"DESCRIBE DETAIL {_sql_identifier(ref)}").collect()[0]


def table_exists(spark: SparkSession, ref: TableRef) -> bool:
    """True when `ref` names an existing Delta table (path) or any table (catalog name)."""
    if not ref.is_path:
        return spark.catalog.tableExists(ref.location)
    if is_local_folder(spark, ref.location):
        # Look for a committed version rather than provoke (and log) an error; an empty folder,
        # or a log whose first commit never landed, is no table.
        return has_delta_log(ref.location)
    try:
        return str(_detail(spark, ref)["format"]).lower() == "delta"
    except AnalysisException:
        return False


def read_table(spark: SparkSession, ref: TableRef, version: int | None = None) -> DataFrame:
    """Read a Delta table, failing with a message that names it when it does not exist."""
    if not table_exists(spark, ref):
        raise TableNotFoundError(missing_table_message(spark, ref))
    return _load(spark, ref, version)


def missing_table_message(spark: SparkSession, ref: TableRef) -> str:
    """Why `ref` cannot be read: it does not exist; for a bare name (`src6`) that is a folder in
    the working directory, also how to read that folder instead."""
    kind = "Delta table at path" if ref.is_path else "table"
    message = f"{kind} '{ref}' does not exist"
    folder = folder_named_like(spark, ref)
    if folder is not None:
        message += f"; a folder './{folder}' exists here: give a path as ./{folder} to read it"
    return message


def read_table_if_exists(spark: SparkSession, ref: TableRef) -> DataFrame | None:
    """Read a Delta table, or None when it does not exist: one existence check, where
    `table_exists` then `read_table` would make two (each a catalog call for a name)."""
    return _load(spark, ref) if table_exists(spark, ref) else None


def _load(spark: SparkSession, ref: TableRef, version: int | None = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(ref.location) if ref.is_path else reader.table(ref.location)


def table_version(spark: SparkSession, ref: TableRef) -> int | None:
    """The latest committed Delta version of a table, or None if it has no history."""
    # One row: the newest commit (SQL rather than DeltaTable, so it works over Spark Connect).
    rows = spark.sql(f"DESCRIBE HISTORY {_sql_identifier(ref)} LIMIT 1").select("version").collect()
    return int(rows[0]["version"]) if rows else None


def last_commit_metrics(spark: SparkSession, ref: TableRef) -> dict[str, str]:
    """The operation metrics of a table's newest commit (`DESCRIBE HISTORY`), e.g. rows inserted."""
    rows = spark.sql(f"DESCRIBE HISTORY {_sql_identifier(ref)} LIMIT 1").select("operationMetrics").collect()
    return dict(rows[0]["operationMetrics"] or {}) if rows else {}


_log = logging.getLogger("partner_hunt.io")


def adopt_local_table(spark: SparkSession, ref: TableRef) -> None:
    """Register a table name with the in-memory catalog of a local run when its warehouse folder
    holds a Delta table: a plain `--output results_tbl` then works on the next run too."""
    folder = local_catalog_folder(spark, ref)
    if folder is None or not has_delta_log(folder) or spark.catalog.tableExists(ref.location):
        return
    spark.catalog.createTable(ref.location, path=folder, source="delta")


def _local_folder(spark: SparkSession, ref: TableRef) -> str | None:
    """The folder on this machine that holds (or will hold) the table, when Spark writes it there."""
    if ref.is_path:
        return ref.location if is_local_folder(spark, ref.location) else None
    return local_catalog_folder(spark, ref)


def _prepare_first_write(df: DataFrame, ref: TableRef, partition_by: Iterable[str]) -> None:
    """Before a write that may create the table: adopt a local catalog table left by an earlier
    run, and remove what a killed first write left (only that: see `locations.is_leftover`)."""
    spark = df.sparkSession
    adopt_local_table(spark, ref)
    folder = _local_folder(spark, ref)
    if folder is None or table_exists(spark, ref):
        return
    if os.path.isdir(folder) and is_leftover(folder):
        if ref.is_path:
            # Delta writes a path table into such a folder; the stray files stay unreferenced (and
            # VACUUM removes them). Deleting them could delete another writer's first write in flight.
            _log.warning("writing into %s: an earlier first write there never committed; its files are not part of the table", folder)
        else:
            # A catalog table cannot be created over a non-empty location, and a local in-memory
            # catalog has no concurrent writers in other processes: remove what is provably ours.
            _log.warning(
                "removing %s: a first write into it never committed (no Delta version; only Parquet part "
                "files and an empty _delta_log), so it holds no table",
                folder,
            )
            shutil.rmtree(folder)
    point = faults.creation_point(folder)
    if point is not None:
        # The state a kill inside Delta's first write leaves: data files, a log folder, no commit.
        writer = df.write.mode("append")
        (writer.partitionBy(*partition_by) if partition_by else writer).parquet(folder)
        for name in ("_SUCCESS", "._SUCCESS.crc"):
            if os.path.exists(os.path.join(folder, name)):
                os.remove(os.path.join(folder, name))
        os.makedirs(os.path.join(folder, "_delta_log"), exist_ok=True)
        faults.kill()


def delta_write(write: Callable[..., None]) -> Callable[..., None]:
    """A table write that may meet a concurrent writer or create the table: each attempt first
    prepares a possible first write, and Delta's concurrency conflicts are retried."""

    signature = inspect.signature(write)

    @functools.wraps(write)
    def wrapper(df: DataFrame, ref: TableRef, *args: object, **kwargs: object) -> None:
        bound = signature.bind(df, ref, *args, **kwargs)
        partition_by = list(bound.arguments.get("partition_by", ()))

        def attempt() -> None:
            _prepare_first_write(df, ref, partition_by)
            write(df, ref, *args, **kwargs)

        _with_retries(attempt)

    return wrapper


@delta_write
def replace_where(
    df: DataFrame,
    ref: TableRef,
    predicate: str,
    partition_by: Iterable[str] = (),
) -> None:
    """Atomically replace the rows matching `predicate` with `df` (creating the table if needed).

    One Delta commit: readers see either the old rows or the new ones, and rows outside the
    predicate are untouched, so reruns never duplicate and concurrent runs over disjoint
    predicates do not conflict.
    """
    writer = (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", predicate)
        # The first write creates the table; later schema growth (new columns) is additive.
        .option("mergeSchema", "true")
        # What we replace are small aggregates: without this each write task leaves its own tiny
        # file in every partition it touched (hundreds per daily-partials batch), and every later
        # read and replace of the table pays per file.
        .option("optimizeWrite", "true")
    )
    partition_by = list(partition_by)
    if partition_by:
        writer = writer.partitionBy(*partition_by)

    if ref.is_path:
        writer.save(ref.location)
    elif not df.sparkSession.catalog.tableExists(ref.location):
        # Creating a partitioned catalog table through saveAsTable with replaceWhere trips an
        # assertion in Delta 4.0.1's catalog update (UpdateCatalog.replaceTable), so the first
        # write creates it plainly; a creator that loses a race fails, and retries as a replace.
        creator = df.write.format("delta").mode("error")
        (creator.partitionBy(*partition_by) if partition_by else creator).saveAsTable(ref.location)
    else:
        # saveAsTable in overwrite mode is a catalog REPLACE in Delta 4.0.1 (the same assertion
        # for a partitioned table); DataFrameWriterV2's overwrite-by-filter is replaceWhere.
        (
            df.writeTo(ref.location)
            .option("mergeSchema", "true")
            .option("optimizeWrite", "true")
            .overwrite(F.expr(predicate))
        )


# Delta's optimistic-concurrency failures (DeltaConcurrentModificationException and subclasses);
# the first writes that race to create a table surface as metadata or protocol changes (or, for a
# catalog table, as the table already existing; for a path created with mode "error", as the
# path already existing). A retry sees the table and writes into it.
_CONFLICT = re.compile(
    r"Concurrent\w*Exception|MetadataChangedException|ProtocolChangedException|DELTA_CONCURRENT"
    r"|TABLE_OR_VIEW_ALREADY_EXISTS|DELTA_PATH_EXISTS|PATH_ALREADY_EXISTS"
)


def _with_retries(write: Callable[[], None], attempts: int = 6) -> None:
    """Retry a write that lost an optimistic-concurrency race.

    Another run committed first (e.g. a different window of the same table, or the same table's
    creation). Our writes are idempotent replaces, merges on a key, or appends that a conflict
    rejected whole, so trying again against the new snapshot is safe.
    """
    for attempt in range(attempts):
        try:
            write()
            return
        except Exception as exc:  # noqa: BLE001 - only Delta's concurrency conflicts are retried
            conflict = _CONFLICT.search(f"{type(exc).__name__} {exc}") is not None
            if not conflict or attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1) + random.random())


@delta_write
def append(df: DataFrame, ref: TableRef) -> None:
    """Append rows (creating the table if needed); used for logs that only ever grow."""
    writer = df.write.format("delta").mode("append").option("mergeSchema", "true")
    if ref.is_path:
        writer.save(ref.location)
    else:
        writer.saveAsTable(ref.location)


def overwrite(df: DataFrame, ref: TableRef, partition_by: Iterable[str] = ()) -> None:
    """Replace a whole table; used only for generated sample data."""
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    partition_by = list(partition_by)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if ref.is_path:
        writer.save(ref.location)
    else:
        writer.saveAsTable(ref.location)


def read_window_rows(spark: SparkSession, ref: TableRef, key: Mapping[str, object]) -> DataFrame:
    """Read back the rows of one window of the results table (null-safe equality on each key)."""
    return filter_window(read_table(spark, ref), key)


def filter_window(table_df: DataFrame, key: Mapping[str, object]) -> DataFrame:
    """The rows of one window of a table already read (null-safe equality on each key)."""
    for name, value in key.items():
        table_df = table_df.filter(F.col(name).eqNullSafe(F.lit(value)))
    return table_df


def table_location(spark: SparkSession, ref: TableRef) -> str:
    """The storage location of a Delta table (a path is its own location)."""
    if ref.is_path:
        return ref.location
    return str(_detail(spark, ref)["location"])


def sql_identifier(ref: TableRef) -> str:
    """The table as a validated SQL identifier, for Delta commands that take no bound values."""
    return _sql_identifier(ref)


def table_properties(spark: SparkSession, ref: TableRef) -> dict[str, str]:
    """A Delta table's properties, by name or path."""
    # SHOW TBLPROPERTIES reads only the table's metadata; DESCRIBE DETAIL also sizes the newest
    # snapshot's files, a Spark job after every commit.
    rows = spark.sql(f"SHOW TBLPROPERTIES {_sql_identifier(ref)}").collect()
    return {str(r["key"]): str(r["value"]) for r in rows}
