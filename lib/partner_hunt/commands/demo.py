"""`partner-hunt demo`: (re)generate the seeded sample lake, then hunt it as `run` does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from partner_hunt.commands.steps import ingest
from partner_hunt.commands.steps.window import run_window
from partner_hunt.config import Config
from partner_hunt.core import sample, sample_signals, signals
from partner_hunt.store import checks, io, landing
from partner_hunt.store.locations import Locations, TableRef
from partner_hunt.store.runlog import RunReport


def demo_config(config: Config) -> Config:
    """The demo's config: source and output in the lake folder, and own domains found in the data.

    The demo organisation's own domain is found in the data (`hunt.own_domains: auto`), as it
    would be in yours, and excluded in kql mode too: the published query's recipient-side inbound
    would otherwise put it on top (see `--mode corrected` and `diff`). A configured setting is kept.
    """
    lake = Path(config.demo.lake).resolve()
    hunt = (
        config.hunt
        if config.hunt.own_domains is not None
        else replace(config.hunt, own_domains=("auto",), own_domains_in_kql=True)
    )
    return replace(config, source=str(lake / "message_events"), output=str(lake / "partner_hunt_results"), hunt=hunt)


def demo(
    spark: SparkSession, config: Config, on_start: Callable[[], None] | None = None, say: Callable[[str], None] | None = None
) -> RunReport:
    """Write the sample lake (replacing one from an earlier demo), then run the hunt over it.

    `config` is `demo_config`'s; `on_start` is told before the lake is generated, `say` gets the
    ingest's progress lines (`demo.as_export`).
    """
    checks.check_locations(spark, Locations.from_config(config), source_must_exist=False)
    if on_start is not None:
        on_start()
    d = config.demo
    events_df = sample.generate_events(spark, d.rows, days=d.days, seed=d.seed, tenants=d.tenants)
    signals_df = sample_signals.generate_signals(events_df, d.seed)
    if d.as_export:
        _through_the_export(spark, config, events_df, signals_df, say)
    else:
        io.overwrite(sample.in_arrival_order(events_df, d.days), TableRef.parse(config.source))
        # Defender's Teams signals beside it, as ingest writes them (docs/partner-risk.md).
        places = Locations.from_config(config).signals
        for key, df in signals_df.items():
            io.overwrite(df, places[key])
    return run_window(spark, config, "demo")


def export_folder(config: Config) -> Path:
    """Where `demo --as-export` writes the sample as the Streaming API's storage containers, one
    folder each (`insights-logs-advancedhunting-<table>`), read by one ingest."""
    return Path(config.demo.lake).resolve() / "export"


def _container(table: str) -> str:
    return f"insights-logs-advancedhunting-{table.lower()}"


def _through_the_export(
    spark: SparkSession, config: Config, events_df: DataFrame, signals_df: dict[str, DataFrame], say: Callable[[str], None] | None
) -> None:
    """The whole path a newcomer's data takes: the export's blobs, then `ingest` into the tables.

    The demo regenerates its lake, so the earlier tables and what was ingested into them go first.
    """
    places = ingest.IngestPlaces.of(config, None)
    for ref in (places.into, places.files, places.quarantine, *places.signals.values()):
        landing.remove_local_folder(ref.location)
    folder = export_folder(config)
    landing.remove_local_folder(str(folder))
    landing.write_local_export(sample.export_lines(events_df), str(folder / _container("MessageEvents")))
    for table in signals.SIGNAL_TABLES:
        lines_df = sample.export_lines(signals_df[table.key], table.category)
        landing.write_local_export(lines_df, str(folder / _container(table.table)))
    ingest.ingest_folder(spark, config, "defender-storage", str(folder), say=say)
