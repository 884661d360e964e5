"""Defender's Teams signal tables, read beside MessageEvents when they are there (docs/partner-risk.md).

Each is optional: with none present every command behaves as with MessageEvents alone, and says
once which it did not find. A table that is there must have the columns the partner signals read,
or the command fails before its first write, naming the table and the columns.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from partner_hunt.core import signals, values
from partner_hunt.store import io
from partner_hunt.store.locations import Locations, TableRef, is_local_folder

log = logging.getLogger("partner_hunt")

# What the partner signals read of each table (`core/partner_signals.py`).
NEEDED = {
    signals.POST_DELIVERY.key: ("TenantId", "Timestamp", "TeamsMessageId", "ActionType", "ThreatTypes"),
    signals.URL_INFO.key: ("TenantId", "Timestamp", "TeamsMessageId", "Url", "UrlDomain"),
    signals.URL_CLICKS.key: ("TenantId", "Timestamp", "Url", "Workload", "ActionType", "IsClickedThrough", "AccountUpn", "ReportId"),
}


class SignalTableError(ValueError):
    """A signal table is there but cannot be read as its columns say."""


@dataclass
class SignalInputs:
    """The signal tables found, read at a pinned version, by `signals.SignalTable.key`."""

    frames: dict[str, DataFrame] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    refs: dict[str, TableRef] = field(default_factory=dict)

    @property
    def present(self) -> bool:
        return bool(self.frames)

    def get(self, key: str) -> DataFrame | None:
        return self.frames.get(key)


def read_signals(spark: SparkSession, locations: Locations, mode: str = "kql") -> SignalInputs:
    """Read each signal table that exists (its needed columns, typed), and say once which do not.

    `known-now` mode counts the threats found after delivery, so there the post-delivery table
    must exist: its absence fails the command before it writes anything.
    """
    inputs = SignalInputs(refs=dict(locations.signals))
    missing = []

    def read(table: signals.SignalTable) -> tuple[DataFrame, int | None] | None:
        ref = locations.signals[table.key]
        if not io.table_exists(spark, ref):
            if ref.is_path and is_local_folder(spark, ref.location) and os.path.exists(ref.location):
                raise SignalTableError(
                    f"signal table '{ref}' ({table.table}) is there but is not a Delta table: point signals.{table.key} at the table, "
                    "or move what is there"
                )
            return None
        version = io.table_version(spark, ref)
        return typed_columns(io.read_table(spark, ref, version=version), table, str(ref)), version

    # Each table is a few metadata reads, mostly waiting on Delta's log: read side by side.
    with ThreadPoolExecutor(max_workers=len(signals.SIGNAL_TABLES), thread_name_prefix="partner-hunt-signals") as pool:
        found = list(pool.map(read, signals.SIGNAL_TABLES))
    for table, got in zip(signals.SIGNAL_TABLES, found, strict=True):
        if got is None:
            missing.append(f"{table.table} ({locations.signals[table.key]})")
            continue
        inputs.frames[table.key] = got[0]
        if got[1] is not None:
            inputs.versions[table.key] = got[1]
    post = signals.POST_DELIVERY
    if mode == "known-now" and post.key not in inputs.frames:
        raise SignalTableError(
            f"hunt.mode known-now counts the threats found after delivery, from {post.table}, and there is no such table at "
            f"'{locations.signals[post.key]}': ingest it (docs/partner-risk.md), set signals.{post.key} to where it is, or use mode corrected"
        )
    if missing and inputs.present:
        log.info("partner signals: read %s; not found: %s", ", ".join(inputs.frames), "; ".join(missing))
    elif missing:
        log.info("partner signals: none of Defender's signal tables is there (%s): the partner risk table is not written", "; ".join(missing))
    return inputs


def typed_columns(df: DataFrame, table: signals.SignalTable, name: str) -> DataFrame:
    """The columns the partner signals read of `table` (named `name` in an error), or its changed
    rows: the needed columns, times and flags typed as the ingest types them (a table written by
    another job may hold them as text)."""
    by_lower = {f.name.lower(): f for f in df.schema.fields}
    absent = [c for c in NEEDED[table.key] if c.lower() not in by_lower]
    if absent:
        raise SignalTableError(
            f"signal table '{name}' ({table.table}) is missing column(s) {', '.join(absent)}; "
            f"docs/signal-sources.md lists its columns (or set signals.{table.key} to the right table)"
        )
    kinds = dict(table.columns)
    cols = []
    for column in NEEDED[table.key]:
        f = by_lower[column.lower()]
        if kinds.get(column) == signals.TIME:
            value = values.timestamp(F.col(f"`{f.name}`"), f.dataType)[0]
        elif kinds.get(column) == signals.FLAG:
            value = values.flag(F.col(f"`{f.name}`"), f.dataType)[0]
        else:
            value = F.col(f"`{f.name}`").cast(T.StringType())
        cols.append(value.alias(column))
    return df.select(*cols)
