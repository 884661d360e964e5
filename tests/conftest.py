"""The one session-scoped Spark fixture, and small builders for inline test rows."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest

from tests.integration.spark_cluster import CODE_CACHE

# The suite runs hundreds of small, different plans on a few rows each in one long-lived JVM:
# compiling generated Java for each plan costs more CPU than running it. Interpreted expressions
# give the same answers (Spark's own tests run both ways) and cut the in-process tests by about a
# third here (docs/performance.md). Child JVMs keep codegen: there start-up and JIT dominate, and
# interpreting measured no faster. Tests only: the job as shipped keeps Spark's defaults.
INTERPRETED_CONF = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}
# Adaptive execution re-plans after each shuffle and runs every stage as a job of its own: on a
# few rows that doubles a run's jobs for nothing (about 15% of a `run`'s time here,
# docs/performance.md). No result may depend on it, and every child process (CLI, wheel, cluster,
# notebook, Connect, fault kills) keeps the job's own setting, on.
SUITE_ONLY_CONF = {**INTERPRETED_CONF, "spark.sql.adaptive.enabled": "false"}


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """local[2] with Delta, no UI, few shuffle partitions and a throw-away warehouse."""
    from partner_hunt.store.session import build_session
    from tests.frames import from_tests

    warehouse = tmp_path_factory.mktemp("warehouse")
    session = build_session(
        master="local[2]",
        app_name="partner-hunt-tests",
        conf={
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.sql.warehouse.dir": str(warehouse),
            "spark.databricks.delta.snapshotPartitions": "2",
            "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
            # Throughput over pause times for one busy JVM on two cores, and room enough that
            # the cached frames of a run rarely trigger a collection: each ~10% faster per run here.
            "spark.driver.memory": "2g",
            # The code cache the Connect server gets too: every query of the suite generates classes.
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={warehouse} -XX:+UseParallelGC {CODE_CACHE}",
            **SUITE_ONLY_CONF,
        },
    )
    # Inline rows from the tests reach Spark as Arrow, not as a Python RDD (tests/frames.py).
    session.createDataFrame = from_tests(session.createDataFrame)  # type: ignore[method-assign]
    yield session
    session.stop()


@contextmanager
def settings_restored(spark):
    """Put back the session's settings on exit: what a CLI run inside this process applied is undone.

    A CLI run inside the test process joins the shared session and applies its config's runtime
    settings, as a job does on Databricks; without this, later tests inherit them (cluster.yml's
    `optimizeWrite` and `autoCompact`, left behind by a module fixture, once made another test's
    four written files one).
    """
    before = dict(spark.conf.getAll)
    try:
        yield spark
    finally:
        after = dict(spark.conf.getAll)
        for key in after.keys() - before.keys():
            spark.conf.unset(key)
        for key, value in before.items():
            if after.get(key) != value:
                spark.conf.set(key, value)


@pytest.fixture(autouse=True)
def _shared_session_settings(request):
    """Every test that runs while a session is up leaves its settings as it found them.

    That covers tests that call the CLI without asking for the `spark` fixture: they join it too.
    Module-scoped fixtures that run the CLI wrap it in `settings_restored` themselves, since they
    are set up before this fixture takes its snapshot.
    """
    from pyspark.sql import SparkSession

    if "spark" in request.fixturenames:
        spark = request.getfixturevalue("spark")
    else:
        spark = SparkSession.getActiveSession()
    if spark is None:
        yield
        return
    with settings_restored(spark):
        yield


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)

CANONICAL_DDL = (
    "TenantId string, Timestamp timestamp, TeamsMessageId string, ReportId string, "
    "SenderEmailAddress string, RecipientAddresses array<string>, "
    "IsExternalThread boolean, IsOwnedThread boolean, ThreatTypes string, EditTime timestamp"
)


def event(
    to=None,
    external=True,
    owned=True,
    threats="",
    sender="someone@partner.com",
    msg="m1",
    ts=T0,
    tenant="t1",
    report=None,
    edit=None,
):
    """One canonical event row; `to` is a list of addresses, [] for empty, None for null."""
    return (
        tenant,
        ts,
        msg,
        report or f"r-{msg}",
        sender,
        None if to is None else list(to),
        external,
        owned,
        threats,
        edit or ts,
    )


@pytest.fixture
def events(spark):
    """Build a canonical events DataFrame from `event(...)` rows."""

    def make(*rows):
        return spark.createDataFrame(list(rows), CANONICAL_DDL)

    return make


def hunt_options(
    *,
    mode="kql",
    normalize_domains=False,
    count_messages=False,
    dedupe_edits=False,
    exclude_domains=(),
    tenant_exclude=None,
    include_ratio=True,
):
    """The core's frozen settings from the hunt's config keys: (CountOptions, FinishOptions)."""
    from partner_hunt.core.options import CountOptions, FinishOptions

    finish = FinishOptions(
        tuple(exclude_domains), {t: tuple(d) for t, d in (tenant_exclude or {}).items()}, normalize_domains, include_ratio
    )
    return CountOptions(mode, normalize_domains, count_messages, dedupe_edits), finish


def hunt_results(events_df, *, evidence=False, **settings):
    """The result rows `run` computes from canonical events: `hunt.count_window`, then
    `hunt.window_results`, the calls `plan_window` makes (tests/unit/test_hunt.py runs every
    shipped path; elsewhere one is enough). `settings` are `hunt_options`' keywords."""
    from partner_hunt.core import hunt

    options, finish = hunt_options(**settings)
    return hunt.window_results(hunt.count_window(events_df, options, evidence), finish)


# The job's own log lines (logging, to stderr without a terminal). In-process CLI tests join the
# suite's session, so they also see the "settings not applied to a joined session" warning.
_LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} (?:DEBUG|INFO|WARNING) ")


def problem_lines(stderr: str) -> list[str]:
    """The lines of a command's stderr that are not its INFO/WARNING log lines: what it said is wrong."""
    return [line for line in stderr.strip().splitlines() if line.strip() and not _LOG_LINE.match(line)]


__all__ = ["INTERPRETED_CONF", "T0", "event", "hunt_options", "hunt_results", "problem_lines", "settings_restored"]
