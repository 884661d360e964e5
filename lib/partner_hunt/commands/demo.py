"""`partner-hunt demo`: (re)generate the seeded sample lake, then hunt it as `run` does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from pyspark.sql import SparkSession

from partner_hunt.commands.steps.window import run_window
from partner_hunt.config import Config
from partner_hunt.core import sample
from partner_hunt.store import checks, io
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


def demo(spark: SparkSession, config: Config, on_start: Callable[[], None] | None = None) -> RunReport:
    """Write the sample lake (replacing one from an earlier demo), then run the hunt over it.

    `config` is `demo_config`'s; `on_start` is told before the lake is generated (a progress line).
    """
    checks.check_locations(spark, Locations.from_config(config), source_must_exist=False)
    if on_start is not None:
        on_start()
    d = config.demo
    events_df = sample.generate_events(spark, d.rows, days=d.days, seed=d.seed, tenants=d.tenants)
    io.overwrite(sample.in_arrival_order(events_df, d.days), TableRef.parse(config.source))
    return run_window(spark, config, "demo")
