"""Checks made before a command's first write: everything about where it reads and writes that
can fail is found here, in seconds, without reading any data.

Only metadata is looked at: names, the local disk for local folders, the catalog, and a Delta
table's `DESCRIBE DETAIL` where a catalog name must be compared with a path.
"""

from __future__ import annotations

import os

from pyspark.sql import SparkSession

from partner_hunt.store import io
from partner_hunt.store.locations import (
    Locations,
    TableFormatError,
    TableNotFoundError,
    TableRef,
    folder_named_like,
    has_delta_log,
    is_leftover,
    is_local_folder,
    local_catalog_folder,
    normal_location,
    parquet_files,
)


class PrecheckError(ValueError):
    """A location problem found before anything was read or written."""


def check_locations(spark: SparkSession, locations: Locations, source_must_exist: bool = True) -> None:
    """Every location of a command that writes: names parse, the outputs are neither the source
    nor inside it nor each other, each is a table folder (or absent), the alerts' JSON Lines
    folder is a folder (or absent), and the source is Delta."""
    writes = _writes(locations)
    for role, ref in writes.items():
        _check_name_round_trips(role, ref)
    for ref in [locations.source, *writes.values()]:
        io.adopt_local_table(spark, ref)
    _check_apart(spark, locations.source, writes)
    for role, ref in writes.items():
        _check_writable(spark, role, ref)
    if locations.alerts_jsonl is not None:
        _check_folder(spark, "alerts.jsonl", locations.alerts_jsonl, locations.source)
    if source_must_exist:
        _check_source(spark, locations.source)


def _writes(locations: Locations) -> dict[str, TableRef]:
    return {
        "output": locations.output,
        "state.partials": locations.partials,
        "state.run_log": locations.run_log,
        "state.quarantine": locations.quarantine,
        "state.evidence": locations.evidence,
        "state.alerts": locations.alerts,
        "state.partners": locations.partners,
        "state.signal_partials": locations.signal_partials,
        "state.partner_risk": locations.partner_risk,
    }


def _check_name_round_trips(role: str, ref: TableRef) -> None:
    """A derived sibling name must be a name Spark (and we) can parse back to the same table."""
    try:
        again = TableRef.parse(ref.location)
    except TableFormatError as exc:
        raise PrecheckError(f"{role} '{ref}' is not a valid table name: {exc}") from None
    if again != ref:
        raise PrecheckError(f"{role} '{ref}' does not parse back to itself (as {again}); name it explicitly")


def _canonical_name(ref: TableRef) -> str:
    """A catalog name as the catalog compares it: unquoted, lower-case, default schema filled in."""
    parts = ref.unquoted_parts
    if len(parts) == 1:
        parts = ["default", *parts]
    if len(parts) == 2:
        parts = ["spark_catalog", *parts]
    return ".".join(parts)


def _where(spark: SparkSession, ref: TableRef) -> str | None:
    """The storage location of `ref` where it can be known without reading data."""
    if ref.is_path:
        return normal_location(ref.location)
    folder = local_catalog_folder(spark, ref)
    if folder is not None:
        return normal_location(folder)
    try:
        if io.table_exists(spark, ref):
            return normal_location(io.table_location(spark, ref))
    except Exception:  # noqa: BLE001 - a location we cannot learn is compared by name only
        return None
    return None


