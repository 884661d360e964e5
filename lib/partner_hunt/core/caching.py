"""Spark's cache where the compute allows it, and the same results where it does not.

Databricks serverless compute refuses `DataFrame.cache`, `persist` and `unpersist`
(`[NOT_SUPPORTED_WITH_SERVERLESS] PERSIST TABLE is not supported on serverless compute`; see
docs/databricks.md). The commands cache only to save work: every frame they cache is read from a
pinned table version or from tables the command has finished writing, so computing it again for
each action gives the same rows. There, a frame is left uncached, and the first refusal is logged
once a process, so the extra work is never a silent surprise.

A frame of raw rows read once and then by several jobs (an ingest's typed lines) is kept on the
executors' disks as rows (`kept_on_disk`): Spark's cache encodes every column into its columnar
form, which for nested records cost from half as much again as computing them to twice as much.
"""

from __future__ import annotations

import logging

from pyspark import StorageLevel
from pyspark.sql import DataFrame

# The error class Databricks raises for the cache APIs on serverless compute.
REFUSED = "NOT_SUPPORTED_WITH_SERVERLESS"

log = logging.getLogger("partner_hunt")
_told = False


def _refused(exc: Exception) -> bool:
    return REFUSED in str(exc)


def _no_checkpoint(exc: Exception) -> bool:
    """Whether `exc` says the compute offers no local checkpoint (rather than that computing the
    frame failed, which a local checkpoint does eagerly)."""
    text = str(exc)
    return REFUSED in text or ("checkpoint" in text.lower() and ("UNSUPPORTED" in text or "NOT_SUPPORTED" in text))


def _tell_once() -> None:
    global _told
    if not _told:
        _told = True
        log.info("this compute refuses Spark's cache (serverless): intermediate results are computed again where they would be reused")


def _cache(df: DataFrame) -> bool:
    """Ask for `df` to be cached: True if the compute took it, False if it refuses caching."""
    try:
        df.cache()
    except Exception as exc:
        if not _refused(exc):
            raise
        _tell_once()
        return False
    return True


def cached(df: DataFrame) -> DataFrame:
    """`df` cached (lazily, as `DataFrame.cache`), or `df` itself where the compute refuses caching;
    any other error is raised."""
    _cache(df)
    return df


def materialized(df: DataFrame) -> DataFrame:
    """`df` cached and computed now, so that later actions read it at no cost; where the compute
    refuses caching, `df` untouched: computing it now would only be thrown away."""
    if _cache(df):
        df.count()
    return df


def kept_on_disk(df: DataFrame) -> DataFrame:
    """`df` computed now into rows kept on the executors' disks (a local checkpoint), which every
    later action reads instead of computing it again; `materialized(df)` where the compute does not
    offer local checkpoints. Drop it with `release`.

    The rows live with the executors that computed them: an action that finds one of them gone
    fails (`CHECKPOINT_RDD_BLOCK_ID_NOT_FOUND`) rather than computing it again, so only a command
    that can simply be run again (as every command here can) should keep a frame this way.
    """
    try:
        return df.localCheckpoint(eager=True, storageLevel=StorageLevel.DISK_ONLY)
    except Exception as exc:
        if not _no_checkpoint(exc):
            raise
        log.info("this compute offers no local checkpoint: the rows are cached instead (%s)", str(exc).splitlines()[0][:200])
        return materialized(df)


def lost(exc: Exception) -> bool:
    """Whether `exc` says that rows `kept_on_disk` were lost with an executor."""
    return "CHECKPOINT_RDD_BLOCK_ID_NOT_FOUND" in str(exc)


def _checkpointed_rdd(df: DataFrame) -> object | None:
    """The RDD a classic session's local checkpoint of `df` keeps its rows in, if it is one. Spark
    Connect drops a checkpoint's rows on the server when its frame is garbage collected."""
    jdf = getattr(df, "_jdf", None)
    if jdf is None:
        return None
    plan = jdf.queryExecution().logical()
    return plan.rdd() if plan.getClass().getSimpleName() == "LogicalRDD" else None


def release(df: DataFrame) -> None:
    """Drop `df`'s kept rows: from the cache, or a local checkpoint's from the executors' disks.
    A frame `cached` left uncached is a no-op."""
    rdd = _checkpointed_rdd(df)
    if rdd is not None:
        rdd.unpersist(False)  # type: ignore[attr-defined]
        return
    try:
        df.unpersist()
    except Exception as exc:
        if not _refused(exc):
            raise
