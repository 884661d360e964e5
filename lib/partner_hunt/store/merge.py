"""The MERGE writes of Delta tables: upserts keyed on a deterministic id, and insert-only merges.

Everything here goes through the same retries and first-write handling as `io.py`'s writes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence

from pyspark.sql import DataFrame, SparkSession

from partner_hunt.store.io import delta_write, read_table_if_exists, sql_identifier
from partner_hunt.store.locations import TableRef
from partner_hunt.store.predicates import Retirement

# (column, low, high): the stored rows an insert-only merge compares with, inclusive.
Bounds = tuple[str, object, object]


@delta_write
def upsert(
    df: DataFrame, ref: TableRef, key: str, preserve: Iterable[str] = (), retire: Retirement | None = None
) -> None:
    """Insert rows whose `key` is new and update the rest in place (Delta MERGE), in one commit.

    Rows are identified by `key` (a deterministic id), so writing the same rows twice leaves one
    copy of each; the `preserve` columns keep their stored value on update (e.g. when an alert was
    first raised). `df` must hold at most one row per key, which MERGE requires. With `retire`, the
    stored rows of its scope that `df` no longer holds get its values in the same MERGE (`WHEN NOT
    MATCHED BY SOURCE`), so a reader never sees the new rows beside stale ones. Columns of `df`
    that the table lacks are added first (additive schema growth).
    """
    _check_column_names([key, *preserve, *df.columns, *(retire.columns() if retire else ())])
    if _create_or_widen(df, ref):
        return
    kept = set(preserve)
    updates = ", ".join(f"t.`{c}` = s.`{c}`" for c in df.columns if c not in kept)
    clauses = f"WHEN MATCHED THEN UPDATE SET {updates} WHEN NOT MATCHED THEN INSERT *"
    args: dict[str, object] = {}
    if retire is not None:
        clause, args = retire.clause()
        clauses += f" {clause}"
    _merge(df, ref, [key], clauses, args)


@delta_write
def insert_new(
    df: DataFrame,
    ref: TableRef,
    key: str | Sequence[str],
    within: Bounds | None = None,
    properties: Mapping[str, str] | None = None,
) -> None:
    """Insert the rows whose `key` (one column or several) the table does not hold yet (an
    insert-only Delta MERGE), in one commit, creating the table on the first write.

    Stored rows are never changed: writing the same rows again (a rerun, or another command over
    the same days) adds nothing, and a reader of the table's changes sees appends only. With
    `within` (column, low, high), only stored rows in that inclusive range are compared, so Delta
    skips the files outside it. Columns of `df` that the table lacks are added first, so an older
    table gains `key` (its rows, with a null key, are then never matched). `properties` are the
    Delta table properties a table created here gets (e.g. its change data feed).
    """
    keys = [key] if isinstance(key, str) else list(key)
    _check_column_names([*keys, *df.columns, *([within[0]] if within else [])])
    if not _create_or_widen(df, ref, properties):
        _merge(df, ref, keys, "WHEN NOT MATCHED THEN INSERT *", within=within)


def _check_column_names(names: Iterable[str]) -> None:
    """Refuse a column name that cannot be written into SQL as a plain backticked identifier."""
    for name in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"bad column name {name!r}")


def _create_or_widen(df: DataFrame, ref: TableRef, properties: Mapping[str, str] | None = None) -> bool:
    """Create the table from `df` when it does not exist (True); else add the columns of `df` it
    lacks (False), so a MERGE can follow."""
    spark = df.sparkSession
    # One read of the table answers both "does it exist" and "which columns does it have".
    stored_df = read_table_if_exists(spark, ref)
    if stored_df is None:
        # First write creates the table; a concurrent creator makes this fail loudly, not duplicate.
        # "error", not its alias "errorifexists", which the Spark Connect client rejects.
        writer = df.write.format("delta").mode("error")
        for name, value in (properties or {}).items():
            # Delta sets `delta.*` writer options as the new table's properties.
            writer = writer.option(name, value)
        if ref.is_path:
            writer.save(ref.location)
        else:
            writer.saveAsTable(ref.location)
        return True
    _add_missing_columns(spark, ref, df, stored_df.columns)
    return False


def _merge(
    df: DataFrame,
    ref: TableRef,
    keys: Sequence[str],
    clauses: str,
    args: Mapping[str, object] | None = None,
    within: Bounds | None = None,
) -> None:
    """`MERGE INTO ref USING df ON keys [AND within] <clauses>`; the caller validated every name."""
    # SQL MERGE rather than DeltaTable.merge: over Spark Connect the DeltaTable API needs the Delta
    # Connect server plugin, SQL only the Delta extension. Every value is a bound parameter.
    spark = df.sparkSession
    view = f"partner_hunt_merge_{uuid.uuid4().hex}"
    # Null-safe: a key that is null on both sides (e.g. no tenant) still names one row.
    on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    bound_args = dict(args or {})
    if within is not None:
        column, low, high = within
        on += f" AND t.`{column}` BETWEEN :within_low AND :within_high"
        bound_args.update(within_low=low, within_high=high)
    query = f"MERGE INTO {sql_identifier(ref)} AS t USING `{view}` AS s ON {on} {clauses}"
    df.createOrReplaceTempView(view)
    try:
        spark.sql(query, args=bound_args or None)
    finally:
        spark.catalog.dropTempView(view)


def _add_missing_columns(spark: SparkSession, ref: TableRef, df: DataFrame, stored: Iterable[str]) -> None:
    """Add the columns of `df` that the table (whose columns are `stored`) lacks: a table written
    by an older version."""
    present = {name.lower() for name in stored}
    missing = [f for f in df.schema.fields if f.name.lower() not in present]
    if not missing:
        return
    for f in missing:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", f.name):
            raise ValueError(f"bad column name {f.name!r}")
    # Names validated above; types are Spark's own rendering of the DataFrame's schema.
    columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
    spark.sql(f"ALTER TABLE {sql_identifier(ref)} ADD COLUMNS ({columns})")
