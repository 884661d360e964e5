"""`partner-hunt ingest --from ROUTE --input FOLDER [--into TABLE]`: Defender's exports, as they
land, into the flat MessageEvents table every command reads (docs/ingest.md)."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import SparkSession

from partner_hunt.commands.steps.ingest import ingest_folder
from partner_hunt.config import Config
from partner_hunt.store.runlog import RunReport


def ingest(
    spark: SparkSession,
    config: Config,
    route: str,
    input_folder: str,
    into: str | None = None,
    say: Callable[[str], None] | None = None,
) -> RunReport:
    """Read what is new in the export folder and add its MessageEvents to the table, exactly once."""
    return ingest_folder(spark, config, route, input_folder, into, say)
