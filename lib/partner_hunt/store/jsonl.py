"""The alerts' JSON Lines folder: plain files a SIEM tails, beside the Delta tables."""

from __future__ import annotations

from collections.abc import Iterable

from pyspark.sql import DataFrame


def write_jsonl(df: DataFrame, path: str, partition_by: Iterable[str] = ()) -> None:
    """Write rows as JSON Lines under the folder `path`, replacing what was there.

    With `partition_by`, dynamic partition overwrite: rewriting one window's partition leaves the
    others alone, and writing it again replaces its files instead of adding a second copy. Without,
    the folder's files are replaced as a whole, even by no rows (a partition folder given as
    `path` is then emptied, which dynamic overwrite cannot do). Times are UTC.
    """
    (
        df.write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .option("timeZone", "UTC")
        .option("timestampFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX")
        .partitionBy(*partition_by)
        .json(path)
    )
