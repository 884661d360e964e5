"""The source a command reads and the quarantine it writes: the two tables of raw input rows."""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from partner_hunt.core import bronze, privacy, schema
from partner_hunt.store import io, merge
from partner_hunt.store.locations import TableRef, source_identity
from partner_hunt.store.runlog import RunReport

log = logging.getLogger("partner_hunt")


def read_source(spark: SparkSession, source: TableRef, req: schema.Requirements) -> tuple[DataFrame, int | None]:
    """Read the source's needed columns after checking the contract; also its Delta version.

    A bronze table (Auto Loader's envelope, Event Hubs through Kafka: `core/bronze.py`) is told
    from the flat one by its schema and read as its MessageEvents records; a flat one as it is.
    """
    # Pin the version we report, so the run log's version is exactly what was read; a missing
    # table is named by read_table.
    version = io.table_version(spark, source) if io.table_exists(spark, source) else None
    source_df = io.read_table(spark, source, version=version)
    shape = bronze.detect_shape(source_df.schema)
    if shape != bronze.SHAPE_FLAT:
        log.info("source %s is %s: reading its MessageEvents records", source, bronze.DESCRIPTIONS[shape])
        source_df = bronze.to_flat(source_df, shape)
    schema.check_contract(source_df.schema, str(source), req)
    check_rescued(source_df, str(source))
    return source_df.select(*schema.needed_columns(source_df.schema, req)), version


def check_rescued(flat_df: DataFrame, table: str) -> None:
    """Fail, naming the column, when a MessageEvents record's `_rescued_data` holds a contract
    column's value: Auto Loader left that column null, and a null flag silently leaves the counts.

    Only a bronze table with `_rescued_data` is checked (`bronze.RESCUED_CONTRACT_COLUMN`): one
    query, before anything is written, that stops at the first such record.
    """
    if bronze.RESCUED_CONTRACT_COLUMN not in flat_df.columns:
        return
    marker = F.col(bronze.RESCUED_CONTRACT_COLUMN)
    # Bounded: at most one row.
    found = flat_df.filter(marker.isNotNull()).select(marker).limit(1).collect()
    if found:
        column = found[0][0]
        raise bronze.BronzeShapeError(
            f"source table '{table}' has a MessageEvents record whose {bronze.RESCUED_DATA} holds its {column}: "
            f"the value did not fit the table's schema (for example a flag that is not a boolean), so {column} "
            "would read as null and the record would silently leave the counts; fix the bronze table's schema "
            "(or the record), then rerun"
        )


def with_row_key(bad_df: DataFrame, source: str) -> DataFrame:
    """Add `RowKey`, the quarantine's key of each bad row: the same row read again gets it again.

    Needs `QuarantineReason` and `SourceRecord` (the record as read, before any redaction: a
    redacted or dropped record would give distinct rows one key), and `Timestamp` and `ReportId`
    to order identical records. Identical records of one read are distinct rows of the source, so
    each gets its occurrence among them. The key is a sha2: it carries no personal data.
    """
    identical = (
        Window.partitionBy("QuarantineReason", "SourceRecord")
        .orderBy("Timestamp", "ReportId")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    # to_json of a struct, not a concatenation: fields cannot run together and nulls are kept.
    identity = F.to_json(
        F.struct(
            # As the partials' markers compare it: a source read through a link is the same source.
            F.lit(source_identity(source)).alias("Source"),
            F.col("QuarantineReason").alias("Reason"),
            F.col("SourceRecord").alias("SourceRecord"),
            F.row_number().over(identical).alias("Occurrence"),
        )
    )
    return bad_df.withColumn("RowKey", F.sha2(identity, 256))


def write_quarantine(bad_df: DataFrame, report: RunReport, record: str = "redacted") -> None:
    """Keep this run's quarantined rows that the quarantine does not hold yet, with their reason
    and the original record (insert-only on `RowKey`: a rerun, or a backfill then a refresh of
    the same day, keeps each bad row once, under the run that first kept it).

    `record` is `quality.quarantine_record`: the record as read (`full`), with e-mail local parts
    hashed and display names dropped (`redacted`), or not kept (`none`).
    """
    source = str(report.locations.source)
    merge.insert_new(
        bad_df.transform(with_row_key, source).select(
            F.lit(report.run_id).alias("RunId"),
            F.lit(report.started_at).cast("timestamp").alias("QuarantinedAt"),
            F.lit(source).alias("Source"),
            F.col("QuarantineReason").alias("Reason"),
            "TenantId",
            "Timestamp",
            "TeamsMessageId",
            "ReportId",
            privacy.source_record(F.col("SourceRecord"), record).alias("SourceRecord"),
            "RowKey",
        ),
        report.locations.quarantine,
        "RowKey",
    )
