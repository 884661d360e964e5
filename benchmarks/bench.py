"""Side-by-side benchmark: partner-hunt's run query, the naive KQL translation, DuckDB and a scan bound.

    .venv/bin/python benchmarks/bench.py [--sizes 1000000,10000000] [--repeats 3] [--out bench-out/results.json]

What it does, in one Python process and one Spark session (local[*], spark.driver.memory=1g):
  * generates seeded MessageEvents Delta lakes (sample.generate_events), cached under bench-out/ and
    reused when the size, days and seed match;
  * per size, after one warm-up round, times `--repeats` rounds of (interleaved, so drift hits all
    variants alike):
      run      what `run.run` computes, without its writes: read_source (contract check, version
               pin, column pruning) -> to_canonical -> quality observations -> quarantine filter ->
               hunt -> window_results -> run columns;
      naive    the literal two-scan translation in tests/naive_kql.py (the tests' oracle);
      duckdb   DuckDB over the Delta table's live Parquet files (deltalake's file_uris);
      scan     a Spark scan bound: reads the needed columns and sums the length of every recipient
               address, so nothing can skip the nested data;
    every Spark variant ends in the same noop sink (`write.format("noop")`), and every timing
    includes building the DataFrame (so `run` pays for its contract check and Delta version pin);
  * reports medians, ratios, the driver JVM's peak RSS per variant, and the number of scans of the
    source in each physical plan, and checks that run, naive and DuckDB give the same rows;
  * whole process, at the largest size: `partner-hunt run` as a subprocess against
    `python tests/naive_kql.py` on the same lake, both writing their results to Delta, with
    spark.driver.memory=1g;
  * incremental cost: the refresh after one appended day against a recompute (see `bench_incremental`);
  * ingest (`--sections ingest`, at the smallest size): `partner-hunt ingest` of a seeded storage
    export against `spark.read.json` of the same files written to Delta with no deduplication, and
    one new hour ingested into the full table against into an empty one (see `bench_ingest`);
  * scale (`--sections scale`): how each variant's cost grows with the lake (benchmarks/scale.py);
  * signals (`--sections signals`): the refresh with Defender's Teams signal tables against the
    refresh with MessageEvents alone (benchmarks/signals.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from partner_hunt.commands import backfill, refresh, run  # noqa: E402
from partner_hunt.commands.steps.window import plan_window  # noqa: E402
from partner_hunt.config import Config, SparkSettings  # noqa: E402
from partner_hunt.core import sample  # noqa: E402
from partner_hunt.store import io, merge, runlog  # noqa: E402
from partner_hunt.store.locations import Locations, TableRef  # noqa: E402
from partner_hunt.store.predicates import equality_predicate  # noqa: E402
from tests.naive_kql import naive_hunt  # noqa: E402

# A fixed end keeps cached lakes reusable across days.
LAKE_END = datetime(2026, 1, 1, tzinfo=timezone.utc)
SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.adaptive.enabled": "true",
    # The bounded-memory check: every Spark figure here is measured with a 1 GiB driver.
    "spark.driver.memory": "1g",
    # As in conf/local.yml: Delta state rebuilds on one machine need no 50-partition shuffle.
    "spark.databricks.delta.snapshotPartitions": "4",
}
VARIANTS = ("run", "naive", "duckdb", "scan")


# --------------------------------------------------------------------------------------------
# Lakes


def lake_dir(out_dir: Path, rows: int, days: int, seed: int) -> Path:
    return out_dir / f"lake-{rows}-d{days}-s{seed}"


def ensure_lake(spark: SparkSession, out_dir: Path, rows: int, days: int, seed: int) -> tuple[Path, float]:
    """The cached lake's MessageEvents path (generated if missing); seconds spent generating."""
    base = lake_dir(out_dir, rows, days, seed)
    marker = base / "lake.json"
    meta = {"rows": rows, "days": days, "seed": seed, "end": LAKE_END.isoformat()}
    path = base / "message_events"
    if marker.is_file() and json.loads(marker.read_text()) == meta:
        return path, 0.0
    shutil.rmtree(base, ignore_errors=True)
    started = time.perf_counter()
    events_df = sample.generate_events(spark, rows, days=days, seed=seed, end=LAKE_END)
    io.overwrite(events_df, TableRef(str(path), True))
    marker.write_text(json.dumps(meta))
    return path, time.perf_counter() - started


def parquet_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.glob("*.parquet"))


# --------------------------------------------------------------------------------------------
# Memory and plans


def jvm_pid() -> int | None:
    """The local driver JVM: the java process among this process's descendants."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            if "java" in child.name():
                return child.pid
        except psutil.Error:
            continue
    return None


class PeakRss:
    """Peak resident memory of one process between `reset()` and `peak_mb()` (Linux VmHWM)."""

    def __init__(self, pid: int | None):
        self.pid = pid

    def reset(self) -> None:
        if self.pid is None:
            return
        try:
            # "5" resets the peak-RSS watermark (proc(5), clear_refs).
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            pass

    def peak_mb(self) -> float | None:
        if self.pid is None:
            return None
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None


def self_peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def source_scans(df: DataFrame) -> int:
    """How many times the physical plan scans a file source (FileScan / Scan nodes)."""
    plan = df._jdf.queryExecution().executedPlan().toString()
    # With AQE on, the string holds the initial plan only until the query has run.
    return sum(1 for line in plan.splitlines() if "FileScan" in line or "Scan parquet" in line)


# --------------------------------------------------------------------------------------------
# The variants


def bench_config(source: Path, output: Path, analyst: bool = False) -> Config:
    """The benchmark's config: hunt only (evidence and alerts off), or with `analyst` the defaults."""
    from partner_hunt.config import AlertSettings, EvidenceSettings

    config = Config(source=str(source), output=str(output), spark=SparkSettings(conf=dict(SPARK_CONF)))
    if analyst:
        return config
    return replace(config, evidence=EvidenceSettings(enabled=False), alerts=AlertSettings(enabled=False))


