"""The signals section of bench.py (`--sections signals`): the nightly refresh with Defender's Teams
signal tables beside MessageEvents, against the same refresh with MessageEvents alone.

Per lake size (the seeded 90-day lake, `--signal-sizes`, default 1M and 4M rows), in the
benchmark's own session: the sample's signal tables (`core/sample_signals.py`: post-delivery
events, URL info, clicks, a few percent of the rows) are written beside a copy of the lake, both
laid out by day with the signal tables' change data feed on, as daily ingests leave them, and
two outputs are backfilled over the 90 days (not timed): one whose config points the signal tables
at locations that do not exist (MessageEvents alone), one that reads them. Then, in `--repeats`
rounds after a warm-up, one new day is appended (its events and their signals; not timed) and both
refreshes run, in alternating order. The ratio is the median refresh with the signals over the
median refresh alone; the target is at most 1.5x.
"""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from benchmarks.bench import LAKE_END, bench_config, ensure_lake, load_average
from benchmarks.scale import GrowingLake
from partner_hunt.commands import backfill, refresh
from partner_hunt.commands.steps.ingest import SIGNAL_TABLE_PROPERTIES
from partner_hunt.config import HuntSettings, SignalSettings
from partner_hunt.core import sample_signals
from partner_hunt.store import io
from partner_hunt.store.locations import Locations, TableRef

VARIANTS = ("alone", "with signals")


def bench_signals_size(spark: SparkSession, out_dir: Path, rows: int, days: int, seed: int, repeats: int) -> dict[str, Any]:
    """One lake size: both refreshes after each appended day (see the module's text)."""
    source, _ = ensure_lake(spark, out_dir, rows, days, seed)
    work = out_dir / f"signals-{rows}"
    shutil.rmtree(work, ignore_errors=True)
    lake = work / "message_events"
    # The lake and the signal tables as daily ingests leave them (`partner-hunt ingest`): each
    # day's rows in their own files, and the signal tables with their change data feed on. The
    # cached lake's files each span all 90 days, which no ingest or Auto Loader stream writes.
    io.read_table(spark, TableRef(str(source), True)).repartitionByRange(days, "Timestamp").write.format("delta").save(str(lake))
    with_signals = bench_config(lake, work / "with" / "results", analyst=True)
    missing = work / "no-signals"
    alone = replace(
        bench_config(lake, work / "alone" / "results", analyst=True),
        signals=SignalSettings(
            post_delivery=str(missing / "post_delivery"), url_info=str(missing / "url_info"), url_clicks=str(missing / "url_clicks")
        ),
    )
    places = Locations.from_config(with_signals).signals
    started = time.perf_counter()
    for key, df in sample_signals.generate_signals(io.read_table(spark, TableRef(str(lake), True)), seed).items():
        feed = "delta.enableChangeDataFeed"
        df.repartitionByRange(days, "Timestamp").write.format("delta").option(feed, SIGNAL_TABLE_PROPERTIES[feed]).save(places[key].location)
    signal_rows = {key: io.read_table(spark, ref).count() for key, ref in places.items()}
    generated = time.perf_counter() - started
    first_day = (LAKE_END - timedelta(days=days)).date()
    configs = {"alone": alone, "with signals": with_signals}
    for config in configs.values():
        backfill.backfill(spark, replace(config, hunt=HuntSettings(backfill_batch_days=days)), first_day, LAKE_END.date())
    growing = GrowingLake(spark, lake, max(1, rows // days), days, seed + 3000)
    window = growing.window

    def append_day() -> None:
        events_df = growing.append_day()
        for key, df in sample_signals.generate_signals(events_df, seed + growing.appended).items():
            io.append(df, places[key])

    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    days_computed: dict[str, list[int]] = {v: [] for v in VARIANTS}
    for k in range(repeats + 1):
        append_day()
        order = VARIANTS if k % 2 == 0 else tuple(reversed(VARIANTS))
        for name in order:
            started = time.perf_counter()
            report = refresh.run_incremental(spark, replace(configs[name], hunt=window()))
            seconds = time.perf_counter() - started
            if k:
                times[name].append(seconds)
                days_computed[name].append(len(report.days_computed))
    shutil.rmtree(work, ignore_errors=True)
    medians = {name: statistics.median(times[name]) for name in VARIANTS}
    return {
        "rows": rows,
        "signal_rows": signal_rows,
        "signals_generated_s": round(generated, 1),
        "load_after": load_average(),
        "refresh": {
            name: {"seconds": [round(t, 2) for t in times[name]], "median": round(medians[name], 2), "days_computed": days_computed[name]}
            for name in VARIANTS
        },
        "with_over_alone": round(medians["with signals"] / medians["alone"], 2),
    }


def print_signals(sizes: list[dict[str, Any]]) -> None:
    """The refresh with the signal tables against the refresh with MessageEvents alone."""
    print("\nsignals (refresh after one new day, in process; target: with signals at most 1.5x alone)")
    print(f"  {'rows':>10}  {'signal rows':>12}  {'alone':>8}  {'with signals':>12}  {'ratio':>6}  days computed (alone / with)")
    for s in sizes:
        r = s["refresh"]
        print(
            f"  {s['rows']:>10,}  {sum(s['signal_rows'].values()):>12,}  {r['alone']['median']:>7.1f}s  {r['with signals']['median']:>11.1f}s"
            f"  {s['with_over_alone']:>5}x  {r['alone']['days_computed']} / {r['with signals']['days_computed']}"
        )
