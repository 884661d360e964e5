"""A window's analyst outputs follow its latest results: alerts withdrawn and raised again, the
window's JSON Lines rewritten, evidence rows replaced, partials of another source refused, and the
quarantine's records redacted. Small Delta round-trips over a seven-row source."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from partner_hunt.cli import run_cli
from partner_hunt.commands import run
from partner_hunt.config import config_from_mapping
from partner_hunt.core import alerts
from partner_hunt.core.schema import DEFAULT_TENANT_ID
from partner_hunt.core.tables import PARTIALS_DDL, window_key
from partner_hunt.store import io, merge
from partner_hunt.store.locations import TableRef
from partner_hunt.store.partials_table import PartialsMismatchError
from partner_hunt.store.predicates import Retirement

pytestmark = pytest.mark.integration

SOURCE_DDL = (
    "Timestamp timestamp, TeamsMessageId string, SenderEmailAddress string, "
    "RecipientDetails array<struct<RecipientSmtpAddress:string,RecipientDisplayName:string>>, "
    "IsExternalThread boolean, IsOwnedThread boolean, ThreatTypes string, ReportId string"
)
D1 = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
D2 = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
START, END = datetime(2026, 3, 1, tzinfo=timezone.utc), datetime(2026, 3, 3, tzinfo=timezone.utc)
WINDOW = "20260301T000000Z_20260303T000000Z"


def r(*addrs):
    return [(a, "Some Name") for a in addrs]


@pytest.fixture(scope="module")
def source(spark, tmp_path_factory):
    """The source, written once: every test only reads it."""
    rows = [
        (D1, "o1", "me@contoso.com", r("a@p.com", "b@p.com"), True, True, "", "r1"),
        (D1, "i1", "bad@p.com", r("x@p.com"), True, False, "Phish", "r3"),
        (D2, "o3", "me@contoso.com", r("c@p.com", "d@q.com"), True, True, "", "r5"),
        (D2, "i3", "bad@q.com", r("y@q.com"), True, False, "Malware", "r6"),
        # No readable time: quarantined by every run, with its addresses.
        (None, "bt", "Alice.Smith@p.com", r("Bob@q.com"), True, False, "Phish", "r7"),
    ]
    path = tmp_path_factory.mktemp("outputs_lake") / "message_events"
    spark.createDataFrame(rows, SOURCE_DDL).write.format("delta").save(str(path))
    return path


def make_config(source, output, exclude=(), record=None, start=START, end=END):
    quality = {"max_bad_fraction": 0.5}
    if record:
        quality["quarantine_record"] = record
    return config_from_mapping(
        {
            "source": str(source),
            "output": str(output),
            "hunt": {"start": start, "end": end, "exclude_domains": list(exclude), "top": 5},
            "quality": quality,
            # Every domain with one inbound threat is an alert; no spike rule (no partials here).
            "alerts": {"min_inbound_threats": 1, "min_ratio": None, "spike_factor": None},
        }
    )


def alert_rows(spark, output: Path):
    return spark.read.format("delta").load(f"{output}_alerts").select(
        "SenderFromDomain", "Status", "RunId", "WithdrawnByRunId", "FirstRaisedAt", "LastRaisedAt", "WithdrawnAt"
    )


ALERT_ROW_DDL = (
    "SenderFromDomain string, Status string, RunId string, WithdrawnByRunId string, FirstRaisedAt timestamp, "
    "LastRaisedAt timestamp, WithdrawnAt timestamp"
)


def jsonl(folder: Path) -> dict[str, dict]:
    """The window partition's findings by domain (every file, every line)."""
    lines = [line for f in sorted(folder.glob("*.json")) for line in f.read_text().splitlines() if line]
    findings = [json.loads(line) for line in lines]
    by_domain = {f["resources"][0]["name"]: f for f in findings}
    assert len(by_domain) == len(findings), "one line per finding"
    return by_domain


def token(local: str) -> str:
    return hashlib.sha256(local.lower().encode()).hexdigest()[:16]


def quarantined(spark, output: Path, run_id: str):
    rows = spark.read.format("delta").load(f"{output}_quarantine").filter(F.col("RunId") == run_id).collect()
    assert len(rows) == 1 and rows[0]["TeamsMessageId"] == "bt" and rows[0]["ReportId"] == "r7"
    return rows[0]["SourceRecord"]


