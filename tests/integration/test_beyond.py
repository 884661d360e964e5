"""Beyond the query, end to end on a small demo lake: own domains found in the data, the partners
table kept by backfill, and the export files read back."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone

import pytest
from pyspark.sql import functions as F

from partner_hunt.cli import run_cli
from partner_hunt.core import sample
from partner_hunt.core.schema import DEFAULT_TENANT_ID
from partner_hunt.store import io
from partner_hunt.store.locations import TableRef

pytestmark = pytest.mark.integration


def test_demo_finds_its_own_domain_and_backfill_keeps_partners(spark, tmp_path, capsys):
    lake = tmp_path / "lake"
    assert run_cli(["demo", "--lake", str(lake), "--rows", "6000", "--days", "6", "--top", "5"]) == 0
    printed = capsys.readouterr().err
    assert f"Own domains found in the data and excluded (hunt.own_domains: auto): {DEFAULT_TENANT_ID}: {sample.OWN_DOMAIN}" in printed

    output = TableRef(str(lake / "partner_hunt_results"), True)
    results = io.read_table(spark, output).orderBy(F.col("OutboundTeamsMessages").desc()).collect()
    assert results and results[0]["SenderFromDomain"] != sample.OWN_DOMAIN
    assert sample.OWN_DOMAIN not in {r["SenderFromDomain"] for r in results}
    log_row = io.read_table(spark, output.sibling("run_log")).collect()[-1]
    assert (log_row["Command"], log_row["OwnDomains"]) == ("demo", {DEFAULT_TENANT_ID: [sample.OWN_DOMAIN]})

    end = datetime.now(timezone.utc).date()
    common = ["--source", str(lake / "message_events"), "--output", str(output)]
    # Five days of history, then the last day as the latest window: every partner is known before it.
    window = ["--start", str(end - timedelta(days=1)), "--end", str(end)]
    history = ["--start", str(end - timedelta(days=6)), "--end", str(end - timedelta(days=1)), "--batch-days", "5"]
    assert run_cli(["backfill", *common, *history]) == 0
    assert run_cli(["backfill", *common, *window]) == 0
    partners_df = io.read_table(spark, output.sibling("partners"))
    # The own domain is a recipient of outbound group chats in kql mode: backfill does not derive
    # own domains (the partials hold no senders), the export leaves them out by the run log.
    partners_df = partners_df.filter(~F.col("Domain").isin(sample.OWN_DOMAIN, ""))
    busiest = partners_df.orderBy(F.col("OutboundTeamsMessages").desc()).first()
    assert busiest["FirstSeenOutbound"] == end - timedelta(days=6)
    assert busiest["WindowStart"] == end - timedelta(days=1) and busiest["HistoryStart"] == end - timedelta(days=6)
    capsys.readouterr()

    teams = tmp_path / "teams.csv"
    assert run_cli(["export", "--output", str(output), "--format", "teams-allowlist", "--out", str(teams)]) == 0
    rows = list(csv.DictReader(teams.read_text(encoding="utf-8").splitlines()))
    allowed = {r["Domain"] for r in rows if r["Recommendation"] == "Allow"}
    assert busiest["Domain"] in allowed
    # The own domain derived by the demo run (run log) is no partner to allow.
    assert sample.OWN_DOMAIN not in allowed and "" not in allowed
    watchlist = tmp_path / "watchlist.csv"
    assert run_cli(["export", "--output", str(output), "--format", "sentinel-watchlist", "--out", str(watchlist)]) == 0
    header = watchlist.read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("SearchKey,TenantId,Domain,OutboundTeamsMessages")
    assert "sentinel-watchlist: " in capsys.readouterr().err
