"""Where tables are: a path or a catalog name, state tables beside the output, and whether a
location is a folder on this machine. Nothing here reads data; the disk is looked at only for a
local folder (`is_local_folder`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from pyspark.sql import SparkSession

from partner_hunt.config import Config
from partner_hunt.core.signals import SIGNAL_TABLES
from partner_hunt.store.session import is_connect

# An unquoted part, or a backticked one in which a doubled backtick stands for one.
_IDENTIFIER = r"(?:[A-Za-z_][A-Za-z0-9_]*|`(?:[^`]|``)+`)"
_TABLE_NAME = re.compile(rf"^{_IDENTIFIER}(?:\.{_IDENTIFIER}){{0,2}}$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# Absolute paths that look local but are not on the driver's disk as Spark sees them: Unity
# Catalog volumes, DBFS mounts and FUSE views, workspace files.
_REMOTE_PREFIXES = ("/Volumes/", "/mnt/", "/dbfs/", "/Workspace/")
# A committed Delta version: a commit file, or a checkpoint (classic, multi-part or V2).
_DELTA_COMMIT = re.compile(r"^\d{20}\.(?:json|checkpoint(?:\.[^/]+)?\.(?:parquet|json))$")


class TableNotFoundError(LookupError):
    """A table that must exist does not."""


class TableFormatError(ValueError):
    """A table location is malformed, or holds something other than Delta."""


class CorruptFileError(IOError):
    """A data file of a table cannot be read: truncated, corrupt, or gone."""


@dataclass(frozen=True)
class TableRef:
    """A Delta table given either as a storage path or as a catalog name."""

    location: str
    is_path: bool

    @classmethod
    def parse(cls, text: str) -> TableRef:
        """Paths contain `/` (or a scheme such as `abfss:`); anything else must be a table name."""
        text = text.strip()
        if "/" in text or "\\" in text or text.startswith(".") or _URI.match(text):
            return cls(folder_location(text), True)
        if _TABLE_NAME.match(text):
            return cls(text, False)
        raise TableFormatError(
            f"'{text}' is neither a path (it has no '/') nor a table name like catalog.schema.table "
            "(quote a part with characters other than letters, digits and _ in backticks: `my-catalog`.sec.events)"
        )

    @property
    def name_parts(self) -> list[str]:
        """The parts of a catalog name as written (backticks kept), e.g. ['`my-cat`', 'sec', 'events']."""
        if self.is_path:
            raise TableFormatError(f"'{self.location}' is a path, not a table name")
        return re.findall(_IDENTIFIER, self.location)

    @property
    def unquoted_parts(self) -> list[str]:
        """The parts of a catalog name as the catalog compares them: backticks removed, lower-case."""
        return [(p[1:-1].replace("``", "`") if p.startswith("`") else p).lower() for p in self.name_parts]

    def sibling(self, suffix: str) -> TableRef:
        """A state table beside this one: `<path>_<suffix>` folder, or `<name>_<suffix>` table.

        A backticked last part keeps the suffix inside its backticks (`a-b` -> `a-b_partials`).
        """
        if not re.fullmatch(r"[A-Za-z0-9_]+", suffix):
            raise ValueError(f"bad table suffix {suffix!r}")
        if self.is_path:
            return TableRef(self.location.rstrip("/") + f"_{suffix}", True)
        *schema, last = self.name_parts
        last = f"{last[:-1]}_{suffix}`" if last.startswith("`") else f"{last}_{suffix}"
        return TableRef(".".join([*schema, last]), False)

    def __str__(self) -> str:
        return self.location


def folder_location(text: str) -> str:
    """A storage folder as Spark should see it, with no trailing `/`; the filesystem is not touched.

    URIs (`dbfs:/`, `abfss://`, `s3://`, `file:/`) and absolute paths (`/Volumes/...`, `/mnt/...`)
    are kept as written; a relative path is made absolute against the working directory, so that
    SQL (`delta.`path``) and every executor read the same folder.
    """
    text = text.strip()
    if not _URI.match(text) and not text.startswith("/"):
        text = os.path.abspath(text)
    return text.rstrip("/") or "/"


def normal_location(location: str) -> str:
    """A storage location as compared by text: no `file:` prefix, no trailing `/`, and a local
    absolute path with its links resolved (a link to a folder is that folder)."""
    text = re.sub(r"^file:(?://)?(?=/)", "", location).rstrip("/")
    return os.path.realpath(text) if text.startswith("/") else text


def source_identity(text: str) -> str:
    """A table as written in a marker or a key (`str(TableRef)`), as compared: a path as its
    `normal_location` (a link to a folder is that folder), a catalog name as written."""
    try:
        ref = TableRef.parse(text)
    except TableFormatError:
        return text
    return normal_location(ref.location) if ref.is_path else text


def folder_named_like(spark: SparkSession, ref: TableRef) -> str | None:
    """The name of a one-part table name (`src6`) when a folder of that name is in the working
    directory of a local run, else None: what was probably meant as the path `./src6`."""
    if ref.is_path:
        return None
    parts = ref.name_parts
    if len(parts) != 1:
        return None
    name = parts[0][1:-1].replace("``", "`") if parts[0].startswith("`") else parts[0]
    folder = os.path.abspath(name)
    return name if is_local_folder(spark, folder) and os.path.isdir(folder) else None


def is_local_folder(spark: SparkSession, location: str) -> bool:
    """True when `location` is a folder on this machine's disk, as Spark reads it.

    Only then may the driver look at the folder itself. A URI goes through its file system; a
    Databricks path that looks absolute (`/Volumes`, `/mnt`, `/dbfs`, `/Workspace`) is not what
    the driver's disk holds; and on a cluster or a Databricks runtime (whose default file system
    is DBFS even on a single-node `local` master) or over Connect, a plain path is resolved by
    Spark, not by us.
    """
    if _URI.match(location) or location.startswith(_REMOTE_PREFIXES):
        return False
    # Over Connect the files are read by the server, whose disk is not (in general) this one.
    if os.environ.get("DATABRICKS_RUNTIME_VERSION") or is_connect(spark):
        return False
    try:
        master = spark.conf.get("spark.master", None) or ""
    except Exception:  # noqa: BLE001 - a server that will not say is not known to be local
        return False
    return master.startswith("local")


def has_delta_log(folder: str) -> bool:
    """A local folder holds a Delta table: its `_delta_log` has at least one committed version."""
    log = os.path.join(folder, "_delta_log")
    try:
        return any(_DELTA_COMMIT.match(name) for name in os.listdir(log))
    except (FileNotFoundError, NotADirectoryError):
        return False


# What a Delta write leaves in a new table's folder before its first commit lands: data files
# (with the local file system's checksums) and the log folder. A Spark Parquet dataset also has
# `_SUCCESS`, which Delta never writes, so a folder with one is never taken for our leftover.
_PART_FILE = re.compile(r"^\.?part-[^/]*\.parquet(?:\.crc)?$")
_LOG_SCRATCH = re.compile(r"^(?:\..*\.(?:tmp|crc)|_staged_commits)$")


def is_leftover(folder: str) -> bool:
    """A local folder a killed first Delta write left: no committed version, an `_delta_log` with
    nothing committed in it, and otherwise only Parquet part files (partition folders included)."""
    log = os.path.join(folder, "_delta_log")
    if not os.path.isdir(log) or has_delta_log(folder):
        return False
    for name in os.listdir(log):
        path = os.path.join(log, name)
        if not _LOG_SCRATCH.match(name) or (os.path.isdir(path) and os.listdir(path)):
            return False

    def only_parts(path: str, top: bool) -> bool:
        for entry in os.scandir(path):
            if top and entry.name == "_delta_log":
                continue
            if entry.is_dir(follow_symlinks=False):
                if "=" not in entry.name or not only_parts(entry.path, False):
                    return False
            elif not entry.is_file(follow_symlinks=False) or not _PART_FILE.match(entry.name):
                return False
        return True

    return only_parts(folder, True)


def parquet_files(folder: str, limit: int = 3) -> list[str]:
    """Up to `limit` Parquet file names directly in a local folder or its partition folders."""
    found: list[str] = []
    for _root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(("_", "."))]
        found.extend(sorted(f for f in files if f.endswith(".parquet") and not f.startswith(".")))
        if len(found) >= limit:
            break
    return found[:limit]


def local_catalog_folder(spark: SparkSession, ref: TableRef) -> str | None:
    """Where a managed table of this name lives when the catalog is Spark's in-memory one on a
    local master (a plain `--output results_tbl` run locally), else None.

    That catalog forgets its tables when the process ends, but their folders stay in the
    warehouse; the next run must find them there.
    """
    if ref.is_path:
        return None
    try:
        # Unset means Spark's default, the in-memory catalog.
        impl = spark.conf.get("spark.sql.catalogImplementation", "in-memory")
        warehouse = spark.conf.get("spark.sql.warehouse.dir", None)
    except Exception:  # noqa: BLE001 - a server that will not say has no local catalog for us
        return None
    if impl != "in-memory" or not warehouse:
        return None
    warehouse = re.sub(r"^file:(?://)?", "", warehouse)
    if not is_local_folder(spark, warehouse):
        return None
    parts = ref.unquoted_parts
    if len(parts) == 3:
        if parts[0] != "spark_catalog":
            return None
        parts = parts[1:]
    database, table = (parts if len(parts) == 2 else ["default", parts[0]])
    return os.path.join(warehouse, table) if database == "default" else os.path.join(warehouse, f"{database}.db", table)


def resolve(text: str | None, default: TableRef) -> TableRef:
    """A configured location, or the default when it is unset."""
    return TableRef.parse(text) if text else default


@dataclass(frozen=True)
class Locations:
    """Where a run reads and writes; state tables default to siblings of the results table."""

    source: TableRef
    output: TableRef
    partials: TableRef
    run_log: TableRef
    quarantine: TableRef
    evidence: TableRef
    alerts: TableRef
    partners: TableRef
    signal_partials: TableRef
    partner_risk: TableRef
    # Defender's Teams signals read beside MessageEvents, by `signals.SignalTable.key`.
    signals: dict[str, TableRef]
    # A folder of JSON Lines, not a table: `alerts.jsonl`, else beside a path output; None for a
    # catalog output with no folder set (the alerts then go to the alerts table only).
    alerts_jsonl: str | None = None

    @classmethod
    def from_config(cls, config: Config) -> Locations:
        """The locations a config names, with unset state tables beside the output."""
        output = TableRef.parse(config.output)
        state = config.state
        return cls(
            source=TableRef.parse(config.source),
            output=output,
            partials=resolve(state.partials, output.sibling("partials")),
            run_log=resolve(state.run_log, output.sibling("run_log")),
            quarantine=resolve(state.quarantine, output.sibling("quarantine")),
            evidence=resolve(state.evidence, output.sibling("evidence")),
            alerts=resolve(state.alerts, output.sibling("alerts")),
            partners=resolve(state.partners, output.sibling("partners")),
            signal_partials=resolve(state.signal_partials, output.sibling("signal_partials")),
            partner_risk=resolve(state.partner_risk, output.sibling("partner_risk")),
            signals=signal_tables(config, TableRef.parse(config.source)),
            alerts_jsonl=(
                folder_location(config.alerts.jsonl)
                if config.alerts.jsonl
                else (output.sibling("alerts_jsonl").location if output.is_path else None)
            ),
        )


def signal_tables(config: Config, beside: TableRef) -> dict[str, TableRef]:
    """Where each of Defender's Teams signal tables is: `signals.<key>`, else beside `beside`
    (the MessageEvents table)."""
    return {t.key: resolve(getattr(config.signals, t.key), beside.sibling(t.suffix)) for t in SIGNAL_TABLES}
