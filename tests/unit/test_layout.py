"""A first write one UTC day a partition, with no sampling pass: the keys must be the ones Spark's
own hash partitioning sends to each partition, whatever the session's time zone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pyspark.sql import functions as F

from partner_hunt.core import layout
from tests.conftest import settings_restored


@pytest.mark.parametrize("partitions", [1, 2, 7, 92, 366])
def test_each_key_is_sent_by_spark_to_its_own_partition(spark, partitions):
    keys = layout.partition_keys(partitions)
    df = spark.createDataFrame([(k,) for k in keys], "k int")
    got = [r["p"] for r in df.select(F.pmod(F.hash("k"), F.lit(partitions)).alias("p")).collect()]
    assert got == list(range(partitions))
    assert [layout.murmur3_int(k) for k in keys] == [r["h"] for r in df.select(F.hash("k").alias("h")).collect()]


def test_murmur3_matches_spark_on_negative_and_large_ints(spark):
    values = [0, 1, -1, 42, 2**31 - 1, -(2**31), 123456789, -987654321]
    df = spark.createDataFrame([(v,) for v in values], "v int")
    assert [layout.murmur3_int(v) for v in values] == [r["h"] for r in df.select(F.hash("v").alias("h")).collect()]


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "America/St_Johns"])
def test_each_utc_day_lands_alone_in_one_partition(spark, zone):
    start = datetime(2026, 2, 26, 0, 30, tzinfo=timezone.utc)
    # Rows over five UTC days, two of them at the day's first and last minute.
    times = [start + timedelta(hours=h) for h in range(0, 5 * 24, 5)] + [
        datetime(2026, 2, 27, 0, 0, tzinfo=timezone.utc),
        datetime(2026, 2, 27, 23, 59, tzinfo=timezone.utc),
    ]
    with settings_restored(spark):
        spark.conf.set("spark.sql.session.timeZone", zone)
        df = spark.createDataFrame([(t,) for t in times], "Timestamp timestamp")
        laid = layout.by_day(df, (max(times) - min(times)).days + 1)
        rows = laid.select(F.date_format(F.to_utc_timestamp("Timestamp", zone), "yyyy-MM-dd").alias("day"), F.spark_partition_id().alias("p")).collect()
    by_day = {}
    for r in rows:
        by_day.setdefault(r["day"], set()).add(r["p"])
    assert len(by_day) == 5
    assert all(len(parts) == 1 for parts in by_day.values())
    assert len({next(iter(parts)) for parts in by_day.values()}) == 5
