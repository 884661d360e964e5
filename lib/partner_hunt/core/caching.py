"""Spark's cache where the compute allows it, and the same results where it does not.

Databricks serverless compute refuses `DataFrame.cache`, `persist` and `unpersist`
(`[NOT_SUPPORTED_WITH_SERVERLESS] PERSIST TABLE is not supported on serverless compute`; see
docs/databricks.md). The commands cache only to save work: every frame they cache is read from a
pinned table version or from tables the command has finished writing, so computing it again for
each action gives the same rows. There, a frame is left uncached, and the first refusal is logged
once a process, so the extra work is never a silent surprise.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame

# The error class Databricks raises for the cache APIs on serverless compute.
REFUSED = "NOT_SUPPORTED_WITH_SERVERLESS"

log = logging.getLogger("partner_hunt")
_told = False


def _refused(exc: Exception) -> bool:
    return REFUSED in str(exc)


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


def release(df: DataFrame) -> None:
    """Drop `df` from the cache, where it is cached: a frame `cached` left uncached is a no-op."""
    try:
        df.unpersist()
    except Exception as exc:
        if not _refused(exc):
            raise
