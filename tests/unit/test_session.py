"""Joining a session the job did not create: runtime settings applied, launch-time ones named."""

from __future__ import annotations

import logging

import pytest

from partner_hunt.store.session import apply_settings, build_session

MODIFIABLE = "spark.sql.shuffle.partitions"
TIME_ZONE = "spark.sql.session.timeZone"


@pytest.fixture
def restored(spark):
    """Put back the settings a test changes on the shared session."""
    keys = (MODIFIABLE, TIME_ZONE, "spark.sql.autoBroadcastJoinThreshold")
    before = {k: spark.conf.get(k, None) for k in keys}
    yield spark
    for key, value in before.items():
        if value is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, value)


def test_runtime_settings_are_applied_and_launch_time_ones_reported(restored):
    spark = restored
    refused = apply_settings(
        spark,
        {
            MODIFIABLE: "3",
            "spark.driver.memory": "3g",  # static: fixed when the JVM starts
            "spark.default.parallelism": "7",  # accepted by conf.set, but only read at launch
            "spark.ui.enabled": "false",  # already what the session has: nothing to report
        },
    )
    assert refused == ["spark.default.parallelism", "spark.driver.memory"]
    assert spark.conf.get(MODIFIABLE) == "3"
    assert spark.conf.get("spark.default.parallelism", None) != "7"


def test_joining_logs_one_warning_and_keeps_the_callers_time_zone(restored, caplog):
    spark = restored
    spark.conf.set(TIME_ZONE, "Asia/Kolkata")
    with caplog.at_level(logging.WARNING, logger="partner_hunt"):
        joined = build_session(conf={MODIFIABLE: "5", "spark.driver.memory": "3g", "spark.sql.autoBroadcastJoinThreshold": "1m"})
    assert joined is spark
    assert spark.conf.get(MODIFIABLE) == "5"
    assert spark.conf.get("spark.sql.autoBroadcastJoinThreshold") == "1m"
    assert spark.conf.get(TIME_ZONE) == "Asia/Kolkata"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].endswith("were not applied: spark.driver.memory")
