"""Side-by-side benchmark: partner-hunt's run query, the naive KQL translation, DuckDB and a scan bound.

    .venv/bin/python benchmarks/bench.py [--sizes 1000000,10000000] [--repeats 3] [--out bench-out/results.json]

What it does, in one Python process and one Spark session (local[*], spark.driver.memory=1g):
  * generates seeded MessageEvents Delta lakes (demo.generate_events), cached under bench-out/ and
    reused when the size, days and seed match;
  * per size, after one warm-up round, times `--repeats` rounds of (interleaved, so drift hits all
    variants alike):
      run      what `pipeline.run` computes, without its writes: read_source (contract check, version
               pin, column pruning) -> to_canonical -> quality observations -> quarantine filter ->
               hunt -> finalize_results -> run columns;
      naive    the literal two-scan translation in benchmarks/naive.py;
      duckdb   DuckDB over the Delta table's live Parquet files (deltalake's file_uris);
      scan     a Spark scan bound: reads the needed columns and sums the length of every recipient
               address, so nothing can skip the nested data;
    every Spark variant ends in the same noop sink (`write.format("noop")`), and every timing
    includes building the DataFrame (so `run` pays for its contract check and Delta version pin);
  * reports medians, ratios, the driver JVM's peak RSS per variant, and the number of scans of the
    source in each physical plan, and checks that run, naive and DuckDB give the same rows;
  * whole process, at the largest size: `partner-hunt run` as a subprocess against
    `python benchmarks/naive.py` on the same lake, both writing their results to Delta, with
    spark.driver.memory=1g;
  * incremental cost, when lib/partner_hunt/partials.py exists (see `bench_incremental`).
"""

from __future__ import annotations

import argparse
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
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from benchmarks.naive import naive_hunt  # noqa: E402
from partner_hunt import backfill, demo, incremental, io, pipeline, quality, runlog  # noqa: E402
from partner_hunt.config import Config, SparkSettings  # noqa: E402

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
    events_df = demo.generate_events(spark, rows, days=days, seed=seed, end=LAKE_END)
    io.overwrite(events_df, io.TableRef(str(path), True))
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


def bench_config(source: Path, output: Path) -> Config:
    return Config(source=str(source), output=str(output), spark=SparkSettings(conf=dict(SPARK_CONF)))


def run_query(spark: SparkSession, config: Config) -> DataFrame:
    """What `pipeline.run` computes for its results table, up to (not including) the writes.

    The same public calls as `pipeline.run` makes, in the same order: read_source (contract check, Delta
    version pin, column pruning), the window, to_canonical with the quality observation, the
    quarantine filter, the explode, the aggregation, the exclusions and the run columns.
    """
    report = runlog.new_report(config, "bench")
    window = (report.window_start, report.window_end)
    source_df, _ = quality.read_source(spark, config, report.locations)
    _, counts_df = pipeline.plan_counts(source_df, config, window)
    return pipeline.results_of(counts_df, config, report, window)


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
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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


PROCESS_JOBS = ("partner-hunt run", "partner-hunt run +analyst", "naive job")


def bench_processes(source: Path, out_dir: Path, repeats: int) -> dict[str, Any]:
    """`partner-hunt run` vs the whole-process naive job, both with a 1 GiB driver, same lake.

    `partner-hunt run` writes the results table and its run log, with the analyst outputs
    (evidence, alerts) switched off so that it produces what the naive job produces; `+analyst`
    is the default config, which also writes the evidence and alerts tables.
    """
    work = Path(tempfile.mkdtemp(prefix="procs-", dir=out_dir))
    conf_lines = "\n".join(f'    {k}: "{v}"' for k, v in SPARK_CONF.items())
    spark_yaml = f"spark:\n  master: local[*]\n  conf:\n{conf_lines}\n"
    lean_config = work / "results-only.yml"
    lean_config.write_text(spark_yaml + "evidence:\n  enabled: false\nalerts:\n  enabled: false\n")
    full_config = work / "default.yml"
    full_config.write_text(spark_yaml)
    cli = Path(sys.executable).parent / "partner-hunt"
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in PROCESS_JOBS}
    try:
        for i in range(repeats):
            for j, name in enumerate(PROCESS_JOBS):
                output = work / f"job{j}-{i}" / "results"
                if name.startswith("partner-hunt"):
                    config_file = lean_config if name == "partner-hunt run" else full_config
                    cmd = [str(cli), "run", "--config", str(config_file), "--source", str(source), "--output", str(output), "--top", "5"]
                else:
                    cmd = [sys.executable, str(ROOT / "benchmarks" / "naive.py"), "--source", str(source), "--output", str(output), "--driver-memory", "1g"]
                runs[name].append(timed_process(cmd, ROOT))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result: dict[str, Any] = {
        name: {
            "seconds": [r["seconds"] for r in rs],
            "median": round(statistics.median(r["seconds"] for r in rs), 2),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
        }
        for name, rs in runs.items()
    }
    result["naive_over_run"] = round(result["naive job"]["median"] / result["partner-hunt run"]["median"], 2)
    return result


