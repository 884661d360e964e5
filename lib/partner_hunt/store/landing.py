"""The folders Defender's exports write to: which blobs grew since the last ingest, and their new
complete lines. A blob is an append blob that keeps growing for hours, so what an ingest has
consumed of each blob is kept as a byte offset (`<into>_ingest_files`), always at a line end.

The folder is read through Spark's file sources (`binaryFile`), so a local folder, `abfss://` or
a Unity Catalog volume are read alike; this is an export folder, never a Delta table's location.
"""

from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass
from urllib.parse import unquote

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from partner_hunt.store import io
from partner_hunt.store.errors import first_line
from partner_hunt.store.locations import TableRef

FILES_DDL = "File string, BytesConsumed bigint, LinesConsumed bigint, Size bigint, ModifiedAt timestamp, RunId string"
# How many bytes from a blob's end are searched for its last line end before the whole is.
_TAIL_BYTES = 1 << 16

PROGRESS_DDL = "File string, BytesConsumed bigint, LinesConsumed bigint, Size bigint, ModifiedAt timestamp, BytesRead bigint, HeldBack int"


class LandingError(ValueError):
    """The export folder cannot be read as asked."""


@dataclass(frozen=True)
class Batch:
    """What one ingest reads: its new complete lines and, per blob read, where they end.

    `lines_df` has `File`, `LineNumber` (1-based, over the whole blob) and `Line` (line end
    removed); `ends_df` has, per blob, `File`, `Size`, `ModifiedAt`, `Offset`, `LinesBefore`,
    `BytesRead` and `HeldBack` (1 when the blob ends in a line still being written, which is left
    for later). Both read the same bytes of each blob (up to the size it was listed with), so they
    agree however often each is evaluated, even while the blob keeps growing.
    """

    lines_df: DataFrame
    ends_df: DataFrame


def _blobs(spark: SparkSession, folder: str, pattern: str) -> DataFrame:
    # Recursive lookup, not partition discovery: the export's layout (`m=` for the month and again
    # for the minute, `tenantId=` beside a field of the records) makes partition inference wrong.
    return spark.read.format("binaryFile").option("recursiveFileLookup", "true").option("pathGlobFilter", pattern).load(folder)


def list_blobs(spark: SparkSession, folder: str, pattern: str) -> DataFrame:
    """Every blob under `folder` whose name matches `pattern`, recursively: `File`, `Size`, `ModifiedAt`.

    Only the listing is read here, not the blobs' contents.
    """
    try:
        listing = _blobs(spark, folder, pattern)
        return listing.select(F.col("path").alias("File"), F.col("length").alias("Size"), F.col("modificationTime").alias("ModifiedAt"))
    except AnalysisException as exc:
        raise LandingError(f"the export folder '{folder}' cannot be read: {first_line(exc)}") from None


def read_consumed(spark: SparkSession, files_ref: TableRef) -> DataFrame:
    """What earlier ingests consumed of each blob (`FILES_DDL`, one row a blob), or no rows before
    the first. Each ingest appends a row per blob it read; a blob's offsets only grow, so its
    furthest row is where the next ingest starts."""
    stored_df = io.read_table_if_exists(spark, files_ref)
    if stored_df is None:
        return spark.createDataFrame([], FILES_DDL)
    furthest = F.max_by(F.struct(*[c for c in stored_df.columns if c != "File"]), F.col("BytesConsumed"))
    return stored_df.groupBy("File").agg(furthest.alias("_Row")).select("File", "_Row.*")


def grown_blobs(listing_df: DataFrame, consumed_df: DataFrame) -> list[tuple[str, int, int, int]]:
    """(file, bytes consumed, lines consumed, size listed) of each blob with bytes not consumed
    yet, by name.

    Bounded: one row per blob that grew since the last ingest (hours of an export, not events).
    """
    joined = listing_df.alias("l").join(consumed_df.alias("c"), on="File", how="left")
    consumed = F.coalesce(F.col("c.BytesConsumed"), F.lit(0))
    rows = (
        joined.filter(F.col("l.Size") > consumed)
        .select("File", consumed.alias("Bytes"), F.coalesce(F.col("c.LinesConsumed"), F.lit(0)).alias("Lines"), F.col("l.Size").alias("Size"))
        .orderBy("File")
        .collect()
    )
    return [(r["File"], int(r["Bytes"]), int(r["Lines"]), int(r["Size"])) for r in rows]


