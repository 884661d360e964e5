"""Alert rules, ids, OCSF shape, and idempotent writes; expected rows are written by hand."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timezone

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from partner_hunt.core import alerts
from partner_hunt.store import io, jsonl, merge
from partner_hunt.store.locations import TableRef

RESULTS_DDL = (
    "TenantId string, SenderFromDomain string, OutboundTeamsMessages long, "
    "IncomingTeamsMessagesWithThreats long, Bad_Traffic_Percentage double, WindowStart timestamp, "
    "WindowEnd timestamp, Mode string, RunId string, ComputedAt timestamp"
)
PARTIALS_DDL = (
    "TenantId string, Day date, Variant string, Mode string, Domain string, OutboundTeamsMessages long, "
    "IncomingTeamsMessagesWithThreats long, FirstSeen timestamp, LastSeen timestamp"
)
START = datetime(2026, 3, 8, tzinfo=timezone.utc)
END = datetime(2026, 3, 10, tzinfo=timezone.utc)
RAISED = datetime(2026, 3, 10, 6, tzinfo=timezone.utc)
VARIANT = "kql;normalize=0;messages=0;dedupe=0"
RULE = "af2b5dbd-4b66-47b4-9936-abfecb246ba1"


def results(spark, *rows, mode="kql"):
    return spark.createDataFrame(
        [("t1", d, o, i, r, START, END, mode, "run-0", START) for d, o, i, r in rows], RESULTS_DDL
    )


def expected_id(domain, mode="kql"):
    """The id as specified: sha256 of tenant, window bounds (epoch micros), domain, mode; 32 hex digits."""
    micros = lambda t: str(int(t.timestamp()) * 1_000_000)  # noqa: E731
    key = "\x1f".join(["t1", micros(START), micros(END), domain, mode])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def summary(alerts_df):
    return alerts_df.select("AlertId", "SenderFromDomain", "Reasons", "SeverityId", "Severity", "BaselineDailyThreats")


SUMMARY_DDL = (
    "AlertId string, SenderFromDomain string, Reasons array<string>, SeverityId int, Severity string, "
    "BaselineDailyThreats double"
)


def check(actual_df, expected_df):
    assert_df_equality(actual_df, expected_df, ignore_row_order=True, ignore_nullable=True)


def test_volume_and_ratio_rules_without_partials(spark):
    res = results(
        spark,
        ("volume.com", 1000, 12, 0.01),  # volume only
        ("ratio.com", 4, 3, 0.75),  # ratio only (3 threats reach ratio_min_inbound)
        ("both.com", 10, 60, 6.0),  # both, and past the High bar
        ("noise.com", 1, 2, 2.0),  # high ratio but too few threats to matter
        ("quiet.com", 500, 9, 0.02),  # under every threshold
        ("noratio.com", 5, 4, None),  # ratio not computed: only the volume rule could fire
    )
    actual = alerts.build_alerts(
        res, raised_at=RAISED, run_id="run-1", min_inbound_threats=10, min_ratio=0.5, ratio_min_inbound=3,
        spike_factor=3.0, high_inbound_threats=50,
    )
    check(
        summary(actual),
        spark.createDataFrame(
            [
                (expected_id("volume.com"), "volume.com", ["volume"], 2, "Low", None),
                (expected_id("ratio.com"), "ratio.com", ["ratio"], 2, "Low", None),
                (expected_id("both.com"), "both.com", ["volume", "ratio"], 4, "High", None),
            ],
            SUMMARY_DDL,
        ),
    )
    check(
        actual.filter("SenderFromDomain = 'both.com'").select(
            "RuleId", "MitreTechnique", "MitreTactic", "FirstRaisedAt", "LastRaisedAt", "RunId"
        ),
        spark.createDataFrame(
            [(RULE, "T1566", "InitialAccess", RAISED, RAISED, "run-1")],
            "RuleId string, MitreTechnique string, MitreTactic string, FirstRaisedAt timestamp, "
            "LastRaisedAt timestamp, RunId string",
        ),
    )


def test_risk_rule_alerts_on_the_partner_risk_score(spark):
    res = results(spark, ("risky.com", 100, 1, 0.01), ("volume.com", 100, 12, 0.12), ("calm.com", 100, 1, 0.01), ("unscored.com", 9, 1, 0.11))
    risk_df = spark.createDataFrame(
        [("t1", "risky.com", 12.0), ("t1", "volume.com", 11.0), ("t1", "calm.com", 9.99), ("t1", "other.com", 50.0)],
        "TenantId string, Domain string, RiskScore double",
    )
    actual = alerts.build_alerts(
        res, raised_at=RAISED, run_id="run-1", min_inbound_threats=10, risk_df=risk_df, risk_min_score=10.0
    )
    # A scored partner the results do not hold (other.com) raises nothing: alerts are on result rows.
    check(
        summary(actual),
        spark.createDataFrame(
            [
                (expected_id("risky.com"), "risky.com", ["risk"], 2, "Low", None),
                (expected_id("volume.com"), "volume.com", ["volume", "risk"], 3, "Medium", None),
            ],
            SUMMARY_DDL,
        ),
    )
    # Without a threshold the scores change nothing.
    unscored = alerts.build_alerts(res, raised_at=RAISED, run_id="run-1", min_inbound_threats=10, risk_df=risk_df)
    assert [r["SenderFromDomain"] for r in unscored.collect()] == ["volume.com"]


def test_spike_against_the_domains_own_trailing_baseline(spark):
    partials_df = spark.createDataFrame(
        [
            # Markers: 2026-03-01..03-04 were computed (4 days), whatever their traffic.
            *[(None, date(2026, 3, d), VARIANT, "kql", None, 0, 0, None, None) for d in (1, 2, 3, 4)],
            ("t1", date(2026, 3, 2), VARIANT, "kql", "steady.com", 50, 8, None, None),
            ("t1", date(2026, 3, 3), VARIANT, "kql", "steady.com", 50, 8, None, None),
            ("t1", date(2026, 3, 2), VARIANT, "kql", "jump.com", 50, 2, None, None),
            # Another variant, and a day inside the window: neither is baseline.
            ("t1", date(2026, 3, 2), "corrected;x", "corrected", "jump.com", 50, 400, None, None),
            ("t1", date(2026, 3, 8), VARIANT, "kql", "jump.com", 50, 400, None, None),
        ],
        PARTIALS_DDL,
    )
    assert alerts.covered_days(partials_df, VARIANT, date(2026, 3, 1), date(2026, 3, 8)).collect()[0].Days == 4
    baseline = alerts.baseline_rates(partials_df, VARIANT, date(2026, 3, 1), date(2026, 3, 8), days=4)
    res = results(
        spark,
        ("steady.com", 100, 8, 0.08),  # 4 a day against a baseline of 16/4 = 4 a day: no spike
        ("jump.com", 100, 8, 0.08),  # 4 a day against 2/4 = 0.5 a day: a spike
        ("new.com", 100, 3, 0.03),  # no earlier threats at all: baseline 0, 3 threats is a spike
        ("tiny.com", 100, 2, 0.02),  # new, but below spike_min_inbound
    )
    actual = alerts.build_alerts(
        res, raised_at=RAISED, run_id="run-1", baseline_df=baseline, window_days=2.0, min_inbound_threats=0,
        min_ratio=None, spike_factor=3.0, spike_min_inbound=3,
    )
    check(
        summary(actual),
        spark.createDataFrame(
            [
                (expected_id("jump.com"), "jump.com", ["spike"], 2, "Low", 0.5),
                (expected_id("new.com"), "new.com", ["spike"], 2, "Low", 0.0),
            ],
            SUMMARY_DDL,
        ),
    )


def test_alert_id_depends_on_mode_and_window_not_on_counts(spark):
    a = alerts.build_alerts(results(spark, ("p.com", 1, 20, 20.0)), raised_at=RAISED, run_id="r")
    b = alerts.build_alerts(results(spark, ("p.com", 9, 30, 3.33)), raised_at=RAISED, run_id="r")
    c = alerts.build_alerts(results(spark, ("p.com", 1, 20, 20.0), mode="corrected"), raised_at=RAISED, run_id="r")
    ids = [df.collect()[0].AlertId for df in (a, b, c)]
    assert ids == [expected_id("p.com"), expected_id("p.com"), expected_id("p.com", "corrected")]


def test_ocsf_detection_finding_shape(spark):
    alert_df = alerts.build_alerts(results(spark, ("p.com", 10, 60, 6.0)), raised_at=RAISED, run_id="r")
    finding = json.loads(alerts.to_ocsf(alert_df).toJSON().collect()[0])
    assert finding["class_uid"] == 2004 and finding["type_uid"] == 200401 and finding["category_uid"] == 2
    assert finding["severity_id"] == 4 and finding["severity"] == "High"
    assert finding["time"] == int(RAISED.timestamp() * 1000)
    assert finding["start_time"] == int(START.timestamp() * 1000)
    assert finding["finding_info"]["uid"] == expected_id("p.com")
    assert finding["finding_info"]["analytic"] == {"uid": RULE, "name": alerts.RULE_NAME, "type_id": 1, "type": "Rule"}
    assert finding["attacks"] == [
        {"technique": {"uid": "T1566", "name": "Phishing"}, "tactic": {"uid": "TA0001", "name": "Initial Access"}}
    ]
    assert finding["resources"] == [{"type": "Domain", "name": "p.com", "uid": "p.com"}]
    assert finding["unmapped"]["TenantId"] == "t1" and finding["unmapped"]["IncomingTeamsMessagesWithThreats"] == 60


@pytest.mark.integration
def test_alerting_twice_keeps_one_alert_and_its_first_raised_time(spark, tmp_path):
    ref = TableRef(str(tmp_path / "alerts"), True)
    later = datetime(2026, 3, 11, tzinfo=timezone.utc)
    first = alerts.build_alerts(results(spark, ("p.com", 10, 20, 2.0), ("q.com", 5, 15, 3.0)), raised_at=RAISED, run_id="r1")
    second = alerts.build_alerts(results(spark, ("p.com", 10, 25, 2.5)), raised_at=later, run_id="r2")
    merge.upsert(first, ref, "AlertId", alerts.PRESERVED_ON_UPDATE)
    merge.upsert(first, ref, "AlertId", alerts.PRESERVED_ON_UPDATE)
    merge.upsert(second, ref, "AlertId", alerts.PRESERVED_ON_UPDATE)
    stored = io.read_table(spark, ref).select(
        "AlertId", "IncomingTeamsMessagesWithThreats", "FirstRaisedAt", "LastRaisedAt", "RunId"
    )
    check(
        stored,
        spark.createDataFrame(
            [
                (expected_id("p.com"), 25, RAISED, later, "r2"),
                (expected_id("q.com"), 15, RAISED, RAISED, "r1"),
            ],
            "AlertId string, IncomingTeamsMessagesWithThreats long, FirstRaisedAt timestamp, "
            "LastRaisedAt timestamp, RunId string",
        ),
    )

    out = tmp_path / "alerts_jsonl"
    for _ in range(2):
        jsonl.write_jsonl(
            alerts.to_ocsf(io.read_table(spark, ref)).withColumn("window", F.lit("w1")), str(out), ["window"]
        )
    lines = [line for f in sorted(out.glob("window=w1/*.json")) for line in f.read_text().splitlines() if line]
    assert len(lines) == 2
    assert {json.loads(line)["finding_info"]["uid"] for line in lines} == {expected_id("p.com"), expected_id("q.com")}


def test_new_alerts_are_active_and_withdrawal_sets_resolved_and_the_run(spark):
    alert_df = alerts.build_alerts(results(spark, ("p.com", 10, 60, 6.0)), raised_at=RAISED, run_id="r1")
    check(
        alert_df.select("AlertId", "Status", "WithdrawnAt", "WithdrawnByRunId", "RunId"),
        spark.createDataFrame(
            [(expected_id("p.com"), "New", None, None, "r1")],
            "AlertId string, Status string, WithdrawnAt timestamp, WithdrawnByRunId string, RunId string",
        ),
    )
    later = datetime(2026, 3, 11, tzinfo=timezone.utc)
    assert alerts.withdrawal("r2", later) == {"Status": "Resolved", "WithdrawnAt": later, "WithdrawnByRunId": "r2"}


def test_ocsf_status_and_activity_follow_the_alert_lifecycle(spark):
    withdrawn_at = datetime(2026, 3, 12, tzinfo=timezone.utc)
    later = datetime(2026, 3, 11, tzinfo=timezone.utc)
    base = alerts.build_alerts(
        results(spark, ("new.com", 1, 60, 6.0), ("again.com", 1, 60, 6.0), ("gone.com", 1, 60, 6.0), ("old.com", 1, 60, 6.0)),
        raised_at=RAISED,
        run_id="r1",
    )
    domain = F.col("SenderFromDomain")
    stored = base.withColumns(
        {
            "LastRaisedAt": F.when(domain == "again.com", F.lit(later)).otherwise(F.col("LastRaisedAt")),
            "Status": F.when(domain == "gone.com", F.lit("Resolved"))
            .when(domain == "old.com", F.lit(None))  # stored before the column existed
            .otherwise(F.col("Status")),
            "WithdrawnAt": F.when(domain == "gone.com", F.lit(withdrawn_at)),
            "WithdrawnByRunId": F.when(domain == "gone.com", F.lit("r3")),
        }
    )
    findings = {
        f["resources"][0]["name"]: f for f in (json.loads(line) for line in alerts.to_ocsf(stored).toJSON().collect())
    }
    ms = lambda t: int(t.timestamp() * 1000)  # noqa: E731
    shape = {
        d: (f["status_id"], f["status"], f["activity_id"], f["activity_name"], f["type_uid"], f["time"], f.get("status_detail"))
        for d, f in findings.items()
    }
    assert shape == {
        "new.com": (1, "New", 1, "Create", 200401, ms(RAISED), None),
        # Raised again: the same line as the first time but for the times, so reruns are stable.
        "again.com": (1, "New", 1, "Create", 200401, ms(later), None),
        "gone.com": (
            4, "Resolved", 3, "Close", 200403, ms(withdrawn_at),
            "withdrawn by run r3: the window's latest results no longer cross a threshold for this domain",
        ),
        "old.com": (1, "New", 1, "Create", 200401, ms(RAISED), None),
    }
    assert findings["gone.com"]["finding_info"]["modified_time"] == ms(withdrawn_at)
    assert findings["gone.com"]["finding_info"]["created_time"] == ms(RAISED)
    assert findings["gone.com"]["unmapped"]["WithdrawnByRunId"] == "r3"


def test_changed_names_the_alerts_a_merge_would_touch_and_nothing_else(spark):
    """Stored: same (unchanged), more (its count moves), gone (no longer raised), back (withdrawn,
    raised again), moved (an analyst set it In Progress; unchanged), old (a null status, read as New)."""
    later = datetime(2026, 3, 11, tzinfo=timezone.utc)
    stored = alerts.build_alerts(
        results(spark, *[(d, 10, 60, 6.0) for d in ("same.com", "more.com", "gone.com", "back.com", "moved.com", "old.com")]),
        raised_at=RAISED,
        run_id="r1",
    )
    domain = F.col("SenderFromDomain")
    stored = stored.withColumn(
        "Status",
        F.when(domain == "back.com", F.lit("Resolved"))
        .when(domain == "moved.com", F.lit("In Progress"))
        .when(domain == "old.com", F.lit(None))
        .otherwise(F.col("Status")),
    )
    # A later run with other run columns: only findings count.
    new = alerts.build_alerts(
        results(spark, *[(d, 10, 60, 6.0) for d in ("same.com", "back.com", "moved.com", "old.com", "new.com")], ("more.com", 10, 61, 6.1)),
        raised_at=later,
        run_id="r2",
    )
    check(
        alerts.changed(new, stored),
        spark.createDataFrame([(expected_id(d),) for d in ("more.com", "gone.com", "back.com", "new.com")], "AlertId string"),
    )
    # The active alerts raised again as they are: nothing to change.
    assert alerts.changed(stored.filter(domain != "back.com"), stored).count() == 0
