"""With `hunt.own_domains: auto`, the nightly commands alone (`backfill`, then `run --incremental`)
derive each tenant's own domains, record them in the run log, and leave them out of the partners
table and the Teams external-access candidates. Expected rows are written by hand."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone

import pytest
from pyspark.sql import functions as F

from partner_hunt.cli import run_cli
from partner_hunt.store import io
from partner_hunt.store.locations import TableRef

pytestmark = pytest.mark.integration

SOURCE_DDL = (
    "TenantId string, Timestamp timestamp, TeamsMessageId string, SenderEmailAddress string, "
    "RecipientDetails array<struct<RecipientSmtpAddress:string>>, "
    "IsExternalThread boolean, IsOwnedThread boolean, ThreatTypes string, ReportId string"
)
D0 = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)


def day_of(tenant, n, ours, partner):
    """One day of a tenant: our users (at each of `ours`) write to the partner, sometimes with one
    of our own colleagues in the chat, and the partner sends one threat to each of our domains."""
    ts = D0 + timedelta(days=n)
    rows = []
    for i, own in enumerate(ours):
        rows += [
            (f"u{i}@{own}", [f"a@{partner}"], True, ""),
            (f"u{i}@{own}", [f"b@{partner}", f"colleague@{own}"], True, ""),
            (f"evil@{partner}", [f"v{i}@{own}"], False, "Phish"),
        ]
    return [
        (tenant, ts, f"{tenant}-{n}-{k}", sender, [(a,) for a in to], True, owned, threats, f"r-{tenant}-{n}-{k}")
        for k, (sender, to, owned, threats) in enumerate(rows)
    ]


@pytest.fixture
def lake(spark, tmp_path):
    rows = [r for n in range(3) for r in day_of("t1", n, ["contoso.com", "contoso.co.uk"], "p.com") + day_of("t2", n, ["fabrikam.org"], "q.com")]
    source = tmp_path / "message_events"
    spark.createDataFrame(rows, SOURCE_DDL).write.format("delta").save(str(source))
    config = tmp_path / "auto.yml"
    config.write_text("hunt:\n  own_domains: auto\n  trailing_days: 3\n  backfill_batch_days: 3\nalerts:\n  enabled: false\n")
    return source, tmp_path / "results", config


def test_backfill_and_refresh_leave_own_domains_out_of_partners_and_exports(spark, lake, tmp_path):
    source, output, config = lake
    common = ["--source", str(source), "--output", str(output), "--config", str(config), "--master", "local[2]"]
    assert run_cli(["backfill", *common, "--start", "2026-03-01", "--end", "2026-03-03"]) == 0
    assert run_cli(["run", "--incremental", *common, "--end", "2026-03-04"]) == 0

    found = {"t1": ["contoso.co.uk", "contoso.com"], "t2": ["fabrikam.org"]}
    log = io.read_table(spark, TableRef(f"{output}_run_log", True)).orderBy("StartedAt").collect()
    assert [(r["Command"], r["Status"], r["OwnDomains"]) for r in log] == [
        ("backfill", "succeeded", found),
        ("run --incremental", "succeeded", found),
    ]
    partners = io.read_table(spark, TableRef(f"{output}_partners", True))
    assert sorted((r["TenantId"], r["Domain"]) for r in partners.collect()) == [("t1", "p.com"), ("t2", "q.com")]
    # kql mode keeps the published query's rows (own_domains_in_kql is off): contoso.com is there.
    results = io.read_table(spark, TableRef(str(output), True)).filter(F.col("WindowEnd") == datetime(2026, 3, 4, tzinfo=timezone.utc))
    assert {r["SenderFromDomain"] for r in results.collect() if r["TenantId"] == "t1"} == {"contoso.com", "contoso.co.uk"}

    for tenant, partner in (("t1", "p.com"), ("t2", "q.com")):
        out = tmp_path / f"teams-{tenant}.csv"
        assert run_cli(["export", "--output", str(output), "--config", str(config), "--format", "teams-allowlist", "--tenant", tenant, "--out", str(out)]) == 0
        with out.open(encoding="utf-8") as handle:
            assert [(r["Domain"], r["Recommendation"]) for r in csv.DictReader(handle)] == [(partner, "Allow")]
