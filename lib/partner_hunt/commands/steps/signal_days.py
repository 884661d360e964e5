"""Which days a refresh recomputes because a signal about their messages arrived late.

A removal or a click is credited to the day its message was sent (`core/partner_signals.py`), so a
signal that lands today can change a day weeks old. Each signal table's changes since the last
refresh are found as the source's are (its change data feed, or the rows it appended:
`store/changes.py`), then mapped to the days of the messages they are about.
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from partner_hunt.config import Config
from partner_hunt.core import hunt, partner_signals, schema, signals
from partner_hunt.store import changes
from partner_hunt.store.signal_sources import SignalInputs, typed_columns


def _message_days(source_df: DataFrame, ids_df: DataFrame, max_delay_days: int) -> DataFrame:
    """The UTC days of the messages `ids_df` (`TenantId`, `TeamsMessageId`, `SignalAt`) names,
    looked for in the `max_delay_days` before each signal, as the signal partials credit it."""
    canonical = source_df.transform(schema.to_canonical, schema.Requirements())
    bounds = ids_df.agg(F.min("SignalAt").alias("low"), F.max("SignalAt").alias("high")).collect()[0]
    if bounds["low"] is None:
        return ids_df.sparkSession.createDataFrame([], "Day date")
    # Only the days a signal can still be credited to are read, so Delta skips the rest of the source.
    low = bounds["low"] - timedelta(days=max_delay_days + 1)
    messages = canonical.filter(hunt.in_window(F.col("Timestamp"), low, bounds["high"] + timedelta(days=1))).select(
        *partner_signals.KEYS, hunt.utc_day(F.col("Timestamp")).alias("Day")
    )
    return messages.join(ids_df.select(*partner_signals.KEYS).distinct(), on=list(partner_signals.KEYS), how="left_semi").select("Day").distinct()


def days_of(table: signals.SignalTable, source_df: DataFrame, inputs: SignalInputs, config: Config) -> changes.DaysOf:
    """`changes.DaysOf` for one signal table: changed rows to the days of their messages."""
    delay = config.signals.max_delay_days

    def mapped(rows_df: DataFrame) -> DataFrame:
        rows = typed_columns(rows_df, table, table.table)
        if table.key == signals.URL_CLICKS.key:
            urls_df = inputs.get(signals.URL_INFO.key)
            if urls_df is None:
                return rows_df.sparkSession.createDataFrame([], "Day date")
            ids = partner_signals.attribute_clicks(rows, urls_df).select(*partner_signals.KEYS, F.col("ClickedAt").alias("SignalAt"))
        else:
            ids = rows.select(*partner_signals.KEYS, F.col("Timestamp").alias("SignalAt"))
        return _message_days(source_df, ids, delay)

    return mapped


def changed_message_days(
    spark: SparkSession, config: Config, source_df: DataFrame, inputs: SignalInputs, previous: dict[str, int]
) -> changes.ChangeResult:
    """The days of the messages whose signals changed since the `previous` versions; unknown (the
    whole window) where a signal table was not read when the days were computed."""
    found: set[date] = set()
    reasons = []
    for table in signals.SIGNAL_TABLES:
        if table.key not in inputs.frames:
            continue
        mapper = days_of(table, source_df, inputs, config)
        current = inputs.versions.get(table.key)
        if table.key not in previous or current is None:
            # Days computed without it have no signals at all, not only no late ones.
            return changes.ChangeResult.full(f"{table.table} was not read when the window's days were computed: every day is recomputed with it")
        result = changes.changed_days(spark, inputs.refs[table.key], previous[table.key], current, days_of=mapper)
        if result.days is None:
            return changes.ChangeResult.full(f"{table.table}: {result.reason}")
        found |= result.days
        reasons.append(f"{table.table}: {result.reason}")
    return changes.ChangeResult(frozenset(found), changes.INCREMENTAL, "; ".join(reasons))
