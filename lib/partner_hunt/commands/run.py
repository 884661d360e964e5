"""`partner-hunt run`: one window end to end, from the raw source: read -> canonicalise -> hunt -> write."""

from __future__ import annotations

from pyspark.sql import SparkSession

from partner_hunt.commands.steps.window import run_window
from partner_hunt.config import Config
from partner_hunt.store.runlog import RunReport


def run(spark: SparkSession, config: Config, command: str = "run") -> RunReport:
    """Run the hunt over the configured window from the raw source and write results and logs."""
    return run_window(spark, config, command)
