"""The source a command reads and the quarantine it writes: the two tables of raw input rows."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from partner_hunt.core import privacy, schema
from partner_hunt.store import io
from partner_hunt.store.locations import TableRef
from partner_hunt.store.runlog import RunReport


def read_source(spark: SparkSession, source: TableRef, req: schema.Requirements) -> tuple[DataFrame, int | None]:
    """Read the source's needed columns after checking the contract; also its Delta version."""
    # Pin the version we report, so the run log's version is exactly what was read; a missing
    # table is named by read_table.
    version = io.table_version(spark, source) if io.table_exists(spark, source) else None
    source_df = io.read_table(spark, source, version=version)
    schema.check_contract(source_df.schema, str(source), req)
    return source_df.select(*schema.needed_columns(source_df.schema, req)), version


def write_quarantine(bad_df: DataFrame, report: RunReport, record: str = "redacted") -> None:
    """Append this run's quarantined rows, with their reason and the original record.

    `record` is `quality.quarantine_record`: the record as read (`full`), with e-mail local parts
    hashed and display names dropped (`redacted`), or not kept (`none`).
    """
    io.append(
        bad_df.select(
            F.lit(report.run_id).alias("RunId"),
            F.lit(report.started_at).cast("timestamp").alias("QuarantinedAt"),
            F.lit(str(report.locations.source)).alias("Source"),
            F.col("QuarantineReason").alias("Reason"),
            "TenantId",
            "Timestamp",
            "TeamsMessageId",
            "ReportId",
            privacy.source_record(F.col("SourceRecord"), record).alias("SourceRecord"),
        ),
        report.locations.quarantine,
    )
