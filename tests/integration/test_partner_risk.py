"""Defender's Teams signals from the export to the partner risk table: ingested beside MessageEvents
with the same guarantees, credited to the message's day, and a late signal recomputing exactly
that day, on a signal table with the change data feed and on an append-only one."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from partner_hunt import notebook
from partner_hunt.commands import backfill, diff, refresh
from partner_hunt.config import config_from_mapping
from partner_hunt.store import io
from partner_hunt.store.locations import TableRef
from tests.integration.test_ingest import TENANT, crlf, envelope, properties, run_ingest, ts, write_blob

pytestmark = pytest.mark.integration

POST = "AdvancedHunting-MessagePostDeliveryEvents"
URLS = "AdvancedHunting-MessageUrlInfo"
CLICKS = "AdvancedHunting-UrlClickEvents"
# Inbound from partner.com on 1 March: m1 clean at delivery (a URL in it), m2 a threat at delivery.
M1 = properties("m1", "2026-03-01T09:00:00.000Z", ["me@contoso.com"], owned=False, sender="a@partner.com")
M2 = properties("m2", "2026-03-01T10:00:00.000Z", ["me@contoso.com"], owned=False, threats="Phish", sender="b@partner.com")
# Outbound to partner.com on 1 and 2 March.
OUT1 = properties("o1", "2026-03-01T08:00:00.000Z", ["x@partner.com"])
OUT2 = properties("o2", "2026-03-02T08:00:00.000Z", ["y@partner.com"])
URL_M1 = {"Timestamp": "2026-03-01T09:00:00Z", "TeamsMessageId": M1["TeamsMessageId"], "Url": "https://bad.example/x", "UrlDomain": "bad.example", "ReportId": "u1"}
CLICK = {
    "Timestamp": "2026-03-02T07:00:00Z", "Url": "https://bad.example/x", "ActionType": "ClickAllowed", "AccountUpn": "me@contoso.com",
    "Workload": "Teams", "IsClickedThrough": True, "NetworkMessageId": None, "ReportId": "c1",
}
BAD_CLICK = {**CLICK, "IsClickedThrough": "maybe", "ReportId": "c2"}
# m2, a threat at delivery, removed by hand the same day.
REMEDIATED_M2 = {
    "Timestamp": "2026-03-01T11:00:00Z", "TeamsMessageId": M2["TeamsMessageId"], "ActionType": "Manual remediation",
    "Action": "Moved to quarantine", "ThreatTypes": None, "IsExternalThread": True, "ReportId": "p0",
}
# Found two days after delivery: m1 purged as phish.
ZAP_M1 = {
    "Timestamp": "2026-03-03T06:00:00Z", "TeamsMessageId": M1["TeamsMessageId"], "ActionType": "Phish ZAP", "Action": "Moved to quarantine",
    "ThreatTypes": "Phish", "IsExternalThread": True, "ReportId": "p1",
}


def risk_config(into, output, **signals):
    return config_from_mapping(
        {
            "source": str(into),
            "output": str(output),
            "hunt": {"end": "2026-03-04", "trailing_days": 3, "backfill_batch_days": 3},
            "alerts": {"enabled": False},
            "evidence": {"enabled": False},
            "signals": signals,
        }
    )


def signal_partials(spark, output, day):
    return (
        io.read_table(spark, TableRef(f"{output}_signal_partials", True))
        .filter(F.col("Day") == F.lit(day))
        .select("Domain", "InboundMessages", "ThreatsAtDelivery", "RemovedAfterDelivery", "ThreatsAfterDelivery", "ClicksAllowed", "ClicksThrough")
    )


PARTIALS_DDL = (
    "Domain string, InboundMessages long, ThreatsAtDelivery long, RemovedAfterDelivery long, ThreatsAfterDelivery long, "
    "ClicksAllowed long, ClicksThrough long"
)


def test_export_to_risk_table_with_a_late_purge(spark, tmp_path):
    folder, into, output = tmp_path / "export", tmp_path / "lake" / "events", tmp_path / "lake" / "results"
    write_blob(
        folder, 1, 9,
        crlf(
            envelope(OUT1), envelope(M1), envelope(M2), envelope(URL_M1, URLS), envelope(CLICK, CLICKS), envelope(CLICK, CLICKS),
            envelope(BAD_CLICK, CLICKS), envelope(REMEDIATED_M2, POST),
        ),
    )
    write_blob(folder, 2, 8, crlf(envelope(OUT2)))
    first = run_ingest(spark, folder, into, output)
    # The click delivered twice is kept once; the one whose flag is not a flag is quarantined.
    assert {k: first.ingest_counts[k] for k in ("RecordsIngested", "SignalRecords", "SignalRecordsIngested", "DuplicatesSkipped", "Quarantined")} == {
        "RecordsIngested": 4, "SignalRecords": 4, "SignalRecordsIngested": 3, "DuplicatesSkipped": 1, "Quarantined": 1,
    }
    quarantined = io.read_table(spark, TableRef(f"{into}_ingest_quarantine", True)).select("Reason", "Category")
    assert [tuple(r) for r in quarantined.collect()] == [("BAD_FLAG", CLICKS)]
    clicks = io.read_table(spark, TableRef(f"{into}_url_click_events", True)).select("TenantId", "Timestamp", "Url", "ActionType", "IsClickedThrough", "Workload")
    assert_df_equality(
        clicks,
        spark.createDataFrame(
            [(TENANT, ts(CLICK["Timestamp"]), CLICK["Url"], "ClickAllowed", True, "Teams")],
            "TenantId string, Timestamp timestamp, Url string, ActionType string, IsClickedThrough boolean, Workload string",
        ),
        ignore_nullable=True,
    )

    config = risk_config(into, output)
    backfill.backfill(spark, config, date(2026, 3, 1), date(2026, 3, 4))
    refresh.run_incremental(spark, config)
    assert_df_equality(
        signal_partials(spark, output, date(2026, 3, 1)),
        spark.createDataFrame([("partner.com", 2, 1, 1, 0, 1, 1)], PARTIALS_DDL),
        ignore_nullable=True,
    )

    # The purge lands two days after m1 was delivered: the refresh recomputes 1 March, and only it
    # (every signal table was read when the days were computed, so only its changes are looked at).
    write_blob(folder, 3, 6, crlf(envelope(ZAP_M1, POST)))
    assert run_ingest(spark, folder, into, output).ingest_counts["SignalRecordsIngested"] == 1
    report = refresh.run_incremental(spark, config)
    assert (report.refresh_kind, report.days_computed) == ("incremental", [date(2026, 3, 1)])
    assert_df_equality(
        signal_partials(spark, output, date(2026, 3, 1)),
        spark.createDataFrame([("partner.com", 2, 1, 2, 1, 1, 1)], PARTIALS_DDL),
        ignore_nullable=True,
    )
    risk_df = io.read_table(spark, TableRef(f"{output}_partner_risk", True)).select(
        "Domain", "WindowOutbound", "WindowThreatsAtDelivery", "WindowThreatsAfterDelivery", "WindowClicksThrough", "RiskScore"
    )
    # 1 at delivery + 2 x 1 after + 3 x 1 allowed + 5 x 1 through; no baseline, so no rate part.
    # contoso.com is there because `kql` mode credits m2's threat to its recipient's domain.
    assert_df_equality(
        risk_df,
        spark.createDataFrame(
            [("partner.com", 2, 1, 1, 1, 11.0), ("contoso.com", 0, 0, 0, 0, 0.0)],
            "Domain string, WindowOutbound long, WindowThreatsAtDelivery long, WindowThreatsAfterDelivery long, WindowClicksThrough long, RiskScore double",
        ),
        ignore_nullable=True,
        ignore_row_order=True,
    )

    # The notebook's risk cell shows the same partners, riskiest first, with the score's parts.
    shown = notebook.partner_risk(spark, config)
    assert [(r["Domain"], r["RiskScore"], r["ScoreClicksThrough"]) for r in shown.collect()] == [("partner.com", 11.0, 5.0), ("contoso.com", 0.0, 0.0)]

    # known-now mode counts m1, purged as phish after delivery; diff says which partner moved and why.
    window = config_from_mapping(
        {"source": str(into), "output": str(output), "hunt": {"start": "2026-03-01", "end": "2026-03-04", "top": 0}, "evidence": {"enabled": False}}
    )
    compared = diff.run_diff(spark, window)
    moved = [(r["SenderFromDomain"], r["Status"], r["CorrectedInbound"], r["KnownNowInbound"], r["FoundAfterDelivery"]) for r in compared.known_now_rows]
    assert moved == [("partner.com", "counts differ", 1, 2, 1)]
    assert compared.known_now_counts == {"counts differ": 1}


def test_a_late_signal_in_an_append_only_table_recomputes_its_message_day(spark, tmp_path, caplog):
    folder, into, output = tmp_path / "export", tmp_path / "lake" / "events", tmp_path / "lake" / "results"
    write_blob(folder, 1, 9, crlf(envelope(OUT1), envelope(M1), envelope(M2)))
    write_blob(folder, 2, 8, crlf(envelope(OUT2)))
    run_ingest(spark, folder, into, output)
    config = risk_config(into, output)
    with caplog.at_level(logging.INFO, logger="partner_hunt"):
        backfill.backfill(spark, config, date(2026, 3, 1), date(2026, 3, 4))
    # No signal table: said once, and nothing of the partner risk is written.
    assert sum("none of Defender's signal tables" in r.getMessage() for r in caplog.records) == 1
    assert not io.table_exists(spark, TableRef(f"{output}_partner_risk", True))
    assert not io.table_exists(spark, TableRef(f"{output}_signal_partials", True))

    # A post-delivery table another job keeps, append-only and without the change data feed.
    post = tmp_path / "lake" / "post_delivery"
    ddl = "TenantId string, Timestamp timestamp, TeamsMessageId string, ActionType string, ThreatTypes string"
    spark.createDataFrame([(TENANT, ts("2026-03-01T09:30:00Z"), "/teams/t/messages/none", "Manual remediation", None)], ddl).write.format("delta").save(str(post))
    config = risk_config(into, output, post_delivery=str(post))
    # Its first refresh with the table recomputes every day: none was computed with signals yet.
    first = refresh.run_incremental(spark, config)
    assert (first.refresh_kind, len(first.days_computed)) == ("full", 3)
    assert "was not read when the window's days were computed" in first.refresh_reason
    spark.createDataFrame([(TENANT, ts(ZAP_M1["Timestamp"]), M1["TeamsMessageId"], "Phish ZAP", "Phish")], ddl).write.format("delta").mode("append").save(str(post))

    def refresh_recomputes_1_march(reason: str, removed: int) -> None:
        """The refresh recomputes 1 March alone, for `reason`; partner.com then has `removed` removals."""
        report = refresh.run_incremental(spark, config)
        assert (report.refresh_kind, report.days_computed) == ("incremental", [date(2026, 3, 1)])
        assert reason in report.refresh_reason, report.refresh_reason
        assert_df_equality(
            signal_partials(spark, output, date(2026, 3, 1)),
            spark.createDataFrame([("partner.com", 2, 1, removed, 1, 0, 0)], PARTIALS_DDL),
            ignore_nullable=True,
        )

    refresh_recomputes_1_march("only appended rows", removed=1)
    # The feed turned on after a late append: the range it cannot cover is read as appends.
    remediated = (TENANT, ts("2026-03-03T07:00:00Z"), M2["TeamsMessageId"], "Manual remediation", None)
    spark.createDataFrame([remediated], ddl).write.format("delta").mode("append").save(str(post))
    spark.sql(f"ALTER TABLE delta.`{post}` SET TBLPROPERTIES (delta.enableChangeDataFeed = true)")
    refresh_recomputes_1_march("read one by one", removed=2)
    # From then on the feed says which rows changed, a delete included.
    spark.sql(f"DELETE FROM delta.`{post}` WHERE TeamsMessageId = '{M2['TeamsMessageId']}'")
    refresh_recomputes_1_march("change data feed of versions", removed=1)


def test_signal_tables_that_cannot_be_read_fail_before_any_output(spark, tmp_path):
    from partner_hunt.commands import run
    from partner_hunt.core import sample
    from partner_hunt.store.signal_sources import SignalTableError

    source, output = tmp_path / "lake" / "events", tmp_path / "lake" / "results"
    sample.generate_events(spark, 200, days=2, seed=3).write.format("delta").save(str(source))
    start, end = date.today() - timedelta(days=2), date.today()

    def fails(message, **settings):
        config = config_from_mapping({"source": str(source), "output": str(output), "hunt": {"start": start.isoformat(), "end": end.isoformat()}, **settings})
        command = (lambda: run.run(spark, config)) if config.hunt.mode == "known-now" else (lambda: backfill.backfill(spark, config, start, end))
        with pytest.raises(SignalTableError, match=message):
            command()
        assert not io.table_exists(spark, TableRef(str(output), True))
        assert not (tmp_path / "lake" / "results_partials").exists()

    # A folder that is not a Delta table where a signal table should be.
    not_delta = tmp_path / "lake" / "clicks"
    not_delta.mkdir()
    (not_delta / "clicks.csv").write_text("Url,Workload\n")
    fails(r"'.*clicks' \(UrlClickEvents\) is there but is not a Delta table", signals={"url_clicks": str(not_delta)})
    # A post-delivery table without the column that says what was done.
    post = tmp_path / "lake" / "post"
    spark.createDataFrame([("t", "m")], "TenantId string, TeamsMessageId string").withColumn("Timestamp", F.current_timestamp()).write.format(
        "delta"
    ).save(str(post))
    fails(r"MessagePostDeliveryEvents\) is missing column\(s\) ActionType, ThreatTypes", signals={"post_delivery": str(post)})
    # known-now mode with no post-delivery table at all.
    fails("hunt.mode known-now counts the threats found after delivery", hunt={"start": start.isoformat(), "end": end.isoformat(), "mode": "known-now"})
