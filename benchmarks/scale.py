"""The scale section of bench.py (`--sections scale`): how each variant's cost grows with the lake.

Per lake size (the seeded 90-day lake, `--scale-sizes`, default 1M, 4M and 16M rows), in the
benchmark's own session (local[*], a 1 GiB driver):

  in process, one warm-up round and then `--repeats` rounds, the variants alternating:
    naive          the literal two-scan translation (tests/naive_kql.py) to a noop sink;
    scan           the Spark scan bound (the needed columns, every recipient address touched);
    duckdb         DuckDB over the same Parquet files;
    hunt-only run  `run.run` with evidence and alerts off, writes included;
    default run    `run.run` with the defaults (evidence and alerts on), writes included;
    refresh        `refresh.run_incremental` with the defaults after one new day was appended (the
                   append is not timed), over the same trailing window as the runs;
  as whole processes (a JVM each, 1 GiB driver), once per size after the in-process rounds:
    the naive job, `partner-hunt run` with the defaults, and `partner-hunt run --incremental`
    after one more appended day.

Every variant's times are fitted over the sizes to seconds = fixed + per-million x millions of
rows (least squares), and each per-million cost is set against the naive job's, the scan bound's
and DuckDB's. The default run's and the refresh's Delta operations (commits per table, metadata
reads through io.py, Spark jobs) are kept from the last round at each size.
"""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from benchmarks.bench import (
    LAKE_END,
    ROOT,
    PeakRss,
    _cli,
    _copy_lake,
    _naive_cmd,
    _process_configs,
    _tables,
    bench_config,
    duckdb_rows,
    ensure_lake,
    jvm_pid,
    load_average,
    naive_query,
    noop,
    profile,
    scan_bound,
    self_peak_mb,
    timed_process,
)
from partner_hunt.commands import backfill, refresh, run
from partner_hunt.config import HuntSettings
from partner_hunt.core import sample
from partner_hunt.store import io
from partner_hunt.store.locations import TableRef

IN_PROCESS = ("naive", "scan", "duckdb", "hunt-only run", "default run", "refresh")
PROCESSES = ("naive job", "default run", "refresh")
# The variants whose Delta operations are listed.
PROFILED = ("default run", "refresh")


class GrowingLake:
    """A lake that gains one seeded day at a time, and the trailing window that ends after its newest day."""

    def __init__(self, spark: SparkSession, lake: Path, rows_per_day: int, days: int, seed: int) -> None:
        self.spark, self.lake, self.rows_per_day, self.days, self.seed = spark, lake, rows_per_day, days, seed
        self.appended = 0

    def window(self) -> HuntSettings:
        end = LAKE_END + timedelta(days=self.appended)
        return HuntSettings(start=end - timedelta(days=self.days), end=end, trailing_days=self.days)

    def append_day(self) -> DataFrame:
        """Append the next day's events (not timed by the callers); returns them."""
        self.appended += 1
        end = LAKE_END + timedelta(days=self.appended)
        events_df = sample.generate_events(self.spark, self.rows_per_day, days=1, seed=self.seed + self.appended, end=end)
        io.append(events_df, TableRef(str(self.lake), True))
        return events_df


def fit(points: list[tuple[float, float]]) -> dict[str, float | None]:
    """Least-squares seconds = fixed + per_million x millions over (millions, seconds) points."""
    if len(points) < 2:
        return {"fixed_s": None, "per_million_s": None}
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    per = sum((x - mx) * (y - my) for x, y in points) / sxx
    return {"fixed_s": round(my - per * mx, 2), "per_million_s": round(per, 3)}


def _ops(breakdown: dict[str, Any]) -> dict[str, Any]:
    """A command's Delta operations, counted: commits per table and operation, metadata reads."""
    commits: dict[str, int] = {}
    for c in breakdown["delta_commits"]:
        label = f"{c['table']} {c['operation']}"
        commits[label] = commits.get(label, 0) + 1
    reads = {name: int(v["calls"]) for name, v in breakdown["metadata_reads"].items()}
    return {"commits": commits, "metadata_reads": reads, "spark_jobs": len(breakdown["spark_jobs"])}