def _same_or_inside(inner: str, outer: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def _check_apart(spark: SparkSession, source: TableRef, writes: dict[str, TableRef]) -> None:
    """No write goes to the source, into its folder, or to another write's table."""
    source_where = _where(spark, source)
    seen: dict[str, str] = {}
    for role, ref in writes.items():
        if not ref.is_path and not source.is_path and _canonical_name(ref) == _canonical_name(source):
            raise PrecheckError(f"{role} '{ref}' is the source table; write the results somewhere else")
        where = _where(spark, ref)
        if where is not None and source_where is not None:
            if where == source_where:
                raise PrecheckError(f"{role} '{ref}' is the source table '{source}'; write the results somewhere else")
            if _same_or_inside(where, source_where):
                raise PrecheckError(f"{role} '{ref}' is inside the source table '{source}'; write the results somewhere else")
            if _same_or_inside(source_where, where):
                raise PrecheckError(f"the source '{source}' is inside {role} '{ref}'; write the results somewhere else")
        key = where or _canonical_name(ref)
        if key in seen:
            raise PrecheckError(f"{role} '{ref}' and {seen[key]} are the same table; give each its own location")
        seen[key] = f"{role} '{ref}'"


def _check_writable(spark: SparkSession, role: str, ref: TableRef) -> None:
    """A local location is absent, an empty folder, a Delta table, or what a killed first write left."""
    folder = ref.location if ref.is_path and is_local_folder(spark, ref.location) else local_catalog_folder(spark, ref)
    if folder is None or not os.path.lexists(folder):
        return
    if not os.path.isdir(folder):
        raise PrecheckError(f"{role} '{folder}' is a file, not a table folder")
    if has_delta_log(folder) or not os.listdir(folder) or is_leftover(folder):
        return
    found = parquet_files(folder)
    what = f"found Parquet files {', '.join(found)}" if found else f"found {', '.join(sorted(os.listdir(folder))[:3])}"
    raise PrecheckError(f"{role} '{folder}' exists but is not a Delta table ({what}); choose another location")


def _check_folder(spark: SparkSession, role: str, location: str, source: TableRef) -> None:
    """A plain output folder (JSON Lines) is absent or a folder, and not the source or inside it."""
    where = normal_location(location)
    source_where = _where(spark, source)
    if source_where is not None and (_same_or_inside(where, source_where) or _same_or_inside(source_where, where)):
        raise PrecheckError(f"{role} '{location}' overlaps the source table '{source}'; write the alerts somewhere else")
    if not is_local_folder(spark, location) or not os.path.lexists(location):
        return
    if not os.path.isdir(location):
        raise PrecheckError(f"{role} '{location}' is a file, not a folder for the alert JSON Lines")
    if has_delta_log(location):
        raise PrecheckError(f"{role} '{location}' is a Delta table, not a folder for the alert JSON Lines")


def check_ingest(spark: SparkSession, run_log: TableRef, folder: str, writes: dict[str, TableRef]) -> None:
    """The places of an ingest: the tables it writes (and the run log) as for every command, and
    an input folder that exists (when local), is a folder, and is none of those tables."""
    writes = {**writes, "state.run_log": run_log}
    for role, ref in writes.items():
        _check_name_round_trips(role, ref)
        io.adopt_local_table(spark, ref)
    seen: dict[str, str] = {}
    for role, ref in writes.items():
        key = _where(spark, ref) or _canonical_name(ref)
        if key in seen:
            raise PrecheckError(f"{role} '{ref}' and {seen[key]} are the same table; give each its own location")
        seen[key] = f"{role} '{ref}'"
        _check_writable(spark, role, ref)
        where = _where(spark, ref)
        if where is not None and _same_or_inside(normal_location(folder), where):
            raise PrecheckError(f"--input '{folder}' is inside {role} '{ref}': give the export folder itself")
    if not is_local_folder(spark, folder):
        return
    if not os.path.exists(folder):
        raise PrecheckError(f"--input '{folder}' does not exist: give the export's container folder")
    if not os.path.isdir(folder):
        raise PrecheckError(f"--input '{folder}' is a file, not the export's container folder")
    if has_delta_log(folder):
        raise PrecheckError(f"--input '{folder}' is a Delta table, not an export folder: give it to the hunt as --source")


def _check_source(spark: SparkSession, source: TableRef) -> None:
    """The source is a Delta table; a Parquet folder is named as such, not as missing, and a bare
    name that is no table but a folder here is named as that folder."""
    if folder_named_like(spark, source) is not None and not io.table_exists(spark, source):
        raise TableNotFoundError(io.missing_table_message(spark, source))
    folder = source.location if source.is_path and is_local_folder(spark, source.location) else None
    if folder is None or has_delta_log(folder):
        return
    if os.path.isfile(folder):
        raise PrecheckError(f"source '{folder}' is a file, not a Delta table folder")
    if os.path.isdir(folder):
        found = parquet_files(folder)
        if found:
            raise PrecheckError(f"source '{folder}' is not a Delta table (found Parquet files {', '.join(found)}, but no _delta_log)")
        raise PrecheckError(f"source '{folder}' is not a Delta table (no committed _delta_log)")
    raise PrecheckError(f"source Delta table at path '{folder}' does not exist")