def read_new_lines(spark: SparkSession, folder: str, pattern: str, blobs: list[tuple[str, int, int, int]]) -> Batch:
    """The complete lines each blob holds past what was consumed, and the new offsets.

    A blob's last line without a line end is still being appended: it is not read now, and its
    bytes stay unconsumed, so the next ingest reads it whole. CRLF and LF line ends are both read.
    """
    if not blobs:
        empty = spark.createDataFrame([], "File string, LineNumber bigint, Line string")
        ends = "File string, Size bigint, ModifiedAt timestamp, Offset bigint, LinesBefore bigint, BytesRead bigint, HeldBack int"
        return Batch(empty, spark.createDataFrame([], ends))
    offsets_df = spark.createDataFrame(blobs, "File string, Offset bigint, LinesBefore bigint, Listed bigint")
    # The folder filtered by path rather than a list of paths: a list is looked up file by file.
    contents_df = (
        _blobs(spark, folder, pattern)
        .filter(F.col("path").isin([b[0] for b in blobs]))
        .select(F.col("path").alias("File"), "content", F.col("modificationTime").alias("ModifiedAt"))
    )
    # The bytes from the offset (always a line start) to the size the blob was listed with: an
    # append blob's first bytes never change, so every read of them (the lines, the offsets, a
    # rerun) sees the same text however much the blob has grown since.
    unread = F.substring(F.col("content"), F.col("Offset").cast("int") + F.lit(1), (F.col("Listed") - F.col("Offset")).cast("int"))
    keep = ["File", "Offset", "LinesBefore"]
    read_df = contents_df.join(F.broadcast(offsets_df), on="File", how="inner")
    # Every part of the split but the last ended with a line end; the last is the line still
    # being written ("" if none).
    lines_df = (
        # Bytes that are not UTF-8 become U+FFFD (the line is then quarantined, not the ingest
        # failed: Spark's `decode` raises on them).
        read_df.select(*keep, F.split(F.make_valid_utf8(unread.cast("string")), "\n").alias("_Parts"))
        # The split in its own projection: inlined next to the explode, it would be evaluated again
        # for every line it yields (10 times slower at 200,000 lines).
        .select(*keep, F.size("_Parts").alias("_Count"), F.posexplode("_Parts").alias("_Pos", "_Raw"))
        .filter(F.col("_Pos") < F.col("_Count") - F.lit(1))
        .select(
            "File",
            (F.col("LinesBefore") + F.col("_Pos") + F.lit(1)).cast("long").alias("LineNumber"),
            # One CR before the LF is the line end's (a pattern would cost more than the parse).
            F.when(F.endswith(F.col("_Raw"), F.lit("\r")), F.expr("left(_Raw, char_length(_Raw) - 1)")).otherwise(F.col("_Raw")).alias("Line"),
        )
    )
    # Where the complete lines end needs no split: at the last line end, found from the end of the
    # bytes (most blobs' last line is short). Decoded one char a byte, so lengths are bytes
    # whatever the text holds.
    size = F.col("Listed") - F.col("Offset")
    start = F.greatest(F.col("Offset") + F.lit(1), F.col("Listed") - F.lit(_TAIL_BYTES - 1))
    last = F.decode(F.substring(F.col("content"), start.cast("int"), F.least(size, F.lit(_TAIL_BYTES)).cast("int")), "ISO-8859-1")
    whole = F.decode(unread, "ISO-8859-1")
    tail = F.length(
        F.when((F.instr(last, "\n") > F.lit(0)) | (size <= F.lit(_TAIL_BYTES)), F.substring_index(last, "\n", -1)).otherwise(
            F.substring_index(whole, "\n", -1)
        )
    )
    ends_df = read_df.select(
        "File",
        F.col("Listed").alias("Size"),
        "ModifiedAt",
        "Offset",
        "LinesBefore",
        (size - tail).cast("long").alias("BytesRead"),
        (tail > F.lit(0)).cast("int").alias("HeldBack"),
    )
    return Batch(lines_df, ends_df)


def progress(ends_df: DataFrame, line_counts_df: DataFrame) -> DataFrame:
    """How far the ingest got in each blob (`PROGRESS_DDL`): `Batch.ends_df` with the complete
    lines read of each blob (`File`, `Lines`), which the caller has counted anyway."""
    joined = ends_df.join(line_counts_df, on="File", how="left")
    return joined.select(
        "File",
        (F.col("Offset") + F.col("BytesRead")).alias("BytesConsumed"),
        (F.col("LinesBefore") + F.coalesce(F.col("Lines"), F.lit(0))).cast("long").alias("LinesConsumed"),
        "Size",
        "ModifiedAt",
        "BytesRead",
        "HeldBack",
    )


def record_consumed(progress_df: DataFrame, files_ref: TableRef, run_id: str) -> None:
    """Keep how far this ingest got in each blob it read: one row per blob, appended (an append
    commits faster than a MERGE, and a rerun's row for the same offset changes nothing)."""
    io.append(progress_df.select("File", "BytesConsumed", "LinesConsumed", "Size", "ModifiedAt", F.lit(run_id).alias("RunId")), files_ref)


def write_local_export(lines_df: DataFrame, folder: str) -> int:
    """Write `Blob`/`Line` rows as an export folder on this machine, one blob per `Blob` path with
    CRLF line ends, as Defender writes it; a blob already there is replaced. Returns the blobs
    written. For the demo's local lake: Spark writes the lines, the blobs get their names here.
    """
    staging = os.path.join(folder, "_staging")
    lines_df.repartition("Blob").write.mode("overwrite").option("lineSep", "\r\n").partitionBy("Blob").text(staging)
    blobs = 0
    for entry in sorted(os.listdir(staging)):
        if not entry.startswith("Blob="):
            continue
        target = os.path.join(folder, unquote(entry[len("Blob=") :]))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        parts = sorted(glob.glob(os.path.join(staging, entry, "part-*")))
        with open(target, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, out)
        blobs += 1
    shutil.rmtree(staging)
    return blobs


def remove_local_folder(location: str) -> None:
    """Remove a folder of this machine's disk, if there is one (the demo's own lake only)."""
    if os.path.isdir(location):
        shutil.rmtree(location)