def run_query(spark: SparkSession, config: Config) -> DataFrame:
    """What `run.run` computes for its results table, up to (not including) the writes.

    The same public calls as `run.run` makes, in the same order: read_source (contract check, Delta
    version pin, column pruning), the window, to_canonical with the quality observation, the
    quarantine filter, the explode, the aggregation, the exclusions and the run columns.
    """
    return plan_window(spark, config, runlog.new_report(config, "bench")).results_df


def naive_query(spark: SparkSession, source: Path) -> DataFrame:
    return naive_hunt(spark.read.format("delta").load(str(source)))


def scan_bound(spark: SparkSession, source: Path) -> DataFrame:
    """Read what the hunt needs and touch every recipient address: the floor for any plan."""
    events_df = spark.read.format("delta").load(str(source))
    addresses = F.col("RecipientDetails.RecipientSmtpAddress")
    return events_df.agg(
        # array_join rather than an `aggregate` lambda: higher-order functions have no generated
        # code and would take the bound itself out of whole-stage codegen, flattering every ratio.
        F.sum(F.length(F.array_join(addresses, ""))).alias("chars"),
        F.count_if(F.col("IsExternalThread") & F.col("IsOwnedThread")).alias("out"),
        F.count_if(F.col("ThreatTypes") != F.lit("")).alias("threats"),
        F.max("Timestamp").alias("last"),
    )


DUCKDB_SQL = """
WITH events AS (
    SELECT IsOwnedThread AS owned,
           -- mv-expand: a null array is one row with a null address, an empty one is no row
           unnest(coalesce(list_transform(RecipientDetails, lambda r: r.RecipientSmtpAddress), [NULL::VARCHAR])) AS addr
    FROM read_parquet(?)
    WHERE IsExternalThread AND (IsOwnedThread OR (NOT IsOwnedThread AND coalesce(ThreatTypes, '') <> ''))
),
counts AS (
    SELECT coalesce(str_split(addr, '@')[2], '') AS SenderFromDomain,
           count_if(owned) AS OutboundTeamsMessages,
           count_if(NOT owned) AS IncomingTeamsMessagesWithThreats
    FROM events GROUP BY 1
)
SELECT SenderFromDomain, OutboundTeamsMessages, IncomingTeamsMessagesWithThreats
FROM counts WHERE OutboundTeamsMessages > 0 AND IncomingTeamsMessagesWithThreats > 0
"""


def duckdb_rows(con: Any, source: Path) -> list[tuple]:
    from deltalake import DeltaTable

    files = DeltaTable(str(source)).file_uris()
    return con.execute(DUCKDB_SQL, [files]).fetchall()


def noop(df: DataFrame) -> None:
    df.write.format("noop").mode("overwrite").save()


def result_set(rows: list[Any]) -> set[tuple]:
    return {(r[0], int(r[1]), int(r[2])) for r in rows}


# --------------------------------------------------------------------------------------------
# In-process timing


def bench_size(spark: SparkSession, source: Path, rows: int, repeats: int, out_dir: Path) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    config = bench_config(source, out_dir / "tmp" / "results")
    mem = PeakRss(jvm_pid())
    spark_variants: dict[str, Callable[[], DataFrame]] = {
        "run": lambda: run_query(spark, config),
        "naive": lambda: naive_query(spark, source),
        "scan": lambda: scan_bound(spark, source),
    }

    def time_once(name: str) -> tuple[float, float | None]:
        mem.reset()
        started = time.perf_counter()
        if name == "duckdb":
            duckdb_rows(con, source)
        else:
            noop(spark_variants[name]())
        return time.perf_counter() - started, mem.peak_mb()

    # Warm-up round (JIT, Delta log cache, DuckDB's file metadata), not counted.
    for name in VARIANTS:
        time_once(name)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    peaks: dict[str, float] = {}
    for _ in range(repeats):
        for name in VARIANTS:
            seconds, peak = time_once(name)
            times[name].append(seconds)
            if peak is not None:
                peaks[name] = max(peaks.get(name, 0.0), peak)

    # Correctness and plan shape, outside the timed rounds. The results are one row per domain.
    run_rows = result_set(
        [(r.SenderFromDomain, r.OutboundTeamsMessages, r.IncomingTeamsMessagesWithThreats) for r in run_query(spark, config).collect()]
    )
    naive_rows = result_set(
        [(r.SenderFromDomain, r.OutboundTeamsMessages, r.IncomingTeamsMessagesWithThreats) for r in naive_query(spark, source).collect()]
    )
    duck_rows = result_set(duckdb_rows(con, source))
    recipient_rows = (
        spark.read.format("delta").load(str(source))
        .select(F.sum(F.size(F.coalesce(F.col("RecipientDetails"), F.array(F.lit(None)))).cast("long")).alias("n"))
        .first()["n"]
    )
    result: dict[str, Any] = {
        "rows": rows,
        "parquet_mb": round(parquet_bytes(source) / 2**20, 1),
        "recipient_rows": int(recipient_rows),
        "result_rows": len(run_rows),
        "results_equal": run_rows == naive_rows == duck_rows,
        "variants": {},
    }
    for name in VARIANTS:
        entry: dict[str, Any] = {"seconds": [round(t, 3) for t in times[name]], "median": round(statistics.median(times[name]), 3)}
        if name in spark_variants:
            entry["source_scans"] = source_scans(spark_variants[name]())
            entry["driver_peak_rss_mb"] = round(peaks[name], 0) if name in peaks else None
        else:
            entry["python_peak_rss_mb"] = round(self_peak_mb(), 0)
        result["variants"][name] = entry
    med = {n: result["variants"][n]["median"] for n in VARIANTS}
    result["ratios"] = {
        "run_over_scan": round(med["run"] / med["scan"], 2),
        "naive_over_run": round(med["naive"] / med["run"], 2),
        "run_over_duckdb": round(med["run"] / med["duckdb"], 2),
        "naive_over_scan": round(med["naive"] / med["scan"], 2),
    }
    con.close()
    return result


# --------------------------------------------------------------------------------------------
# Whole process


