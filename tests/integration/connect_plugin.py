"""A pytest plugin that swaps the suite's classic `spark` fixture for a Spark Connect session.

`test_connect.py` runs the parity tests in a child pytest with `--noconftest -p` this plugin, so
the very tests that pin the core's behaviour on a classic session run again, unchanged, through
Connect (Databricks serverless and Databricks Connect speak the same protocol). A child process,
because a classic and a Connect session do not mix in one Python process.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import CANONICAL_DDL


@pytest.fixture(scope="session")
def spark():
    """A Connect session to the server named by PARTNER_HUNT_TEST_REMOTE (sc://host:port)."""
    from partner_hunt.store.session import build_session

    session = build_session(remote=os.environ["PARTNER_HUNT_TEST_REMOTE"], conf={"spark.sql.shuffle.partitions": "2"})
    assert type(session).__module__.startswith("pyspark.sql.connect"), type(session)
    yield session
    session.stop()


@pytest.fixture
def events(spark):
    """Build a canonical events DataFrame from `event(...)` rows, as tests/conftest.py does."""

    def make(*rows):
        return spark.createDataFrame(list(rows), CANONICAL_DDL)

    return make
