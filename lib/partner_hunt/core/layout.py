"""A first write laid out one UTC day to a file, without the sampling pass of a range partition (pure).

A table's first, usually largest, batch is laid out by time so that later insert-only MERGEs read
only the files of their own days. `repartitionByRange` would do it, but it computes the whole
batch once more to sample its bounds. The days are known instead: each UTC day goes to the
partition numbered by its day number modulo the partitions, so consecutive days never share one.
`repartition` places a row by Spark's Murmur3 hash of its key (seed 42, as `F.hash`) modulo the
partitions, so each partition number is sent as an int key that Spark hashes to that partition.
If Spark ever hashed otherwise, days would share files: slower later MERGEs, never other rows.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from partner_hunt.core.hunt import utc_day

# What `repartition` allows a first batch: beyond a year, consecutive days share a file.
MAX_PARTITIONS = 366
_SEED = 42
_MASK = 0xFFFFFFFF


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & _MASK


def murmur3_int(value: int, seed: int = _SEED) -> int:
    """Spark's `hash` of an int column holding `value` (Murmur3 x86 32-bit, as a signed int)."""
    k = (value & _MASK) * 0xCC9E2D51 & _MASK
    k = _rotl(k, 15) * 0x1B873593 & _MASK
    h = _rotl((seed & _MASK) ^ k, 13)
    h = (h * 5 + 0xE6546B64) & _MASK
    h ^= 4
    h ^= h >> 16
    h = h * 0x85EBCA6B & _MASK
    h ^= h >> 13
    h = h * 0xC2B2AE35 & _MASK
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def partition_keys(partitions: int) -> list[int]:
    """For each partition p of `repartition(partitions, key)`, the smallest int key Spark sends to p."""
    keys: dict[int, int] = {}
    candidate = 0
    while len(keys) < partitions:
        keys.setdefault(murmur3_int(candidate) % partitions, candidate)
        candidate += 1
    return [keys[p] for p in range(partitions)]


def one_day_a_partition(days: int) -> tuple[int, Column]:
    """(partitions, key) for rows spanning `days` UTC days: `repartition(partitions, key)` puts each
    day's rows in one partition and no two days of the span in the same one (up to
    `MAX_PARTITIONS` days; beyond, that many runs of consecutive days). Needs `Timestamp`."""
    # One more than the span: a span measured between two times of day can touch one day more.
    partitions = max(1, min(MAX_PARTITIONS, days + 1))
    run = -(-(days + 1) // partitions)
    day_number = F.unix_date(utc_day(F.col("Timestamp")))
    slot = F.pmod(F.floor(day_number / F.lit(run)).cast("int"), F.lit(partitions))
    keys = F.array(*[F.lit(k) for k in partition_keys(partitions)])
    return partitions, F.element_at(keys, slot + F.lit(1))


def by_day(rows_df: DataFrame, days: int) -> DataFrame:
    """`rows_df` (with `Timestamp`, spanning `days` UTC days) in partitions of one day each."""
    partitions, key = one_day_a_partition(days)
    return rows_df.repartition(partitions, key)
