"""The cache where the compute allows it: a serverless refusal means the frame itself, and any
other failure still fails."""

from __future__ import annotations

import logging

import pytest

from partner_hunt.core import caching

SERVERLESS = "[NOT_SUPPORTED_WITH_SERVERLESS] PERSIST TABLE is not supported on serverless compute. SQLSTATE: 0A000"


class Frame:
    """Stands in for a DataFrame whose cache calls raise `error` (or succeed when None)."""

    def __init__(self, error: str | None):
        self.error = error
        self.cached = False
        self.counted = 0

    def cache(self):
        if self.error:
            raise RuntimeError(self.error)
        self.cached = True
        return self

    def count(self):
        self.counted += 1
        return 0

    def unpersist(self):
        if self.error:
            raise RuntimeError(self.error)
        self.cached = False
        return self


def test_a_frame_is_cached_where_the_compute_allows_it():
    frame = Frame(None)
    assert caching.cached(frame) is frame and frame.cached
    caching.release(frame)
    assert not frame.cached


def test_a_serverless_refusal_leaves_the_frame_uncached_and_says_so_once(monkeypatch, caplog):
    monkeypatch.setattr(caching, "_told", False)
    frame = Frame(SERVERLESS)
    with caplog.at_level(logging.INFO, logger="partner_hunt"):
        assert caching.cached(frame) is frame
        caching.cached(Frame(SERVERLESS))
        caching.release(frame)
    said = [r.getMessage() for r in caplog.records if "cache" in r.getMessage()]
    assert len(said) == 1 and "serverless" in said[0]
    assert not frame.cached


@pytest.mark.parametrize("call", [caching.cached, caching.release])
def test_any_other_failure_of_the_cache_is_raised(call):
    with pytest.raises(RuntimeError, match="executor lost"):
        call(Frame("executor lost"))


def test_a_frame_is_computed_ahead_only_where_it_is_kept():
    kept, refused = Frame(None), Frame(SERVERLESS)
    assert caching.materialized(kept) is kept and kept.cached and kept.counted == 1
    # Nothing would keep the rows: computing them ahead would be thrown away.
    assert caching.materialized(refused) is refused and refused.counted == 0


def test_rows_kept_on_disk_are_computed_once_and_freed_on_release(spark, tmp_path):
    from chispa import assert_df_equality

    path = str(tmp_path / "rows")
    spark.createDataFrame([(1, "a"), (2, "b")], "id int, v string").write.parquet(path)
    kept = caching.kept_on_disk(spark.read.parquet(path))
    # The files change after the rows were kept: later reads still see the rows as computed.
    spark.createDataFrame([(3, "c")], "id int, v string").write.mode("overwrite").parquet(path)
    assert_df_equality(kept, spark.createDataFrame([(1, "a"), (2, "b")], "id int, v string"), ignore_row_order=True)
    caching.release(kept)
    with pytest.raises(Exception, match="CHECKPOINT_RDD_BLOCK_ID_NOT_FOUND"):
        kept.count()


class NoCheckpoint(Frame):
    """A frame whose compute offers no local checkpoint (raising `checkpoint_error`)."""

    def __init__(self, checkpoint_error: str, cache_error: str | None = None):
        super().__init__(cache_error)
        self.checkpoint_error = checkpoint_error

    def localCheckpoint(self, eager, storageLevel):  # noqa: N802 - Spark's name
        raise RuntimeError(self.checkpoint_error)


def test_a_compute_without_local_checkpoints_caches_the_rows_instead(caplog):
    frame = NoCheckpoint("[UNSUPPORTED_FEATURE.LOCAL_CHECKPOINT] not supported here")
    with caplog.at_level(logging.INFO, logger="partner_hunt"):
        assert caching.kept_on_disk(frame) is frame
    assert frame.cached and frame.counted == 1
    assert any("local checkpoint" in r.getMessage() for r in caplog.records)
    # Nor the cache: the frame itself, computed where it is read.
    refused = NoCheckpoint("[NOT_SUPPORTED_WITH_SERVERLESS] checkpoint", SERVERLESS)
    assert caching.kept_on_disk(refused) is refused and refused.counted == 0


@pytest.mark.parametrize("error", ["executor lost", "[UNSUPPORTED_DATATYPE] a column of the frame itself"])
def test_any_other_failure_of_a_local_checkpoint_is_raised(error):
    with pytest.raises(RuntimeError, match=error.split("]")[-1].strip()):
        caching.kept_on_disk(NoCheckpoint(error))
