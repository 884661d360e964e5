"""The input side of a run, as pure transforms: which source columns a run needs, its window
filters, and the canonical events (quarantined rows flagged, not dropped)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from partner_hunt.core import caching, hunt, schema
from partner_hunt.core.options import CountOptions


def requirements(options: CountOptions, keep_sender: bool) -> schema.Requirements:
    """The optional source columns a run with these counting switches needs; `keep_sender` reads
    the sender's address where the source has it (the evidence and own domains use it)."""
    return schema.Requirements(
        sender=options.mode != "kql",
        # `known-now` finds each message's later verdicts by its id.
        message_id=options.count_messages or options.dedupe_edits or options.mode == "known-now",
        keep_sender=keep_sender,
    )


def filter_source_window(source_df: DataFrame, start: datetime | None, end: datetime | None) -> DataFrame:
    """Keep the raw rows of a window where Timestamp is a real timestamp, so Delta can skip files.

    Rows with a null Timestamp are kept: they belong to no window and must be quarantined, not lost.
    """
    if isinstance(source_df.schema["Timestamp"].dataType, T.TimestampType) and (start or end):
        # One predicate, so the source is scanned once; Parquet and Delta skipping handle the OR.
        ts = F.col("Timestamp")
        return source_df.filter(hunt.in_window(ts, start, end) | ts.isNull())
    return source_df


def filter_canonical_window(canonical_df: DataFrame, start: datetime | None, end: datetime | None) -> DataFrame:
    """Keep canonical rows in `[start, end)` and every row whose time could not be read."""
    ts = F.col("Timestamp")
    return canonical_df.filter(hunt.in_window(ts, start, end) | ts.isNull())


@dataclass
class Prepared:
    """A run's canonical events (quarantined rows included, flagged) and their quarantined rows."""

    canonical_df: DataFrame
    # Only the columns the hunt reads (`schema.hunt_columns`), so the scan prunes the rest.
    hunt_df: DataFrame
    _bad_df: DataFrame | None = None

    @property
    def bad_df(self) -> DataFrame:
        """The quarantined rows, cached: they are counted per reason, then written."""
        if self._bad_df is None:
            self._bad_df = caching.cached(schema.filter_bad_rows(self.canonical_df))
        return self._bad_df

    def with_events(self, transform: Callable[[DataFrame], DataFrame]) -> Prepared:
        """These events with `transform` applied to both views (it must keep rows and columns)."""
        return Prepared(transform(self.canonical_df), transform(self.hunt_df))

    def release(self) -> None:
        """Drop the cached quarantined rows."""
        if self._bad_df is not None:
            caching.release(self._bad_df)


def prepare(source_df: DataFrame, req: schema.Requirements, window_filter: Callable[[DataFrame], DataFrame]) -> Prepared:
    """Canonicalise the source rows that `window_filter` keeps."""
    canonical_df = window_filter(source_df.transform(schema.to_canonical, req))
    return Prepared(canonical_df, canonical_df.select(*schema.hunt_columns(req)))