# --------------------------------------------------------------------------------------------
# Incremental cost (item 4 of issue 5)


def _copy_lake(source: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)


def _rows_read(spark: SparkSession, config: Config, run_id: str) -> int:
    """RowsRead of one run, as its run-log row records it."""
    log_df = io.read_table(spark, io.Locations.from_config(config).run_log)
    return int(log_df.filter(F.col("RunId") == F.lit(run_id)).select("RowsRead").first()["RowsRead"])


def commit_floor(spark: SparkSession, written: runlog.RunReport, target: io.Locations) -> float:
    """Seconds to commit `written`'s results window and one run-log row again, into `target`'s
    tables: the writes every refresh makes, without any of its reads or computation."""
    rows_df = io.read_window_rows(spark, written.locations.output, written.window_key()).cache()
    try:
        rows_df.count()
        logged = replace(written, locations=target)
        started = time.perf_counter()
        io.replace_where(rows_df, target.output, io.equality_predicate(written.window_key()))
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


def delta_commits_since(spark: SparkSession, tables: dict[str, io.TableRef], since: datetime) -> list[dict[str, Any]]:
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
    new day of data (rows/days rows) is appended, and both are timed warm, each with its writes:
      incremental  `incremental.run_incremental` over the trailing `days` window ending with the new
                   day (it reads only the days whose source files changed, then rolls up);
      recompute    `pipeline.run` over the same window from the raw source.
    Analyst outputs (evidence, alerts) are off in both, so both write the same results table. The
    share of source rows read comes from each run's run-log row (RowsRead).

    Also timed, as the floor under any refresh: the two Delta commits that both paths must make
    whatever they compute, i.e. replacing the window's rows in a results table and appending one
    run-log row (on tables of their own, warmed up like the real ones). recompute / floor is the
    best speed-up any refresh that writes its results and its run log could show here.
    """
    import importlib.util

    if importlib.util.find_spec("partner_hunt.partials") is None:
        return {"skipped": "lib/partner_hunt/partials.py does not exist yet"}
    from partner_hunt import partials
    from partner_hunt.config import AlertSettings, EvidenceSettings, HuntSettings

    work = out_dir / f"incremental-{rows}"
    lake = work / "message_events"
    _copy_lake(source, lake)
    for stale in work.glob("results*"):
        shutil.rmtree(stale, ignore_errors=True)
    base = Config(
        source=str(lake),
        output=str(work / "results"),
        spark=SparkSettings(conf=dict(SPARK_CONF)),
        evidence=EvidenceSettings(enabled=False),
        alerts=AlertSettings(enabled=False),
    )
    full = replace(base, output=str(work / "results_full"))
    first_day = (LAKE_END - timedelta(days=days)).date()
    started = time.perf_counter()
    # One batch: the lake's files each span every day, so a batch per day would rescan it 90 times.
    backfill.backfill(spark, replace(base, hunt=HuntSettings(backfill_batch_days=days)), first_day, LAKE_END.date())
    backfill_seconds = time.perf_counter() - started

    per_day = max(1, rows // days)
    timings: dict[str, list[float]] = {"incremental": [], "recompute": [], "commit_floor": []}
    shares: dict[str, list[float]] = {"incremental": [], "recompute": []}
    floor = replace(base, output=str(work / "floor"))
    total_rows = rows
    # Round 0 warms both paths up and is not counted.
    for k in range(repeats + 1):
        day_end = LAKE_END + timedelta(days=k + 1)
        new_day_df = demo.generate_events(spark, per_day, days=1, seed=seed + 1000 + k, end=day_end)
        io.append(new_day_df, io.TableRef(str(lake), True))
        total_rows += per_day
        window = HuntSettings(start=day_end - timedelta(days=days), end=day_end, trailing_days=days)
        before_job, wall_start = last_job_id(spark), datetime.now()
        t0 = time.perf_counter()
        inc_report = incremental.run_incremental(spark, replace(base, hunt=window))
        inc_seconds = time.perf_counter() - t0
        # The breakdown of the last refresh: its Spark jobs and the Delta commits it made.
        breakdown = {
            "refresh_kind": inc_report.refresh_kind,
            "refresh_reason": inc_report.refresh_reason,
            "spark_jobs": spark_jobs_after(spark, before_job),
            "delta_commits": delta_commits_since(
                spark,
                {name: getattr(inc_report.locations, name) for name in ("source", "partials", "output", "run_log", "quarantine")},
                wall_start,
            ),
        }
        t0 = time.perf_counter()
        full_report = pipeline.run(spark, replace(full, hunt=window))
        full_seconds = time.perf_counter() - t0
        floor_seconds = commit_floor(spark, full_report, io.Locations.from_config(floor))
        if k == 0:
            continue
        timings["incremental"].append(inc_seconds)
        timings["recompute"].append(full_seconds)
        timings["commit_floor"].append(floor_seconds)
        shares["incremental"].append(_rows_read(spark, base, inc_report.run_id) / total_rows)
        shares["recompute"].append(_rows_read(spark, full, full_report.run_id) / total_rows)

    # The two paths must agree on the last window.
    def last_window(config: Config) -> set[tuple]:
        key = {"WindowStart": window.start, "WindowEnd": window.end, "Mode": "kql"}
        return result_set(
            [
                (r.SenderFromDomain, r.OutboundTeamsMessages, r.IncomingTeamsMessagesWithThreats)
                for r in io.read_window_rows(spark, io.TableRef(config.output, True), key).collect()
            ]
        )

    result = {
        "rows": rows,
        "window_days": days,
        "new_day_rows": per_day,
        "backfill_seconds": round(backfill_seconds, 1),
        "results_equal": last_window(base) == last_window(full),
        "variant": partials.variant("kql", False, False, False),
        "refresh_breakdown": breakdown,
    }
    for name in timings:
        result[name] = {
            "seconds": [round(t, 2) for t in timings[name]],
            "median": round(statistics.median(timings[name]), 2),
        }
        if name in shares:
            result[name]["share_of_rows_read"] = round(max(shares[name]), 4)
    result["recompute_over_incremental"] = round(result["recompute"]["median"] / result["incremental"]["median"], 1)
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
    print(f"load average before/after: {results['load_before']} / {results['load_after']}")
    for size in results["sizes"]:
        print()
        print(
            f"{size['rows']:,} rows ({size['parquet_mb']} MB Parquet, {size['recipient_rows']:,} recipient rows, "
            f"{size['result_rows']} result rows, results equal: {size['results_equal']})"
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
        print(
            f"  run/scan {r['run_over_scan']}x (target <= 2.0), naive/run {r['naive_over_run']}x (target >= 1.3), "
            f"run/duckdb {r['run_over_duckdb']}x (aim <= 3)"
        )
    if "scaling" in results:
        s = results["scaling"]
        print()
        print(f"scaling {s['from_rows']:,} -> {s['to_rows']:,} rows: run x{s['run']}, naive x{s['naive']}, scan x{s['scan']} (target run <= 10)")
    if "process" in results:
        p = results["process"]
        print()
        print(f"whole process at {p['rows']:,} rows (spark.driver.memory=1g):")
        for name in PROCESS_JOBS:
            print(f"  {name:<26} median {p[name]['median']:>6.2f} s  peak tree RSS {p[name]['peak_rss_mb']:.0f} MB  runs {p[name]['seconds']}")
        print(f"  naive/run {p['naive_over_run']}x (target >= 1.0)")
    if "incremental" in results:
        print()
        inc = results["incremental"]
        if "skipped" in inc:
            print(f"incremental: skipped ({inc['skipped']})")
        else:
            print(
                f"incremental at {inc['rows']:,} rows, {inc['window_days']}-day window, one new day of "
                f"{inc['new_day_rows']:,} rows (backfill once: {inc['backfill_seconds']} s; results equal: {inc['results_equal']}):"
            )
            for name in ("incremental", "recompute"):
                v = inc[name]
                print(f"  {name:<12} median {v['median']:>6.2f} s  rows read {v['share_of_rows_read']:.2%} of the source  runs {v['seconds']}")
            v = inc["commit_floor"]
            print(f"  {'commit floor':<12} median {v['median']:>6.2f} s  (results replace + run-log append only)  runs {v['seconds']}")
            print(f"  recompute/incremental {inc['recompute_over_incremental']}x (target >= 10; rows read <= 1/30 = 3.33%)")
            print(f"  recompute/commit floor {inc['recompute_over_commit_floor']}x: no refresh that commits its results and run log can beat this")
            print_refresh_breakdown(inc["refresh_breakdown"])
    print()
    print(f"total benchmark time {results['total_seconds']:.0f} s")


def print_refresh_breakdown(breakdown: dict[str, Any]) -> None:
    """The last refresh's Spark jobs and Delta commits, with their durations."""
    jobs = breakdown["spark_jobs"]
    timed = [j["seconds"] for j in jobs if j["seconds"] is not None]
    print(f"  last refresh: {breakdown['refresh_kind']} ({breakdown['refresh_reason']})")
    print(f"  its {len(jobs)} Spark jobs, {sum(timed):.2f} s in total (jobs may overlap):")
    for j in jobs:
        seconds = f"{j['seconds']:6.2f} s" if j["seconds"] is not None else "     ? s"
        print(f"    job {j['job']:>5} {seconds}  {j['name']}  {' '.join(j['description'].split())[:60]}")
    print(f"  its {len(breakdown['delta_commits'])} Delta commits:")
    for c in breakdown["delta_commits"]:
        took = f"{c['execution_seconds']:.2f} s" if c["execution_seconds"] is not None else "-"
        print(f"    {c['committed_at']}  {c['table']:<10} v{c['version']:<5} {c['operation']:<20} execution {took}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated row counts")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per size (median reported)")
    parser.add_argument("--days", type=int, default=90, help="days the generated lakes span")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default="bench-out/results.json")
    parser.add_argument("--process-repeats", type=int, default=1, help="whole-process runs of each job (0 to skip; 1 keeps the default run under 10 minutes)")
    parser.add_argument("--no-incremental", action="store_true", help="skip the incremental section")
    args = parser.parse_args(argv)

    total_started = time.perf_counter()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    out_file = Path(args.out)
    out_dir = out_file.parent.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)

    from partner_hunt.session import build_session

    spark = build_session(master="local[*]", app_name="partner-hunt-bench", conf=SPARK_CONF)
    results: dict[str, Any] = {
        "machine": machine(),
        "spark_conf": SPARK_CONF,
        "repeats": args.repeats,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_before": load_average(),
        "sizes": [],
    }
    jvm_max = spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory()
    results["driver_max_heap_mb"] = round(jvm_max / 2**20)
    lakes: dict[int, Path] = {}
    for rows in sizes:
        source, generated = ensure_lake(spark, out_dir, rows, args.days, args.seed)
        lakes[rows] = source
        if generated:
            print(f"generated {rows:,} rows in {generated:.0f} s: {source}")
    for rows in sizes:
        print(f"timing {rows:,} rows ...", flush=True)
        results["sizes"].append(bench_size(spark, lakes[rows], rows, args.repeats, out_dir))
        # Saved as it goes, so that an interrupted run still leaves its figures.
        out_file.write_text(json.dumps(results, indent=2))
    if len(sizes) >= 2:
        small, big = results["sizes"][0], results["sizes"][-1]
        results["scaling"] = {
            "from_rows": small["rows"],
            "to_rows": big["rows"],
            **{n: round(big["variants"][n]["median"] / small["variants"][n]["median"], 2) for n in VARIANTS},
        }
    if not args.no_incremental:
        print("timing incremental refresh ...", flush=True)
        biggest = max(sizes)
        results["incremental"] = bench_incremental(spark, lakes[biggest], biggest, args.days, args.seed, args.repeats, out_dir)
    spark.stop()
    if args.process_repeats > 0:
        biggest = max(sizes)
        print(f"timing whole processes at {biggest:,} rows ...", flush=True)
        results["process"] = {"rows": biggest, **bench_processes(lakes[biggest], out_dir, args.process_repeats)}
    results["load_after"] = load_average()
    results["total_seconds"] = round(time.perf_counter() - total_started, 1)
    out_file.write_text(json.dumps(results, indent=2))
    print_table(results)
    print(f"wrote {out_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