def _tree_rss_mb(proc: Any) -> float:
    import psutil

    total = 0
    try:
        for p in [proc, *proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total / 2**20


def timed_process(cmd: list[str], cwd: Path) -> dict[str, Any]:
    """Wall time from spawn to exit, and the peak RSS of the process tree (sampled every 0.2 s)."""
    import psutil

    peak = 0.0
    started = time.perf_counter()
    # This checkout's lib first, so the processes run the code under test (not an installed copy).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    handle = psutil.Process(proc.pid)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.append(proc.stdout.read()), daemon=True)
    reader.start()
    while proc.poll() is None:
        peak = max(peak, _tree_rss_mb(handle))
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    reader.join(timeout=5)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{''.join(output)[-3000:]}")
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak, 0)}


PROCESS_JOBS = ("hunt-only run", "default run", "naive job")


def _process_configs(work: Path) -> tuple[Path, Path]:
    """YAML configs for the whole-process commands: hunt only, and the defaults (analyst outputs on)."""
    conf_lines = "\n".join(f'    {k}: "{v}"' for k, v in SPARK_CONF.items())
    spark_yaml = f"spark:\n  master: local[*]\n  conf:\n{conf_lines}\n"
    lean_config = work / "hunt-only.yml"
    lean_config.write_text(spark_yaml + "evidence:\n  enabled: false\nalerts:\n  enabled: false\n")
    full_config = work / "default.yml"
    full_config.write_text(spark_yaml)
    return lean_config, full_config


def _cli() -> list[str]:
    return [sys.executable, "-m", "partner_hunt.cli"]


def _naive_cmd(source: Path, output: Path) -> list[str]:
    return [sys.executable, str(ROOT / "tests" / "naive_kql.py"), "--source", str(source), "--output", str(output), "--driver-memory", "1g"]


def delta_commits_by_path(paths: dict[str, Path], since: float) -> list[dict[str, Any]]:
    """Commits made to Delta tables (by path) since `since` (epoch seconds), read with deltalake, not Spark."""
    from deltalake import DeltaTable

    out = []
    for label, path in paths.items():
        if not (path / "_delta_log").is_dir():
            continue
        for entry in DeltaTable(str(path)).history(20):
            if entry.get("timestamp", 0) / 1000 >= since:
                out.append({"table": label, "version": entry.get("version"), "operation": entry.get("operation")})
    return out


def _state_paths(output: Path) -> dict[str, Path]:
    """The tables a run writes beside a path output (partner-hunt's default locations)."""
    siblings = ("run_log", "evidence", "alerts", "partials", "quarantine", "partners")
    return {"output": output, **{label: output.with_name(f"{output.name}_{label}") for label in siblings}}


def bench_processes(source: Path, out_dir: Path, repeats: int) -> dict[str, Any]:
    """Whole processes, as a scheduler starts them: `partner-hunt run` hunt only, with the defaults
    (evidence and alerts on), and the naive job, all with a 1 GiB driver on the same lake,
    alternating, each writing into its own tables (reruns replace the same window, as nightly)."""
    work = Path(tempfile.mkdtemp(prefix="procs-", dir=out_dir))
    lean_config, full_config = _process_configs(work)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in PROCESS_JOBS}
    commits: dict[str, list[dict[str, Any]]] = {}
    try:
        for _ in range(repeats):
            for j, name in enumerate(PROCESS_JOBS):
                output = work / f"job{j}" / "results"
                if name == "naive job":
                    cmd = _naive_cmd(source, output)
                else:
                    config_file = lean_config if name == "hunt-only run" else full_config
                    cmd = [*_cli(), "run", "--config", str(config_file), "--source", str(source), "--output", str(output), "--top", "5"]
                since = time.time()
                runs[name].append({**timed_process(cmd, ROOT), "load": load_average()})
                commits[name] = delta_commits_by_path(_state_paths(output), since)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result: dict[str, Any] = {
        name: {
            "seconds": [r["seconds"] for r in rs],
            "load": [r["load"] for r in rs],
            "median": round(statistics.median(r["seconds"] for r in rs), 2),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
            "delta_commits_last_run": commits.get(name, []),
        }
        for name, rs in runs.items()
    }
    naive = result["naive job"]["median"]
    result["default_over_naive"] = round(result["default run"]["median"] / naive, 2)
    result["hunt_only_over_naive"] = round(result["hunt-only run"]["median"] / naive, 2)
    return result


