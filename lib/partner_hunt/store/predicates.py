"""Delta `replaceWhere` predicates and MERGE clauses rendered from typed Python values (Delta
only takes SQL text for these).

Every column name is ours and validated; every value is rendered from a typed value, never from
user text spliced in. Timestamps carry an explicit UTC offset, so no predicate depends on the
session time zone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone


def _sql_literal(value: object) -> str:
    """Render a validated scalar as a SQL literal for Delta's `replaceWhere` predicate."""
    if value is None:
        raise ValueError("null is handled by IS NULL, not a literal")
    if isinstance(value, datetime):
        # With its offset: a zone-less literal would be read in the session time zone, and the
        # predicate would then miss the rows it must replace (DELTA_REPLACE_WHERE_MISMATCH).
        # A naive time is UTC, as everywhere in the config.
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return f"TIMESTAMP '{value.astimezone(timezone.utc).isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
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


@dataclass(frozen=True)
class Retirement:
    """What `upsert` does to stored rows of `scope` (column -> value, null-safe) absent from its
    input: they get `values`, unless a column already holds its `unless` value (retired before)."""

    scope: Mapping[str, object]
    values: Mapping[str, object]
    unless: Mapping[str, object] = field(default_factory=dict)

    def columns(self) -> list[str]:
        """Every column this names, for validation."""
        return [*self.scope, *self.values, *self.unless]

    def clause(self) -> tuple[str, dict[str, object]]:
        """The `WHEN NOT MATCHED BY SOURCE` clause, and its bound parameters (names are validated)."""
        args: dict[str, object] = {}

        def bind(value: object) -> str:
            name = f"p{len(args)}"
            # Aware datetimes bind as instants; a naive one is UTC, as everywhere in the config.
            if isinstance(value, datetime) and value.tzinfo is None:
                value = value.replace(tzinfo=timezone.utc)
            args[name] = value
            return f":{name}"

        conditions = [f"t.`{c}` <=> {bind(v)}" for c, v in self.scope.items()]
        conditions += [f"NOT (t.`{c}` <=> {bind(v)})" for c, v in self.unless.items()]
        sets = ", ".join(f"t.`{c}` = {bind(v)}" for c, v in self.values.items())
        return f"WHEN NOT MATCHED BY SOURCE AND {' AND '.join(conditions) or 'true'} THEN UPDATE SET {sets}", args