def test_rerun_withdraws_stale_alerts_and_raises_them_again(spark, source, tmp_path):
    out = tmp_path / "out" / "results"
    partition = Path(f"{out}_alerts_jsonl") / "mode=kql" / f"window={WINDOW}"

    first = run.run(spark, make_config(source, out))
    assert (first.analyst_outputs.alerts_raised, first.analyst_outputs.alerts_withdrawn) == (2, 0)
    t1 = first.started_at

    # The same window without p.com. Its alert must not stay active.
    second = run.run(spark, make_config(source, out, exclude=["p.com"], record="none"))
    t2 = second.started_at
    assert (second.analyst_outputs.alerts_raised, second.analyst_outputs.alerts_withdrawn) == (1, 1)
    assert [a["SenderFromDomain"] for a in second.analyst_outputs.withdrawn_alerts] == ["p.com"]
    assert_df_equality(
        alert_rows(spark, out),
        spark.createDataFrame(
            [
                ("p.com", "Resolved", first.run_id, second.run_id, t1, t1, t2),
                ("q.com", "New", second.run_id, None, t1, t2, None),
            ],
            ALERT_ROW_DDL,
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    findings = jsonl(partition)
    assert {d: (f["status_id"], f["status"], f["activity_name"]) for d, f in findings.items()} == {
        "p.com": (4, "Resolved", "Close"),
        "q.com": (1, "New", "Create"),
    }
    # The window's evidence is replaced as a whole: the excluded domain's row is gone.
    evidence = spark.read.format("delta").load(f"{out}_evidence").select("SenderFromDomain").collect()
    assert sorted(e[0] for e in evidence) == ["q.com"]

    # Raised again: active again, first raised when it first was, no withdrawal left on it.
    third = run.run(spark, make_config(source, out, record="full"))
    t3 = third.started_at
    assert (third.analyst_outputs.alerts_raised, third.analyst_outputs.alerts_withdrawn) == (2, 0)
    assert_df_equality(
        alert_rows(spark, out),
        spark.createDataFrame(
            [
                ("p.com", "New", third.run_id, None, t1, t3, None),
                ("q.com", "New", third.run_id, None, t1, t3, None),
            ],
            ALERT_ROW_DDL,
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    assert {d: f["status"] for d, f in jsonl(partition).items()} == {"p.com": "New", "q.com": "New"}

    # The same findings again: the stored alerts stand as the third run left them, with no commit.
    ref = TableRef(f"{out}_alerts", True)
    version, stored = io.table_version(spark, ref), alert_rows(spark, out).collect()
    fourth = run.run(spark, make_config(source, out, record="full"))
    assert io.table_version(spark, ref) == version
    assert_df_equality(alert_rows(spark, out), spark.createDataFrame(stored, ALERT_ROW_DDL), ignore_row_order=True, ignore_nullable=True)
    assert (fourth.analyst_outputs.alerts_raised, fourth.analyst_outputs.alerts_withdrawn) == (0, 0)
    assert any("alerts unchanged" in note for note in fourth.analyst_outputs.notes)
    assert {d: f["status"] for d, f in jsonl(partition).items()} == {"p.com": "New", "q.com": "New"}

    # The bad row is quarantined once, by the first run, redacted (the default); the reruns read it
    # again (under other quarantine_record settings) and store nothing new.
    record = json.loads(quarantined(spark, out, first.run_id))
    assert record["SenderEmailAddress"] == f"{token('alice.smith')}@p.com"
    assert record["RecipientDetails"] == [{"RecipientSmtpAddress": f"{token('bob')}@q.com", "RecipientDisplayName": None}]
    stored = spark.read.format("delta").load(f"{out}_quarantine").select("RunId").collect()
    assert [r["RunId"] for r in stored] == [first.run_id]
    assert (second.rows_quarantined, third.rows_quarantined) == (1, 1)


def test_open_window_withdraws_and_the_jsonl_is_rewritten_when_nothing_is_raised(spark, source, tmp_path):
    out = tmp_path / "results"
    partition = Path(f"{out}_alerts_jsonl") / "mode=kql" / "window=open_open"
    run.run(spark, make_config(source, out, start=None, end=None))
    assert set(jsonl(partition)) == {"p.com", "q.com"}
    quiet = run.run(spark, make_config(source, out, exclude=["p.com", "q.com"], start=None, end=None))
    assert (quiet.analyst_outputs.alerts_raised, quiet.analyst_outputs.alerts_withdrawn) == (0, 2)
    assert {d: f["status"] for d, f in jsonl(partition).items()} == {"p.com": "Resolved", "q.com": "Resolved"}
    # A second quiet run withdraws nothing more and keeps when each was withdrawn.
    again = run.run(spark, make_config(source, out, exclude=["p.com", "q.com"], start=None, end=None))
    assert (again.analyst_outputs.alerts_raised, again.analyst_outputs.alerts_withdrawn) == (0, 0)
    stored = spark.read.format("delta").load(f"{out}_alerts").select("WithdrawnByRunId").distinct().collect()
    assert [s[0] for s in stored] == [quiet.run_id]


def test_run_refuses_partials_of_another_source(spark, source, tmp_path, capsys):
    out = tmp_path / "results"
    other = "/elsewhere/message_events"
    marker = [(None, START.date(), "kql;normalize=0;messages=0;dedupe=0", "kql", None, 0, 0, None, None, other, 3, "r0", START, None)]
    spark.createDataFrame(marker, PARTIALS_DDL).write.format("delta").save(f"{out}_partials")
    with pytest.raises(PartialsMismatchError, match=f"computed from source '{other}', not '{source}'"):
        run.run(spark, make_config(source, out))
    assert not io.table_exists(spark, TableRef(str(out), True)), "refused before writing results"
    args = ["run", "--source", str(source), "--output", str(out), "--master", "local[2]"]
    assert run_cli(args + ["--start", "2026-03-01", "--end", "2026-03-03"]) == 2
    assert other in capsys.readouterr().err


def test_an_alerts_table_from_before_the_lifecycle_gains_its_columns(spark, tmp_path):
    """Rows written without Status read as New; the first MERGE adds the columns and withdraws."""
    ref = TableRef(str(tmp_path / "alerts"), True)
    res = spark.createDataFrame(
        [("t1", d, 5, 20, 4.0, START, END, "kql", "r0", START) for d in ("p.com", "q.com")],
        "TenantId string, SenderFromDomain string, OutboundTeamsMessages long, IncomingTeamsMessagesWithThreats long, "
        "Bad_Traffic_Percentage double, WindowStart timestamp, WindowEnd timestamp, Mode string, RunId string, "
        "ComputedAt timestamp",
    )
    old_df = alerts.build_alerts(res, raised_at=START, run_id="r0").drop("Status", "WithdrawnAt", "WithdrawnByRunId")
    old_df.write.format("delta").save(ref.location)
    now = datetime(2026, 3, 4, tzinfo=timezone.utc)
    new_df = alerts.build_alerts(res.filter(F.col("SenderFromDomain") == "q.com"), raised_at=now, run_id="r1")
    key = window_key("kql", (START, END))
    retire = Retirement(key, alerts.withdrawal("r1", now), {"Status": alerts.STATUS_RESOLVED})
    merge.upsert(new_df, ref, "AlertId", alerts.PRESERVED_ON_UPDATE, retire)
    assert_df_equality(
        io.read_table(spark, ref).select("SenderFromDomain", "Status", "WithdrawnByRunId", "FirstRaisedAt", "LastRaisedAt"),
        spark.createDataFrame(
            [("p.com", "Resolved", "r1", START, START), ("q.com", "New", None, START, now)],
            "SenderFromDomain string, Status string, WithdrawnByRunId string, FirstRaisedAt timestamp, LastRaisedAt timestamp",
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_a_run_over_an_alerts_table_from_before_the_lifecycle_widens_it(spark, source, tmp_path):
    """The unchanged-alerts check needs the lifecycle's columns: an older table goes to the MERGE,
    which adds them, instead of failing the run."""
    out = tmp_path / "results"
    res = spark.createDataFrame(
        [(DEFAULT_TENANT_ID, d, 5, 20, 4.0, START, END, "kql", "r0", START) for d in ("p.com", "q.com")],
        "TenantId string, SenderFromDomain string, OutboundTeamsMessages long, IncomingTeamsMessagesWithThreats long, "
        "Bad_Traffic_Percentage double, WindowStart timestamp, WindowEnd timestamp, Mode string, RunId string, "
        "ComputedAt timestamp",
    )
    old_df = alerts.build_alerts(res, raised_at=START, run_id="r0").drop("Status", "WithdrawnAt", "WithdrawnByRunId")
    old_df.write.format("delta").save(f"{out}_alerts")
    report = run.run(spark, make_config(source, out))
    assert report.status == "succeeded"
    stored = io.read_table(spark, TableRef(f"{out}_alerts", True)).select("SenderFromDomain", "Status", "RunId").collect()
    assert sorted(tuple(r) for r in stored) == [("p.com", "New", report.run_id), ("q.com", "New", report.run_id)]
