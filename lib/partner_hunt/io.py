"""Every read and write of a Delta table: paths or catalog names, formats, predicates, modes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

_IDENTIFIER = r"(?:[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)"
_TABLE_NAME = re.compile(rf"^{_IDENTIFIER}(?:\.{_IDENTIFIER}){{0,2}}$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class TableNotFoundError(LookupError):
    """A table that must exist does not."""


class TableFormatError(ValueError):
    """A table location is malformed, or holds something other than Delta."""


@dataclass(frozen=True)
class TableRef:
    """A Delta table given either as a storage path or as a catalog name."""

    location: str
    is_path: bool

    @classmethod
    def parse(cls, text: str) -> "TableRef":
        """Paths contain `/` (or a scheme such as `abfss:`); anything else must be a table name."""
        text = text.strip()
        if "/" in text or "\\" in text or text.startswith(".") or _URI.match(text):
            return cls(text, True)
        if _TABLE_NAME.match(text):
            return cls(text, False)
        raise TableFormatError(
            f"'{text}' is neither a path (it has no '/') nor a table name like catalog.schema.table"
        )

    def sibling(self, suffix: str) -> "TableRef":
        """A state table beside this one: `<path>_<suffix>` folder, or `<name>_<suffix>` table."""
        if self.is_path:
            return TableRef(self.location.rstrip("/") + f"_{suffix}", True)
        return TableRef(f"{self.location}_{suffix}", False)

    def __str__(self) -> str:
        return self.location


def resolve(text: str | None, default: TableRef) -> TableRef:
    """A configured location, or the default when it is unset."""
    return TableRef.parse(text) if text else default


def table_exists(spark: SparkSession, ref: TableRef) -> bool:
    """True when `ref` names an existing Delta table (path) or any table (catalog name)."""
    if ref.is_path:
        from delta.tables import DeltaTable

        return DeltaTable.isDeltaTable(spark, ref.location)
    return spark.catalog.tableExists(ref.location)


def read_table(spark: SparkSession, ref: TableRef, version: int | None = None) -> DataFrame:
    """Read a Delta table, failing with a message that names it when it does not exist."""
    if not table_exists(spark, ref):
        kind = "Delta table at path" if ref.is_path else "table"
        raise TableNotFoundError(f"{kind} '{ref}' does not exist")
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(ref.location) if ref.is_path else reader.table(ref.location)


def table_version(spark: SparkSession, ref: TableRef) -> int | None:
    """The latest committed Delta version of a table, or None if it has no history."""
    from delta.tables import DeltaTable

    table = DeltaTable.forPath(spark, ref.location) if ref.is_path else DeltaTable.forName(spark, ref.location)
    # history(1) is one row: the newest commit.
    rows = table.history(1).select("version").collect()
    return int(rows[0]["version"]) if rows else None


def _sql_literal(value: object) -> str:
    """Render a validated scalar as a SQL literal for Delta's `replaceWhere` predicate."""
    if value is None:
        raise ValueError("null is handled by IS NULL, not a literal")
    if isinstance(value, datetime):
        utc = value.astimezone(timezone.utc).replace(tzinfo=None)
        return f"TIMESTAMP '{utc.isoformat(sep=' ')}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def equality_predicate(values: Mapping[str, object]) -> str:
    """`col = literal AND ...` (with IS NULL for None), for `replaceWhere` on our own columns.

    Delta's replaceWhere only takes a SQL string; every column name here is ours and every value
    is rendered from a typed Python value, never from user text spliced in.
    """
    parts = []
    for name, value in values.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"bad column name {name!r}")
        parts.append(f"{name} IS NULL" if value is None else f"{name} = {_sql_literal(value)}")
    return " AND ".join(parts) if parts else "true"


def in_predicate(name: str, values: Iterable[object]) -> str:
    """`col IN (...)` for `replaceWhere` over a set of partitions."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"bad column name {name!r}")
    rendered = ", ".join(_sql_literal(v) for v in values)
    return f"{name} IN ({rendered})" if rendered else "false"


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
    )
    partition_by = list(partition_by)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if ref.is_path:
        writer.save(ref.location)
    else:
        writer.saveAsTable(ref.location)


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
    df = read_table(spark, ref)
    for name, value in key.items():
        df = df.filter(F.col(name).eqNullSafe(F.lit(value)))
    return df
