"""Which days a refresh recomputes because a signal about their messages arrived late.

A removal or a click is credited to the day its message was sent (`core/partner_signals.py`), so a
signal that lands today can change a day weeks old. Each signal table's changes since the last
refresh are found as the source's are (its change data feed, or the rows it appended:
`store/changes.py`), then mapped to the days of the messages they are about. Where the tables'
change data feeds cover the range (as for the tables `ingest` creates), their changes are mapped
together, in one pass over the source's recent days.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from partner_hunt.config import Config
from partner_hunt.core import caching, hunt, partner_signals, schema, signals
from partner_hunt.store import changes
from partner_hunt.store.errors import first_line
from partner_hunt.store.signal_sources import SignalInputs, typed_columns


def _message_days(
    source_df: DataFrame, changed: dict[signals.SignalTable, DataFrame], inputs: SignalInputs, max_delay_days: int
) -> list[Row]:
    """The UTC days of the messages that some changed rows of signal tables (`changed`, as read)
    are about, each looked for in the `max_delay_days` before its signal, as the signal partials
    credit it: one job for the signals' time span, one for the days."""
    if not changed:
        return []
    # A night's changes are few rows, but each read of a change feed replays its commits: the
    # span's job keeps them, and the days' job reads them from there.
    typed: dict[signals.SignalTable, DataFrame] = {}
    try:
        for table, rows_df in changed.items():
            typed[table] = caching.cached(typed_columns(rows_df, table, table.table))
        return _days_of_typed(source_df, typed, inputs, max_delay_days)
    finally:
        for rows in typed.values():
            caching.release(rows)


def _days_of_typed(
    source_df: DataFrame, typed: dict[signals.SignalTable, DataFrame], inputs: SignalInputs, max_delay_days: int
) -> list[Row]:
    """`_message_days` of the changed rows typed by `typed_columns` (at least one table)."""
    times = [rows.select("Timestamp") for rows in typed.values()]
    span = times[0]
    for more in times[1:]:
        span = span.unionByName(more)
    bounds = span.agg(F.min("Timestamp").alias("low"), F.max("Timestamp").alias("high")).collect()[0]
    if bounds["low"] is None:
        return []
    # Only the days a signal can still be credited to are read, so Delta skips the rest of the
    # source and of the URL table (a click is credited by the URLs of messages in that span too).
    low, high = bounds["low"] - timedelta(days=max_delay_days + 1), bounds["high"] + timedelta(days=1)
    ids = []
    for table, rows in typed.items():
        if table.key != signals.URL_CLICKS.key:
            ids.append(rows.select(*partner_signals.KEYS))
            continue
        urls_df = inputs.get(signals.URL_INFO.key)
        if urls_df is not None:
            carried = urls_df.filter(hunt.in_window(F.col("Timestamp"), low, high))
            ids.append(partner_signals.attribute_clicks(rows, carried).select(*partner_signals.KEYS))
    if not ids:
        return []
    wanted = ids[0]
    for more in ids[1:]:
        wanted = wanted.unionByName(more)
    canonical = source_df.transform(schema.to_canonical, schema.Requirements())
    messages = canonical.filter(hunt.in_window(F.col("Timestamp"), low, high)).select(
        *partner_signals.KEYS, hunt.utc_day(F.col("Timestamp")).alias("Day")
    )
    # Bounded: one row per distinct day.
    return messages.join(wanted.distinct(), on=list(partner_signals.KEYS), how="left_semi").select("Day").distinct().collect()


def days_of(table: signals.SignalTable, source_df: DataFrame, inputs: SignalInputs, config: Config) -> changes.DaysOf:
    """`changes.DaysOf` for one signal table: changed rows to the days of their messages."""

    def mapped(rows_df: DataFrame) -> DataFrame:
        found = _message_days(source_df, {table: rows_df}, inputs, config.signals.max_delay_days)
        return rows_df.sparkSession.createDataFrame([(r["Day"],) for r in found], "Day date")

    return mapped


def changed_message_days(
    spark: SparkSession, config: Config, source_df: DataFrame, inputs: SignalInputs, previous: dict[str, int]
) -> changes.ChangeResult:
    """The days of the messages whose signals changed since the `previous` versions; unknown (the
    whole window) where a signal table was not read when the days were computed."""
    tables = [t for t in signals.SIGNAL_TABLES if t.key in inputs.frames]
    for table in tables:
        if table.key not in previous or inputs.versions.get(table.key) is None:
            # Days computed without it have no signals at all, not only no late ones.
            return changes.ChangeResult.full(f"{table.table} was not read when the window's days were computed: every day is recomputed with it")
    moved = [t for t in tables if inputs.versions[t.key] != previous[t.key]]
    reasons = [f"{t.table}: no commit after version {previous[t.key]}" for t in tables if t not in moved]
    # Whether each table's feed is on is a metadata read: asked side by side.
    with ThreadPoolExecutor(max_workers=max(1, len(moved)), thread_name_prefix="partner-hunt-signals") as pool:
        feeds = dict(
            zip(
                [t.key for t in moved],
                pool.map(lambda t: changes.feed_rows(spark, inputs.refs[t.key], previous[t.key], inputs.versions[t.key]), moved),
                strict=True,
            )
        )
    found: set[date] = set()
    by_feed = [t for t in moved if feeds[t.key] is not None]
    feed_frames = {t: df for t in by_feed if (df := feeds[t.key]) is not None}
    if feed_frames:
        try:
            found |= {r["Day"] for r in _message_days(source_df, feed_frames, inputs, config.signals.max_delay_days)}
            reasons += [f"{t.table}: change data feed of versions {previous[t.key] + 1}..{inputs.versions[t.key]}" for t in by_feed]
        except Exception as exc:  # noqa: BLE001 - each table is then asked on its own, which says why
            reasons.append(f"the signal tables' feeds read together failed ({first_line(exc)}), read one by one")
            by_feed = []
    for table in [t for t in moved if t not in by_feed]:
        mapper = days_of(table, source_df, inputs, config)
        result = changes.changed_days(spark, inputs.refs[table.key], previous[table.key], inputs.versions[table.key], days_of=mapper)
        if result.days is None:
            return changes.ChangeResult.full(f"{table.table}: {result.reason}")
        found |= result.days
        reasons.append(f"{table.table}: {result.reason}")
    return changes.ChangeResult(frozenset(found), changes.INCREMENTAL, "; ".join(reasons))
