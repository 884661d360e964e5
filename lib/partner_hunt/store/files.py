"""Reading a table's data files when some of them cannot be read: they are named, or skipped and
listed (`quality.skip_corrupt_files`). Files are found through the table (its Delta snapshot and
`_metadata.file_path`), never by listing its storage."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from partner_hunt.store.io import read_table
from partner_hunt.store.locations import CorruptFileError, TableRef

_IGNORE_CORRUPT = "spark.sql.files.ignoreCorruptFiles"
# Spark 4 names the file in FAILED_READ_FILE errors, on classic Spark and over Connect alike.
_FAILED_READ = re.compile(
    r"\[FAILED_READ_FILE(?:\.(\w+))?\][^\n]*?reading file (.+?)\.?(?:\s+SQLSTATE|\s*$)", re.MULTILINE
)


def unreadable_file(exc: BaseException) -> tuple[str, str] | None:
    """(path, Spark's sub-reason) when `exc` is Spark failing to read one data file, else None."""
    match = _FAILED_READ.search(str(exc))
    if match is None:
        return None
    return unquote(match.group(2)), match.group(1) or "NO_HINT"


@contextmanager
def reading_files(spark: SparkSession, table: TableRef, skip_corrupt: bool) -> Iterator[None]:
    """Scope in which a table is read: unreadable files are skipped, or fail naming the file.

    Delta's reader ignores the per-read `ignoreCorruptFiles` option, so skipping uses the SQL
    setting, set for this scope only and restored afterwards.
    """
    previous = spark.conf.get(_IGNORE_CORRUPT, None) if skip_corrupt else None
    if skip_corrupt:
        spark.conf.set(_IGNORE_CORRUPT, "true")
    try:
        yield
    except CorruptFileError:
        raise
    except Exception as exc:
        found = unreadable_file(exc)
        if found is None:
            raise
        path, reason = found
        hint = "" if skip_corrupt else "; rerun with --skip-corrupt-files to skip unreadable files"
        raise CorruptFileError(
            f"cannot read data file {path} of table '{table}': truncated, corrupt or removed "
            f"(Spark FAILED_READ_FILE.{reason}){hint}"
        ) from exc
    finally:
        if skip_corrupt:
            if previous is None:
                spark.conf.unset(_IGNORE_CORRUPT)
            else:
                spark.conf.set(_IGNORE_CORRUPT, previous)


def unreadable_files(spark: SparkSession, ref: TableRef) -> list[str]:
    """The data files of a Delta table whose Parquet footer cannot be read, in one scan.

    The table is read as a table (by name for a catalog table: Unity Catalog refuses path access
    to a managed table's storage), selecting only `_metadata.file_path`, so each task opens only
    its file's footer; the file list is Delta's snapshot (`inputFiles`), never a listing of ours.
    A readable file shows up with at least one row; the few that do not (unreadable, or with no
    rows) are then opened one by one, strictly, by path, to tell them apart. Damage inside a data
    page behind a good footer is not found here; Spark's ignoreCorruptFiles then drops the rest of
    that file without a count.
    """
    table_df = read_table(spark, ref)
    files = table_df.inputFiles()
    if not files:
        return []
    with _session_setting(spark, _IGNORE_CORRUPT, "true"):
        # Bounded: at most one row per data file of the table.
        seen = {_normal_path(row[0]) for row in table_df.select(F.col("_metadata.file_path")).distinct().collect()}
    return sorted(f for f in files if _normal_path(f) not in seen and not _opens(spark, f))


@contextmanager
def _session_setting(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """Set a SQL setting for a scope and put the previous value back (Delta reads only these)."""
    previous = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)


def _normal_path(path: str) -> str:
    """`file:/x`, `file:///x` and `/x` name the same local file; `%20` and ` ` the same name."""
    return re.sub(r"^file:/+", "/", unquote(path))


def _opens(spark: SparkSession, path: str) -> bool:
    """True when the file's footer can be read (it may hold no rows)."""
    try:
        # Strict even inside `reading_files`, whose session setting would hide the failure.
        spark.read.schema("_partner_hunt_probe string").option("ignoreCorruptFiles", "false").parquet(path).count()
        return True
    except Exception as exc:  # noqa: BLE001 - any failure to open is what we are looking for
        if unreadable_file(exc) is None and "parquet" not in str(exc).lower():
            raise
        return False
