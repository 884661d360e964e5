"""Inline test rows handed to Spark as Arrow, so that reading them needs no Python worker.

`spark.createDataFrame(rows, schema)` with a list of tuples makes a Python RDD: every job that
reads it (the test's query, then chispa's collect and sort) starts Python workers to unpickle the
rows, which cost more than the query on a few rows. The same rows as an Arrow table are read by the
JVM alone. Only calls made from the test modules are converted, with the same values: a naive
`datetime` is local time, as the Python path reads it. Anything the conversion does not handle
(dict rows, an RDD, a type Arrow cannot hold) goes to Spark's own path unchanged, so the job's
code under test always creates its frames exactly as it does in production.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema


def _value(dtype: T.DataType, value: Any) -> Any:
    """One value in the form pyarrow takes for `dtype`."""
    if value is None:
        return None
    if isinstance(dtype, T.TimestampType) and isinstance(value, datetime) and value.tzinfo is None:
        return value.astimezone()
    if isinstance(dtype, T.StructType):
        if isinstance(value, dict):
            return {f.name: _value(f.dataType, value.get(f.name)) for f in dtype.fields}
        if len(value) != len(dtype.fields):
            raise ValueError("a struct value of another length")
        return {f.name: _value(f.dataType, v) for f, v in zip(dtype.fields, value, strict=True)}
    if isinstance(dtype, T.ArrayType):
        return [_value(dtype.elementType, v) for v in value]
    if isinstance(dtype, T.MapType):
        return [(_value(dtype.keyType, k), _value(dtype.valueType, v)) for k, v in value.items()]
    if isinstance(dtype, T.StringType) and not isinstance(value, str):
        raise TypeError("not a string")
    return value


def arrow_table(rows: list[Any], schema: T.StructType) -> pa.Table:
    """`rows` (tuples in the schema's order) as an Arrow table of `schema`; raises on anything else."""
    if not all(isinstance(r, (tuple, list)) and len(r) == len(schema.fields) for r in rows):
        raise ValueError("rows that are not tuples of the schema's length")
    arrow_schema = to_arrow_schema(schema)
    columns = [
        pa.array([_value(f.dataType, r[i]) for r in rows], type=arrow_schema.field(i).type) for i, f in enumerate(schema.fields)
    ]
    return pa.Table.from_arrays(columns, schema=arrow_schema)


def from_tests(create: Callable[..., DataFrame]) -> Callable[..., DataFrame]:
    """`create` (a session's `createDataFrame`) that hands the test modules' inline rows to Spark as Arrow."""

    def create_frame(data: Any, schema: Any = None, *args: Any, **kwargs: Any) -> DataFrame:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith("tests.") and isinstance(data, list) and schema is not None and not args and not kwargs:
            struct = T._parse_datatype_string(schema) if isinstance(schema, str) else schema
            if isinstance(struct, T.StructType):
                try:
                    table = arrow_table(data, struct)
                except (pa.ArrowException, TypeError, ValueError, OverflowError):
                    table = None
                if table is not None:
                    return create(table, struct)
        return create(data, schema, *args, **kwargs)

    return create_frame