def bench_process_refresh(spark: SparkSession, source: Path, rows: int, days: int, seed: int, repeats: int, out_dir: Path) -> dict[str, Any]:
    """Whole process: `partner-hunt run --incremental` with the defaults (evidence and alerts on)
    after one appended day, against the naive job recomputing the whole lake (the window and more).

    On a copy of the lake, partials backfilled once in this process (not timed); then per round one
    new day of rows/days rows is appended (not timed) and the two processes are timed, alternating.
    """
    from partner_hunt.config import HuntSettings

    work = out_dir / f"process-refresh-{rows}"
    shutil.rmtree(work, ignore_errors=True)
    lake = work / "message_events"
    _copy_lake(source, lake)
    _, full_config = _process_configs(work)
    output = work / "results"
    first_day = (LAKE_END - timedelta(days=days)).date()
    started = time.perf_counter()
    backfill.backfill(spark, replace(bench_config(lake, output, analyst=True), hunt=HuntSettings(backfill_batch_days=days)), first_day, LAKE_END.date())
    backfill_seconds = time.perf_counter() - started
    per_day = max(1, rows // days)
    runs: dict[str, list[dict[str, Any]]] = {"default refresh": [], "naive job": []}
    kinds, commits = [], []
    for k in range(repeats):
        day_end = LAKE_END + timedelta(days=k + 1)
        io.append(sample.generate_events(spark, per_day, days=1, seed=seed + 1000 + k, end=day_end), TableRef(str(lake), True))
        cmd = [
            *_cli(), "run", "--incremental", "--config", str(full_config), "--source", str(lake), "--output", str(output),
            "--end", day_end.date().isoformat(), "--trailing-days", str(days), "--top", "5",
        ]
        since = time.time()
        runs["default refresh"].append({**timed_process(cmd, ROOT), "load": load_average()})
        commits = delta_commits_by_path(_state_paths(output), since)
        runs["naive job"].append({**timed_process(_naive_cmd(lake, work / "naive" / "results"), ROOT), "load": load_average()})
        log_df = io.read_table(spark, TableRef(str(_state_paths(output)["run_log"]), True))
        last = log_df.orderBy(F.col("StartedAt").desc()).select("RefreshKind", "RefreshReason", "DaysComputed", "RowsRead").first()
        kinds.append({"kind": last["RefreshKind"], "reason": last["RefreshReason"], "days": [d.isoformat() for d in last["DaysComputed"]], "rows_read": last["RowsRead"]})
    result: dict[str, Any] = {
        "rows": rows,
        "backfill_seconds": round(backfill_seconds, 1),
        "refresh_runs": kinds,
        "delta_commits_last_refresh": commits,
    }
    for name, rs in runs.items():
        result[name] = {
            "seconds": [r["seconds"] for r in rs],
            "load": [r["load"] for r in rs],
            "median": round(statistics.median(r["seconds"] for r in rs), 2),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
        }
    result["naive_over_refresh"] = round(result["naive job"]["median"] / result["default refresh"]["median"], 2)
    shutil.rmtree(work, ignore_errors=True)
    return result


# --------------------------------------------------------------------------------------------
# In-process commands, with their Spark jobs and Delta operations

# (module, function): each a read of a Delta table's metadata (its log, its detail or its history).
METADATA_CALLS = (
    (io, "table_exists"),
    (io, "table_version"),
    (io, "_detail"),
    (io, "read_table"),
    (io, "last_commit_metrics"),
    (io, "table_properties"),
    (merge, "_add_missing_columns"),
)


class DeltaOps:
    """Counts partner-hunt's metadata reads through io.py (existence checks, version pins,
    DESCRIBE DETAIL, snapshot loads for a read, schema reads before a MERGE), with their durations.

    Nested calls are counted each (a read_table checks existence first), so times overlap.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self._saved: dict[str, Any] = {}

    def __enter__(self) -> DeltaOps:
        for module, name in METADATA_CALLS:
            original = getattr(module, name)
            self._saved[name] = (module, original)

            def wrapped(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.calls.append((_name, time.perf_counter() - t0))

            setattr(module, name, wrapped)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, (module, original) in self._saved.items():
            setattr(module, name, original)

    def summary(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for name, seconds in self.calls:
            entry = out.setdefault(name, {"calls": 0, "seconds": 0.0})
            entry["calls"] += 1
            entry["seconds"] = round(entry["seconds"] + seconds, 3)
        return out


def profile(spark: SparkSession, command: Callable[[], Any], tables: dict[str, TableRef]) -> tuple[float, dict[str, Any], Any]:
    """Run one command: its seconds, its Spark jobs, Delta commits and metadata reads, its return."""
    before_job, wall_start = last_job_id(spark), datetime.now()
    with DeltaOps() as ops:
        t0 = time.perf_counter()
        value = command()
        seconds = time.perf_counter() - t0
    breakdown = {
        "spark_jobs": spark_jobs_after(spark, before_job),
        "delta_commits": delta_commits_since(spark, tables, wall_start),
        "metadata_reads": ops.summary(),
    }
    return seconds, breakdown, value


def _tables(config: Config) -> dict[str, TableRef]:
    loc = Locations.from_config(config)
    return {n: getattr(loc, n) for n in ("source", "partials", "output", "run_log", "quarantine", "evidence", "alerts")}


COMMANDS = ("hunt-only run", "default run", "naive job")


def bench_commands(spark: SparkSession, source: Path, rows: int, repeats: int, out_dir: Path) -> dict[str, Any]:
    """In process, with their writes: `run.run` hunt only, `run.run` with the defaults
    (evidence and alerts on), and the naive job writing its results to Delta; one warm-up round,
    then `repeats` alternating rounds. Each command reruns into its own tables (nightly reruns of
    the same window), and the last round's breakdown is kept."""
    work = out_dir / f"commands-{rows}"
    shutil.rmtree(work, ignore_errors=True)
    lean = bench_config(source, work / "lean" / "results")
    default = bench_config(source, work / "default" / "results", analyst=True)
    naive_out = TableRef(str(work / "naive" / "results"), True)
    commands: dict[str, tuple[Callable[[], Any], dict[str, TableRef]]] = {
        "hunt-only run": (lambda: run.run(spark, lean), _tables(lean)),
        "default run": (lambda: run.run(spark, default), _tables(default)),
        "naive job": (lambda: naive_query(spark, source).write.format("delta").mode("overwrite").save(naive_out.location), {"output": naive_out}),
    }
    times: dict[str, list[float]] = {c: [] for c in COMMANDS}
    loads: dict[str, list[list[float]]] = {c: [] for c in COMMANDS}
    breakdowns: dict[str, dict[str, Any]] = {}
    for k in range(repeats + 1):
        for name in COMMANDS:
            command, tables = commands[name]
            seconds, breakdown, _ = profile(spark, command, tables)
            if k:
                times[name].append(seconds)
                loads[name].append(load_average())
            breakdowns[name] = breakdown

    def stored(ref: TableRef) -> set[tuple]:
        return result_set([(r.SenderFromDomain, r.OutboundTeamsMessages, r.IncomingTeamsMessagesWithThreats) for r in io.read_table(spark, ref).collect()])

    result: dict[str, Any] = {
        "rows": rows,
        "results_equal": stored(Locations.from_config(lean).output) == stored(Locations.from_config(default).output) == stored(naive_out),
        "evidence_rows": io.read_table(spark, Locations.from_config(default).evidence).count(),
    }
    for name in COMMANDS:
        result[name] = {
            "seconds": [round(t, 2) for t in times[name]],
            "load": loads[name],
            "median": round(statistics.median(times[name]), 2),
            "breakdown": breakdowns[name],
        }
    result["default_over_hunt_only"] = round(result["default run"]["median"] / result["hunt-only run"]["median"], 2)
    result["default_over_naive"] = round(result["default run"]["median"] / result["naive job"]["median"], 2)
    shutil.rmtree(work, ignore_errors=True)
    return result


# --------------------------------------------------------------------------------------------
# Incremental cost


def _copy_lake(source: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)


def _rows_read(spark: SparkSession, config: Config, run_id: str) -> int:
    """RowsRead of one run, as its run-log row records it."""
    log_df = io.read_table(spark, Locations.from_config(config).run_log)
    return int(log_df.filter(F.col("RunId") == F.lit(run_id)).select("RowsRead").first()["RowsRead"])


def commit_floor(spark: SparkSession, written: runlog.RunReport, target: Locations) -> float:
    """Seconds to commit `written`'s results window and one run-log row again, into `target`'s
    tables: the writes every refresh makes, without any of its reads or computation."""
    rows_df = io.read_window_rows(spark, written.locations.output, written.window_key()).cache()
    try:
        rows_df.count()
        logged = replace(written, locations=target)
        started = time.perf_counter()
        io.replace_where(rows_df, target.output, equality_predicate(written.window_key()))
        runlog.write_run_log(spark, logged)
        return time.perf_counter() - started
    finally:
        rows_df.unpersist()


def last_job_id(spark: SparkSession) -> int:
    """The highest Spark job id the driver has seen so far (-1 before any job)."""
    jobs = spark.sparkContext._jsc.sc().statusStore().jobsList(None)
    return max((jobs.apply(i).jobId() for i in range(jobs.size())), default=-1)


def spark_jobs_after(spark: SparkSession, after_job: int) -> list[dict[str, Any]]:
    """The Spark jobs with an id above `after_job`: id, the call site that ran it, seconds.

    Read from the driver's status store (py4j, classic Spark only: a benchmark, not the job),
    which keeps job times even with the UI off.
    """
    jobs = spark.sparkContext._jsc.sc().statusStore().jobsList(None)
    out = []
    for i in range(jobs.size()):
        job = jobs.apply(i)
        if job.jobId() <= after_job:
            continue
        submitted, completed = job.submissionTime(), job.completionTime()
        seconds = (
            (completed.get().getTime() - submitted.get().getTime()) / 1000
            if submitted.isDefined() and completed.isDefined()
            else None
        )
        description = job.description().get() if job.description().isDefined() else ""
        out.append({"job": job.jobId(), "seconds": seconds, "name": str(job.name()), "description": str(description)})
    return sorted(out, key=lambda j: j["job"])


def delta_commits_since(spark: SparkSession, tables: dict[str, TableRef], since: datetime) -> list[dict[str, Any]]:
    """The Delta commits made to `tables` from `since` on: table, version, operation, its own time."""
    out = []
    for label, ref in tables.items():
        if not io.table_exists(spark, ref):
            continue
        history = spark.sql(f"DESCRIBE HISTORY {io.sql_identifier(ref)} LIMIT 20").collect()
        for row in history:
            if row.timestamp.replace(tzinfo=None) < since.replace(tzinfo=None):
                continue
            metrics = row.operationMetrics or {}
            millis = metrics.get("executionTimeMs")
            out.append(
                {
                    "table": label,
                    "version": row.version,
                    "operation": row.operation,
                    "committed_at": row.timestamp.isoformat(),
                    "execution_seconds": round(int(millis) / 1000, 2) if millis else None,
                }
            )
    return sorted(out, key=lambda c: c["committed_at"])


def bench_incremental(spark: SparkSession, source: Path, rows: int, days: int, seed: int, repeats: int, out_dir: Path) -> dict[str, Any]:
    """Refresh a `days`-day report after one new day lands (daily partials) vs recompute it from raw.

    On a copy of the lake: backfill the partials of every day once (not timed), then per round one
    new day of data (rows/days rows) is appended, and, warm and with their writes, alternating:
      incremental      `refresh.run_incremental` over the trailing `days` window ending with the
                       new day, evidence and alerts off (it reads only the changed days, then rolls up);
      default refresh  the same with the defaults (evidence and alerts on), on its own tables;
      recompute        `run.run` over the same window from the raw source, evidence and alerts off.
    The share of source rows read comes from each run's run-log row (RowsRead).

    Also timed, as the floor under any refresh: the two Delta commits that both paths must make
    whatever they compute, i.e. replacing the window's rows in a results table and appending one
    run-log row (on tables of their own, warmed up like the real ones).
    """
    from partner_hunt.config import HuntSettings
    from partner_hunt.core import partials

    work = out_dir / f"incremental-{rows}"
    shutil.rmtree(work, ignore_errors=True)
    lake = work / "message_events"
    _copy_lake(source, lake)
    base = bench_config(lake, work / "lean" / "results")
    analyst = bench_config(lake, work / "default" / "results", analyst=True)
    full = bench_config(lake, work / "full" / "results")
    first_day = (LAKE_END - timedelta(days=days)).date()
    started = time.perf_counter()
    # One batch: the lake's files each span every day, so a batch per day would rescan it 90 times.
    for config in (base, analyst):
        backfill.backfill(spark, replace(config, hunt=HuntSettings(backfill_batch_days=days)), first_day, LAKE_END.date())
    backfill_seconds = time.perf_counter() - started

    per_day = max(1, rows // days)
    names = ("incremental", "default refresh", "recompute", "commit_floor")
    timings: dict[str, list[float]] = {n: [] for n in names}
    loads: dict[str, list[list[float]]] = {n: [] for n in names}
    shares: dict[str, list[float]] = {"incremental": [], "default refresh": [], "recompute": []}
    breakdowns: dict[str, Any] = {}
    floor = bench_config(lake, work / "floor" / "results")
    total_rows = rows
    # Round 0 warms every path up and is not counted.
    for k in range(repeats + 1):
        day_end = LAKE_END + timedelta(days=k + 1)
        new_day_df = sample.generate_events(spark, per_day, days=1, seed=seed + 1000 + k, end=day_end)
        io.append(new_day_df, TableRef(str(lake), True))
        total_rows += per_day
        window = HuntSettings(start=day_end - timedelta(days=days), end=day_end, trailing_days=days)
        measured: dict[str, float] = {}
        for name, config in (("incremental", base), ("default refresh", analyst)):
            seconds, breakdown, report = profile(spark, lambda c=config, w=window: refresh.run_incremental(spark, replace(c, hunt=w)), _tables(config))
            breakdowns[name] = {"refresh_kind": report.refresh_kind, "refresh_reason": report.refresh_reason, **breakdown}
            measured[name] = seconds
            if k:
                shares[name].append(_rows_read(spark, config, report.run_id) / total_rows)
        seconds, breakdown, full_report = profile(spark, lambda w=window: run.run(spark, replace(full, hunt=w)), _tables(full))
        breakdowns["recompute"] = breakdown
        measured["recompute"] = seconds
        measured["commit_floor"] = commit_floor(spark, full_report, Locations.from_config(floor))
        if k == 0:
            continue
        for name, seconds in measured.items():
            timings[name].append(seconds)
            loads[name].append(load_average())
        shares["recompute"].append(_rows_read(spark, full, full_report.run_id) / total_rows)

    # The paths must agree on the last window.
    def last_window(config: Config) -> set[tuple]:
        key = {"WindowStart": window.start, "WindowEnd": window.end, "Mode": "kql"}
        return result_set(
            [
                (r.SenderFromDomain, r.OutboundTeamsMessages, r.IncomingTeamsMessagesWithThreats)
                for r in io.read_window_rows(spark, Locations.from_config(config).output, key).collect()
            ]
        )

    result: dict[str, Any] = {
        "rows": rows,
        "window_days": days,
        "new_day_rows": per_day,
        "backfill_seconds": round(backfill_seconds, 1),
        "results_equal": last_window(base) == last_window(full) == last_window(analyst),
        "variant": partials.variant("kql", False, False, False),
        "breakdowns": breakdowns,
    }
    for name in timings:
        result[name] = {
            "seconds": [round(t, 2) for t in timings[name]],
            "load": loads[name],
            "median": round(statistics.median(timings[name]), 2),
        }
        if name in shares:
            result[name]["share_of_rows_read"] = round(max(shares[name]), 4)
    result["recompute_over_incremental"] = round(result["recompute"]["median"] / result["incremental"]["median"], 2)
    result["recompute_over_default_refresh"] = round(result["recompute"]["median"] / result["default refresh"]["median"], 2)
    result["recompute_over_commit_floor"] = round(result["recompute"]["median"] / result["commit_floor"]["median"], 1)
    shutil.rmtree(work, ignore_errors=True)
    return result


# --------------------------------------------------------------------------------------------
# Report


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    import psutil
    import pyspark

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "java": java[0] if java else None,
        "spark": pyspark.__version__,
        "master": "local[*]",
        "platform": platform.platform(),
    }


def print_table(results: dict[str, Any]) -> None:
    print()
    if "ingest" in results:
        ing = results["ingest"]
        print(f"ingest of a storage export, {ing['rows']:,} events ({ing['export_mb']} MB of JSON Lines), medians:")
        for name, seconds in ing["median_seconds"].items():
            print(f"  {name:<16} {seconds:>8.2f} s")
        print(f"  ingest throughput / spark.read.json throughput {ing['ingest_throughput_over_json']}x (target: >= 0.5)")
        print(f"  one new hour, into the full table / into an empty one {ing['hour_full_over_empty']}x (target: <= 2)")
    print(f"load average (1, 5, 15 min) before/after: {results['load_before']} / {results.get('load_after')}")
    for size in results["sizes"]:
        print()
        print(
            f"query at {size['rows']:,} rows ({size['parquet_mb']} MB Parquet, {size['recipient_rows']:,} recipient rows, "
            f"{size['result_rows']} result rows, results equal: {size['results_equal']}), no writes:"
        )
        print(f"  {'variant':<8} {'median s':>9} {'x scan':>7} {'scans':>6} {'peak RSS MB':>12}   runs")
        scan = size["variants"]["scan"]["median"]
        for name in VARIANTS:
            v = size["variants"][name]
            rss = v.get("driver_peak_rss_mb", v.get("python_peak_rss_mb"))
            scans = v.get("source_scans", "-")
            runs = ", ".join(f"{t:.2f}" for t in v["seconds"])
            print(f"  {name:<8} {v['median']:>9.3f} {v['median'] / scan:>7.2f} {scans!s:>6} {rss!s:>12}   {runs}")
        r = size["ratios"]
        print(f"  run/scan {r['run_over_scan']}x, naive/run {r['naive_over_run']}x, run/duckdb {r['run_over_duckdb']}x")
    for c in results.get("commands", []):
        print()
        print(f"in process at {c['rows']:,} rows, with writes (results equal: {c['results_equal']}; evidence rows {c['evidence_rows']}):")
        for name in COMMANDS:
            v = c[name]
            print(f"  {name:<14} median {v['median']:>6.2f} s  runs {v['seconds']}  load {[x[0] for x in v['load']]}")
        print(f"  default run / hunt-only run {c['default_over_hunt_only']}x (target at 10M: <= 1.15)")
        print(f"  default run / naive job {c['default_over_naive']}x")
        for name in COMMANDS:
            print_breakdown(name, c[name]["breakdown"])
    if "incremental" in results:
        print()
        inc = results["incremental"]
        print(
            f"incremental at {inc['rows']:,} rows, {inc['window_days']}-day window, one new day of "
            f"{inc['new_day_rows']:,} rows (backfill once: {inc['backfill_seconds']} s; results equal: {inc['results_equal']}):"
        )
        for name in ("incremental", "default refresh", "recompute"):
            v = inc[name]
            print(f"  {name:<16} median {v['median']:>6.2f} s  rows read {v['share_of_rows_read']:.2%} of the source  runs {v['seconds']}  load {[x[0] for x in v['load']]}")
        v = inc["commit_floor"]
        print(f"  {'commit floor':<16} median {v['median']:>6.2f} s  (results replace + run-log append only)  runs {v['seconds']}")
        print(f"  recompute/incremental {inc['recompute_over_incremental']}x (target at 10M: >= 2; rows read <= 1/30 = 3.33%)")
        print(f"  recompute/default refresh {inc['recompute_over_default_refresh']}x")
        print(f"  recompute/commit floor {inc['recompute_over_commit_floor']}x: no refresh that commits its results and run log can beat this")
        for name in ("incremental", "default refresh", "recompute"):
            print_breakdown(name, inc["breakdowns"][name])
    if "process" in results:
        p = results["process"]
        print()
        print(f"whole process at {p['rows']:,} rows (spark.driver.memory=1g), alternating:")
        for name in PROCESS_JOBS:
            v = p[name]
            print(f"  {name:<16} median {v['median']:>6.2f} s  peak tree RSS {v['peak_rss_mb']:.0f} MB  runs {v['seconds']}  load {[x[0] for x in v['load']]}")
            if v["delta_commits_last_run"]:
                ops = ", ".join(f"{c['table']} {c['operation']}" for c in v["delta_commits_last_run"])
                print(f"    its {len(v['delta_commits_last_run'])} Delta commits: {ops}")
        print(f"  default run / naive job {p['default_over_naive']}x (target: <= 1.1); hunt-only / naive {p['hunt_only_over_naive']}x")
    if "process_refresh" in results:
        p = results["process_refresh"]
        print()
        print(f"whole process refresh at {p['rows']:,} rows, one appended day per round (backfill once: {p['backfill_seconds']} s):")
        for name in ("default refresh", "naive job"):
            v = p[name]
            print(f"  {name:<16} median {v['median']:>6.2f} s  peak tree RSS {v['peak_rss_mb']:.0f} MB  runs {v['seconds']}  load {[x[0] for x in v['load']]}")
        for r in p["refresh_runs"]:
            print(f"    refresh: {r['kind']} ({r['reason']}), days {r['days']}, rows read {r['rows_read']:,}")
        ops = ", ".join(f"{c['table']} {c['operation']}" for c in p["delta_commits_last_refresh"])
        print(f"    last refresh's {len(p['delta_commits_last_refresh'])} Delta commits: {ops}")
        print(f"  naive job / default refresh {p['naive_over_refresh']}x (target: >= 1.5)")
    print()
    print(f"total benchmark time {results['total_seconds']:.0f} s")


def print_breakdown(name: str, breakdown: dict[str, Any]) -> None:
    """One command's Spark jobs, Delta commits and metadata reads, with their durations."""
    jobs = breakdown["spark_jobs"]
    timed = [j["seconds"] for j in jobs if j["seconds"] is not None]
    kind = f" [{breakdown['refresh_kind']}: {breakdown['refresh_reason']}]" if breakdown.get("refresh_kind") else ""
    print(f"  {name}{kind}: {len(jobs)} Spark jobs ({sum(timed):.2f} s, jobs may overlap)")
    for j in jobs:
        seconds = f"{j['seconds']:6.2f} s" if j["seconds"] is not None else "     ? s"
        print(f"    job {j['job']:>5} {seconds}  {j['name'][:60]}  {' '.join(j['description'].split())[:50]}")
    print(f"    {len(breakdown['delta_commits'])} Delta commits:")
    for c in breakdown["delta_commits"]:
        took = f"{c['execution_seconds']:.2f} s" if c["execution_seconds"] is not None else "-"
        print(f"      {c['table']:<10} v{c['version']:<5} {c['operation']:<20} execution {took}")
    reads = breakdown["metadata_reads"]
    text = ", ".join(f"{n} x{v['calls']} ({v['seconds']:.2f} s)" for n, v in sorted(reads.items()))
    print(f"    metadata reads through io.py: {text or 'none'}")


SECTIONS = ("query", "commands", "incremental", "process", "process-refresh", "ingest", "scale", "signals")


def bench_ingest(spark: SparkSession, out_dir: Path, rows: int, days: int, seed: int, repeats: int) -> dict[str, Any]:
    """The ingest's throughput against the plain JSON read it has to beat, and its cost per new hour.

    Baseline: `spark.read.json` of the export folder, its MessageEvents records' properties written
    to a fresh Delta table, with no deduplication, no quarantine and no offsets. The ingest writes a
    fresh table each round too. Then one new hour (about rows / (days x 24) events) is ingested into
    the full table and, for comparison, into an empty one: the dedupe must not rescan the table.
    """
    from partner_hunt.commands.steps.ingest import ingest_folder
    from partner_hunt.core.landed import MESSAGE_EVENTS_CATEGORY
    from partner_hunt.store import landing

    base = out_dir / f"export-{rows}-d{days}-s{seed}"
    folder = base / "insights-logs-advancedhunting-messageevents"
    hour = base / "new-hour"
    marker = base / "export.json"
    meta = {"rows": rows, "days": days, "seed": seed, "end": LAKE_END.isoformat()}
    if not (marker.is_file() and json.loads(marker.read_text()) == meta):
        shutil.rmtree(base, ignore_errors=True)
        started = time.perf_counter()
        events_df = sample.generate_events(spark, rows, days=days, seed=seed, end=LAKE_END)
        landing.write_local_export(sample.export_lines(events_df), str(folder))
        # The first hour after the lake: a day's worth generated, its first hour kept.
        next_df = sample.generate_events(spark, max(24, rows // days), days=1, seed=seed + 1, end=LAKE_END + timedelta(days=1))
        first_hour = next_df.filter(F.col("Timestamp") < F.lit(LAKE_END + timedelta(hours=1)))
        landing.write_local_export(sample.export_lines(first_hour), str(hour))
        marker.write_text(json.dumps(meta))
        print(f"generated the export of {rows:,} events in {time.perf_counter() - started:.0f} s: {folder}", flush=True)
    export_bytes = sum(f.stat().st_size for f in folder.rglob("*.json"))
    work = out_dir / "ingest-work"

    def config(name: str) -> Config:
        return bench_config(work / name / "message_events", work / name / "results")

    def ingest_round(name: str, source_folder: Path) -> float:
        started = time.perf_counter()
        report = ingest_folder(spark, config(name), "defender-storage", str(source_folder))
        assert report.status == "succeeded"
        return time.perf_counter() - started

    def json_round(name: str) -> float:
        started = time.perf_counter()
        records = spark.read.option("recursiveFileLookup", "true").json(str(folder))
        flat = records.filter(F.col("category") == F.lit(MESSAGE_EVENTS_CATEGORY)).select("tenantId", "properties.*")
        flat.write.format("delta").mode("overwrite").save(str(work / name / "json_events"))
        return time.perf_counter() - started

    shutil.rmtree(work, ignore_errors=True)
    timings: dict[str, list[float]] = {"ingest": [], "json": [], "hour into full": [], "hour into empty": []}
    for i in range(max(1, repeats)):
        timings["json"].append(json_round(f"r{i}"))
        timings["ingest"].append(ingest_round(f"r{i}", folder))
        timings["hour into full"].append(ingest_round(f"r{i}", hour))
        timings["hour into empty"].append(ingest_round(f"e{i}", hour))
        print(f"  ingest round {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in timings.items()), flush=True)
    med = {k: statistics.median(v) for k, v in timings.items()}
    return {
        "rows": rows,
        "export_mb": round(export_bytes / 2**20, 1),
        "median_seconds": {k: round(v, 2) for k, v in med.items()},
        "runs": {k: [round(x, 2) for x in v] for k, v in timings.items()},
        "ingest_throughput_over_json": round(med["json"] / med["ingest"], 2),
        "hour_full_over_empty": round(med["hour into full"] / med["hour into empty"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated row counts (query, commands; incremental at the largest)")
    parser.add_argument("--process-rows", type=int, default=4_000_000, help="lake size of the whole-process sections")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median reported)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of: {', '.join(SECTIONS)}")
    parser.add_argument("--scale-sizes", default="1000000,4000000,16000000", help="comma-separated lake sizes of the scale section")
    parser.add_argument("--signal-sizes", default="1000000,4000000", help="comma-separated lake sizes of the signals section")
    parser.add_argument("--days", type=int, default=90, help="days the generated lakes span")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default="bench-out/results.json")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    # Checked before a lake is generated or a round is timed: a missing module would otherwise
    # end a run of many minutes with a traceback at the first section that needs it.
    missing = [name for name in ("duckdb", "deltalake", "psutil") if importlib.util.find_spec(name) is None]
    if missing:
        parser.error(f"missing the benchmark's own dependencies ({', '.join(missing)}): pip install -e '.[local,test,bench]', or `make bench`")

    total_started = time.perf_counter()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    out_file = Path(args.out)
    out_dir = out_file.parent.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)

    from partner_hunt.store.session import build_session

    spark = build_session(master="local[*]", app_name="partner-hunt-bench", conf=SPARK_CONF)
    results: dict[str, Any] = {
        "machine": machine(),
        "spark_conf": SPARK_CONF,
        "repeats": args.repeats,
        "sections": sections,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_before": load_average(),
        "sizes": [],
    }
    jvm_max = spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory()
    results["driver_max_heap_mb"] = round(jvm_max / 2**20)
    lakes: dict[int, Path] = {}
    needed = set(sizes) if {"query", "commands", "incremental"} & set(sections) else set()
    if {"process", "process-refresh"} & set(sections):
        needed.add(args.process_rows)
    for rows in sorted(needed):
        source, generated = ensure_lake(spark, out_dir, rows, args.days, args.seed)
        lakes[rows] = source
        if generated:
            print(f"generated {rows:,} rows in {generated:.0f} s: {source}", flush=True)

    def save() -> None:
        # Saved as it goes, so that an interrupted run still leaves its figures.
        out_file.write_text(json.dumps(results, indent=2, default=str))

    if "query" in sections:
        for rows in sizes:
            print(f"timing the query at {rows:,} rows ...", flush=True)
            results["sizes"].append(bench_size(spark, lakes[rows], rows, args.repeats, out_dir))
            save()
    if "commands" in sections:
        results["commands"] = []
        for rows in sizes:
            print(f"timing the commands in process at {rows:,} rows ...", flush=True)
            results["commands"].append(bench_commands(spark, lakes[rows], rows, args.repeats, out_dir))
            save()
    if "incremental" in sections:
        biggest = max(sizes)
        print(f"timing the incremental refresh in process at {biggest:,} rows ...", flush=True)
        results["incremental"] = bench_incremental(spark, lakes[biggest], biggest, args.days, args.seed, args.repeats, out_dir)
        save()
    if "ingest" in sections:
        smallest = min(sizes)
        print(f"timing the ingest of an export of {smallest:,} events ...", flush=True)
        results["ingest"] = bench_ingest(spark, out_dir, smallest, args.days, args.seed, args.repeats)
        save()
    if "scale" in sections:
        from benchmarks.scale import bench_scale_size, print_scale, summarize

        results["scale"] = {"sizes": []}
        for rows in sorted(int(s) for s in args.scale_sizes.split(",") if s.strip()):
            print(f"timing the scale section at {rows:,} rows ...", flush=True)
            results["scale"]["sizes"].append(bench_scale_size(spark, out_dir, rows, args.days, args.seed, args.repeats))
            results["scale"]["summary"] = summarize(results["scale"]["sizes"])
            save()
        print_scale(results["scale"])
    if "signals" in sections:
        from benchmarks.signals import bench_signals_size, print_signals

        results["signals"] = []
        for rows in sorted(int(s) for s in args.signal_sizes.split(",") if s.strip()):
            print(f"timing the refresh with the Teams signal tables at {rows:,} rows ...", flush=True)
            results["signals"].append(bench_signals_size(spark, out_dir, rows, args.days, args.seed, args.repeats))
            save()
        print_signals(results["signals"])
    if "process-refresh" in sections:
        # This session only backfills and appends between the timed processes; it sits idle while they run.
        print(f"timing the whole-process refresh at {args.process_rows:,} rows ...", flush=True)
        results["process_refresh"] = bench_process_refresh(spark, lakes[args.process_rows], args.process_rows, args.days, args.seed, args.repeats, out_dir)
        save()
    spark.stop()
    if "process" in sections:
        print(f"timing whole processes at {args.process_rows:,} rows ...", flush=True)
        results["process"] = {"rows": args.process_rows, **bench_processes(lakes[args.process_rows], out_dir, args.repeats)}
    results["load_after"] = load_average()
    results["total_seconds"] = round(time.perf_counter() - total_started, 1)
    save()
    print_table(results)
    print(f"wrote {out_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