def bench_scale_size(spark: SparkSession, out_dir: Path, rows: int, days: int, seed: int, repeats: int) -> dict[str, Any]:
    """One lake size: the in-process rounds, then the whole processes (see the module's text)."""
    import duckdb

    source, _ = ensure_lake(spark, out_dir, rows, days, seed)
    work = out_dir / f"scale-{rows}"
    shutil.rmtree(work, ignore_errors=True)
    lake = work / "message_events"
    # A copy: the refresh appends a day a round, and the cached lake stays as generated.
    _copy_lake(source, lake)
    lean = bench_config(lake, work / "lean" / "results")
    default = bench_config(lake, work / "default" / "results", analyst=True)
    refreshed = bench_config(lake, work / "refresh" / "results", analyst=True)
    first_day = (LAKE_END - timedelta(days=days)).date()
    # The refresh's partials, once (not timed); one batch, since every file spans every day.
    backfill.backfill(spark, replace(refreshed, hunt=HuntSettings(backfill_batch_days=days)), first_day, LAKE_END.date())
    con = duckdb.connect()
    mem = PeakRss(jvm_pid())
    growing = GrowingLake(spark, lake, max(1, rows // days), days, seed + 2000)
    window, append_day = growing.window, growing.append_day

    commands = {
        "naive": lambda: noop(naive_query(spark, lake)),
        "scan": lambda: noop(scan_bound(spark, lake)),
        "duckdb": lambda: duckdb_rows(con, lake),
        "hunt-only run": lambda: run.run(spark, replace(lean, hunt=window())),
        "default run": lambda: run.run(spark, replace(default, hunt=window())),
        "refresh": lambda: refresh.run_incremental(spark, replace(refreshed, hunt=window())),
    }
    tables = {"default run": _tables(default), "refresh": _tables(refreshed)}
    times: dict[str, list[float]] = {v: [] for v in IN_PROCESS}
    peaks: dict[str, float] = {}
    ops: dict[str, Any] = {}
    for k in range(repeats + 1):
        for name in IN_PROCESS:
            if name == "refresh":
                append_day()
            mem.reset()
            if name in PROFILED:
                seconds, breakdown, _ = profile(spark, commands[name], tables[name])
                ops[name] = _ops(breakdown)
            else:
                started = time.perf_counter()
                commands[name]()
                seconds = time.perf_counter() - started
            peak = self_peak_mb() if name == "duckdb" else mem.peak_mb()
            if k:
                times[name].append(seconds)
                if peak is not None:
                    peaks[name] = max(peaks.get(name, 0.0), peak)
    con.close()

    # Whole processes: this session only appends between them and sits idle while they run.
    _, full_config = _process_configs(work)
    processes: dict[str, dict[str, Any]] = {}
    end = window().end
    assert end is not None
    processes["naive job"] = timed_process(_naive_cmd(lake, work / "proc-naive" / "results"), ROOT)
    run_cmd = [*_cli(), "run", "--config", str(full_config), "--source", str(lake), "--output", str(work / "proc-default" / "results")]
    window_args = ["--start", (end - timedelta(days=days)).date().isoformat(), "--end", end.date().isoformat(), "--top", "5"]
    processes["default run"] = timed_process([*run_cmd, *window_args], ROOT)
    append_day()
    end = window().end
    assert end is not None
    refresh_out = str(work / "refresh" / "results")
    refresh_cmd = [*_cli(), "run", "--incremental", "--config", str(full_config), "--source", str(lake), "--output", refresh_out]
    processes["refresh"] = timed_process([*refresh_cmd, "--end", end.date().isoformat(), "--trailing-days", str(days), "--top", "5"], ROOT)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "rows": rows,
        "load_after": load_average(),
        "in_process": {
            name: {
                "seconds": [round(t, 2) for t in times[name]],
                "median": round(statistics.median(times[name]), 2),
                "peak_rss_mb": round(peaks.get(name, 0.0)),
            }
            for name in IN_PROCESS
        },
        "processes": processes,
        "delta_operations": ops,
    }


def summarize(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    """The fits over the sizes, and each per-million cost against the baselines'."""
    out: dict[str, Any] = {"in_process": {}, "processes": {}}
    for kind, names, value in (("in_process", IN_PROCESS, "median"), ("processes", PROCESSES, "seconds")):
        for name in names:
            points = [(s["rows"] / 1e6, s[kind][name][value]) for s in sizes]
            entry: dict[str, Any] = fit(points)
            entry["peak_rss_mb"] = max(s[kind][name].get("peak_rss_mb") or 0 for s in sizes)
            out[kind][name] = entry
    per = {n: e["per_million_s"] for n, e in out["in_process"].items()}
    for name, entry in out["in_process"].items():
        for base in ("naive", "scan", "duckdb"):
            entry[f"per_million_over_{base}"] = round(per[name] / per[base], 2) if per[name] is not None and per[base] else None
    run_per = per.get("default run")
    if run_per and per.get("refresh") is not None:
        out["refresh_per_million_over_default_run"] = round(per["refresh"] / run_per, 3)
    lean, full = out["in_process"]["hunt-only run"], out["in_process"]["default run"]
    if lean["fixed_s"] is not None and full["fixed_s"] is not None:
        out["default_fixed_over_hunt_only_s"] = round(full["fixed_s"] - lean["fixed_s"], 2)
    return out


def print_scale(scale: dict[str, Any]) -> None:
    """The scale table, as docs/performance.md shows it."""
    sizes = scale["sizes"]
    summary = scale["summary"]
    labels = ", ".join(f"{s['rows'] / 1e6:g}M" for s in sizes)
    print(f"\nscale ({labels} rows, fitted: seconds = fixed + per-million x Mrows)")
    print(f"  {'in process':<16}" + "".join(f"{s['rows'] / 1e6:>7g}M" for s in sizes) + "    fixed  per-M  /naive  /scan  /duckdb  peak MB")
    for name in IN_PROCESS:
        e = summary["in_process"][name]
        medians = "".join(f"{s['in_process'][name]['median']:>7.1f}s" for s in sizes)
        ratios = "".join(f"{e[f'per_million_over_{b}'] if e[f'per_million_over_{b}'] is not None else '-':>7}" for b in ("naive", "scan", "duckdb"))
        print(f"  {name:<16}{medians}  {e['fixed_s']:>6}  {e['per_million_s']:>5}{ratios}  {e['peak_rss_mb']:>7}")
    print(f"  {'whole process':<16}")
    for name in PROCESSES:
        e = summary["processes"][name]
        times = "".join(f"{s['processes'][name]['seconds']:>7.1f}s" for s in sizes)
        print(f"  {name:<16}{times}  {e['fixed_s']:>6}  {e['per_million_s']:>5}  peak MB {e['peak_rss_mb']}")
    if "refresh_per_million_over_default_run" in summary:
        print(f"  refresh per million over the default run's: {summary['refresh_per_million_over_default_run']}")
    if "default_fixed_over_hunt_only_s" in summary:
        print(f"  default run's fixed cost over hunt-only, in process: {summary['default_fixed_over_hunt_only_s']} s")
    for s in sizes:
        for name, o in s["delta_operations"].items():
            commits = ", ".join(f"{k} x{v}" for k, v in sorted(o["commits"].items())) or "none"
            reads = ", ".join(f"{k} x{v}" for k, v in sorted(o["metadata_reads"].items())) or "none"
            print(f"  {s['rows'] / 1e6:g}M {name}: {o['spark_jobs']} Spark jobs; commits: {commits}; metadata reads: {reads}")
