"""The production plan: one scan of the source, only the needed nested field, and results equal to
the naive two-scan translation (tests/naive_kql.py) on edge-case rows. Expected rows are derived by
hand from docs/kql-parity.md."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from chispa import assert_df_equality

from partner_hunt.commands import run
from partner_hunt.commands.steps.window import plan_window
from partner_hunt.config import config_from_mapping
from partner_hunt.store import runlog
from tests.naive_kql import naive_hunt

pytestmark = pytest.mark.integration

SOURCE_DDL = (
    "TenantId string, Timestamp timestamp, TeamsMessageId string, SenderEmailAddress string, "
    "RecipientDetails array<struct<RecipientSmtpAddress:string,RecipientDisplayName:string>>, "
    "IsExternalThread boolean, IsOwnedThread boolean, ThreatTypes string, ReportId string"
)
COUNTS_DDL = "TenantId string, SenderFromDomain string, OutboundTeamsMessages long, IncomingTeamsMessagesWithThreats long"
TS = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)


def r(*addresses):
    return [(a, "name") for a in addresses]


ROWS = [
    # tenant, message, recipients, external, owned, threats
    ("t1", "o1", r("a@p.com", "b@p.com", "c@q.com"), True, True, ""),
    ("t1", "o2", None, True, True, ""),  # null: one row, domain ""
    ("t1", "o3", [], True, True, ""),  # empty: no row
    ("t1", "o4", r("nobody", "a@b@c.com", "@x.com", "user@", None), True, True, ""),  # "", b, x.com, "", ""
    ("t1", "o5", r("d@p.com"), True, None, ""),  # null flag: neither side
    ("t1", "o6", r("e@p.com"), None, True, ""),
    ("t1", "o7", r("f@q.com"), True, True, "Phish"),  # owned thread: outbound even with a threat
    ("t1", "i1", r("x@p.com", "y@P.com"), True, False, "Phish"),  # P.com is another domain
    ("t1", "i2", None, True, False, " "),  # a lone space is a threat; null recipients give ""
    ("t1", "i3", r("z@p.com"), True, False, ""),  # no threat
    ("t1", "i4", r("z@p.com"), True, False, None),
    ("t1", "i5", [], True, False, "Phish"),
    ("t1", "i6", r("q@b@zzz", "z@x.com"), True, False, "Malware"),  # b, x.com
    ("t1", "i7", r("w@p.com"), False, False, "Phish"),  # internal thread
    ("t2", "o8", r("a@p.com"), True, True, ""),
    ("t2", "i8", r("z@p.com"), True, False, "Spam"),
    ("t2", "i9", r("z@q.com"), True, False, "Spam"),  # q.com: no outbound in t2
]

EXPECTED = [
    ("t1", "p.com", 2, 1),
    ("t1", "", 4, 1),
    ("t1", "b", 1, 1),
    ("t1", "x.com", 1, 1),
    ("t2", "p.com", 1, 1),
]


@pytest.fixture(scope="module")
def source_path(spark, tmp_path_factory):
    """The source, written once for the module: its tests only read it."""
    rows = [
        (tenant, TS, msg, "someone@partner.com", to, ext, owned, threats, f"rep-{msg}")
        for tenant, msg, to, ext, owned, threats in ROWS
    ]
    path = tmp_path_factory.mktemp("lake") / "message_events"
    spark.createDataFrame(rows, SOURCE_DDL).write.format("delta").save(str(path))
    return path


def planned_results(spark, source, output, analyst=False):
    """The results rows `run` plans (`plan_window`), unwritten; hunt only unless `analyst`."""
    config = config_from_mapping(
        {"source": str(source), "output": str(output), "evidence": {"enabled": analyst}, "alerts": {"enabled": analyst}}
    )
    return plan_window(spark, config, runlog.new_report(config, "run")).results_df


def counts(df):
    return df.select(
        "TenantId", "SenderFromDomain", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats"
    )


def test_run_plan_scans_the_source_once_and_reads_only_the_address(spark, source_path, tmp_path):
    previous = spark.conf.get("spark.sql.maxMetadataStringLength")
    # The scan node abbreviates its read schema; the plan must be built after this is raised.
    spark.conf.set("spark.sql.maxMetadataStringLength", "10000")
    try:
        run_df = planned_results(spark, source_path, tmp_path / "results")
        naive_df = naive_hunt(spark.read.format("delta").load(str(source_path)))
        plan = run_df._jdf.queryExecution().executedPlan().toString()
        assert file_scans(run_df) == 1
        assert file_scans(naive_df) == 2
    finally:
        spark.conf.set("spark.sql.maxMetadataStringLength", previous)
    read_schema = next(line for line in plan.splitlines() if "FileScan" in line).split("ReadSchema: ")[1]
    # Nested schema pruning: of the recipient structs only the address is read.
    assert "RecipientDetails:array<struct<RecipientSmtpAddress:string>>" in read_schema
    assert "RecipientDisplayName" not in read_schema
    # Ids and senders are for evidence and quarantine, which read them in their own passes.
    for unused in ("TeamsMessageId", "ReportId", "SenderEmailAddress"):
        assert unused not in read_schema


def test_run_and_naive_translation_agree_on_edge_cases(spark, source_path, tmp_path):
    run_df = counts(planned_results(spark, source_path, tmp_path / "results"))
    naive_df = naive_hunt(spark.read.format("delta").load(str(source_path)))
    expected_df = spark.createDataFrame(EXPECTED, COUNTS_DDL)
    assert_df_equality(run_df, naive_df, ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(run_df, expected_df, ignore_row_order=True, ignore_nullable=True)



def file_scans(df) -> int:
    """File-source scans among the leaves of the physical plan (AQE off, so the plan is whole).

    A cached frame is an `InMemoryTableScan` leaf: the plan it was cached from is not a child, so a
    plan that reads a materialised cache counts no scan for it.
    """
    leaves = df._jdf.queryExecution().executedPlan().collectLeaves()
    return sum(1 for i in range(leaves.size()) if leaves.apply(i).nodeName().startswith(("Scan", "FileScan")))


def input_records(spark) -> dict[int, int]:
    """Records each stage of the session read from files so far (a cached frame's reads are not
    file reads), once every event of the jobs that ran has reached the status store."""
    sc = spark.sparkContext._jsc.sc()
    sc.listenerBus().waitUntilEmpty()
    store = sc.statusStore()
    # Every attempt of every stage (Scala's default arguments, spelled out for py4j).
    stages = store.stageList(None, False, False, getattr(store, "stageList$default$4")(), None)
    return {stages.apply(i).stageId(): stages.apply(i).inputRecords() for i in range(stages.size())}


def test_the_default_run_reads_the_source_once_evidence_and_alerts_included(spark, tmp_path):
    """`partner-hunt run` with the defaults, as it ships: of all it reads from files (the source,
    every Delta log), the source's rows are read once, not once per output."""
    rows = 3_000
    source = tmp_path / "message_events"
    spark.createDataFrame(
        [
            ("t1", TS, f"m{i}", f"s{i}@p{i % 7}.com", r(f"u{i}@p{i % 7}.com"), True, i % 2 == 0, "Phish" if i % 5 == 0 else "", f"r{i}")
            for i in range(rows)
        ],
        SOURCE_DDL,
    ).write.format("delta").save(str(source))
    config = config_from_mapping({"source": str(source), "output": str(tmp_path / "results"), "hunt": {"start": "2026-03-01", "end": "2026-03-02"}})
    assert config.evidence.enabled and config.alerts.enabled
    before = input_records(spark)
    report = run.run(spark, config)
    assert report.status == "succeeded" and report.analyst_outputs.alerts_raised > 0
    read = sum(n for stage, n in input_records(spark).items() if stage not in before)
    # The source once, plus the few hundred actions of the Delta logs the run reads and writes.
    assert rows <= read < rows + 1_000, read
