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
