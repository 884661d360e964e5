"""Export files: columns, encoding, quoting and Defender's limits."""

from __future__ import annotations

import csv
import logging
from datetime import date, datetime, timezone

import pytest

from partner_hunt.commands import export
from partner_hunt.store.locations import TableRef

WINDOW = (datetime(2026, 3, 1, tzinfo=timezone.utc), datetime(2026, 3, 31, tzinfo=timezone.utc))


def result(domain, out, threats, ratio, tenant="t1"):
    return {
        "TenantId": tenant, "SenderFromDomain": domain, "OutboundTeamsMessages": out,
        "IncomingTeamsMessagesWithThreats": threats, "Bad_Traffic_Percentage": ratio,
        "WindowStart": WINDOW[0], "WindowEnd": WINDOW[1], "Mode": "kql",
    }


def partner(domain, window_out, window_threats, total_out, tenant="t1", first=date(2026, 1, 5)):
    return {
        "TenantId": tenant, "Domain": domain, "OutboundTeamsMessages": total_out,
        "IncomingTeamsMessagesWithThreats": window_threats, "WindowOutbound": window_out,
        "WindowThreats": window_threats, "FirstSeenOutbound": first if total_out else None,
        "LastSeenOutbound": date(2026, 3, 30) if total_out else None, "FirstSeenInbound": date(2026, 2, 1),
        "NewPartner": False, "BaselineThreatRate": 0.01,
    }


def read(path):
    raw = path.read_bytes()
    text = raw.decode("utf-8")  # fails on anything but UTF-8
    assert not text.startswith("\ufeff")
    return list(csv.reader(text.splitlines()))


def test_sentinel_watchlist_has_search_key_counts_and_first_seen(tmp_path):
    rows = export.watchlist_rows(
        [result("fabrikam.com", 200, 30, 0.15), result("ex,ample.com", 1, 2, 2.0)],
        {("t1", "fabrikam.com"): partner("fabrikam.com", 200, 30, 900)},
        {("t1", "fabrikam.com"): 12.5},
    )
    path = tmp_path / "watchlist.csv"
    export.write_csv(path, export.WATCHLIST_COLUMNS, rows)
    header, first, second = read(path)
    assert header == list(export.WATCHLIST_COLUMNS) and header[0] == "SearchKey"
    assert first == [
        "fabrikam.com", "t1", "fabrikam.com", "200", "30", "0.15", "2026-01-05", "2026-02-01", "false", "0.01",
        "2026-03-01T00:00:00Z", "2026-03-31T00:00:00Z", "kql", "12.5",
    ]
    # A comma inside a value is quoted, and reads back as one field; no score is an empty field.
    assert second[0] == "ex,ample.com" and len(second) == len(header) and second[-1] == ""
    assert '"ex,ample.com"' in path.read_text(encoding="utf-8")


def test_defender_indicators_follow_the_import_template_and_the_cap(tmp_path, caplog):
    results = [result(f"d{i}.com", 100, 60 - i, 0.6 - i / 100) for i in range(5)]
    rows, left = export.defender_rows(
        results, {}, action="Audit", expires=datetime(2026, 4, 30, tzinfo=timezone.utc), limit=3
    )
    assert [r["IndicatorValue"] for r in rows] == ["d0.com", "d1.com", "d2.com"]
    assert left == ["d3.com", "d4.com"]
    path = tmp_path / "indicators.csv"
    export.write_csv(path, export.DEFENDER_COLUMNS, rows)
    header, *body = read(path)
    assert header == [
        "IndicatorType", "IndicatorValue", "ExpirationTime", "Action", "Severity", "Title", "Description",
        "RecommendedActions", "RbacGroups", "Category", "MitreTechniques", "GenerateAlert",
    ]
    first = dict(zip(header, body[0], strict=True))
    assert (first["IndicatorType"], first["Action"], first["ExpirationTime"], first["GenerateAlert"]) == (
        "DomainName", "Audit", "2026-04-30T00:00:00.0Z", "true",
    )
    # 60 threats >= 50: High; 56 threats (d4 is out) would still be High; ratio alone gives Medium.
    assert [dict(zip(header, b, strict=True))["Severity"] for b in body] == ["High", "High", "High"]
    assert "60 inbound Teams messages with threats, 100 outbound" in first["Description"]
    assert export.severity(result("x", 10, 3, 0.3), 50, 0.5) == "Low"
    assert export.severity(result("x", 10, 6, 0.6), 50, 0.5) == "Medium"
    with pytest.raises(export.ExportError, match="--action 'Nuke'"):
        export.defender_rows(results, {}, action="Nuke", expires=WINDOW[1], limit=3)


def test_defender_files_split_at_500_indicators(tmp_path):
    paths = export._batches(tmp_path / "ind.csv", 1001, export.DEFENDER_BATCH)
    assert [p.name for p in paths] == ["ind.csv", "ind-2.csv", "ind-3.csv"]
    assert [p.name for p in export._batches(tmp_path / "ind.csv", 0, 500)] == ["ind.csv"]


def test_teams_candidates_allow_partners_and_review_threat_only_domains(tmp_path):
    rows = export.teams_rows(
        [
            partner("fabrikam.com", 50, 0, 400),
            partner("tailspin.com", 5, 4, 90),
            partner("evil.example", 0, 7, 0),
            # Threats now, but outbound in the past: not a block candidate, and no longer in the window.
            partner("oldfriend.com", 0, 2, 30),
            partner("quiet.com", 0, 0, 10),
        ]
    )
    path = tmp_path / "teams.csv"
    export.write_csv(path, export.TEAMS_COLUMNS, rows)
    header, *body = read(path)
    assert header == list(export.TEAMS_COLUMNS)
    assert [(b[0], b[1]) for b in body] == [
        ("fabrikam.com", "Allow"), ("tailspin.com", "Allow"), ("evil.example", "ReviewBlock"),
    ]
    assert "review before allowing" in body[1][-1]


def test_defender_and_teams_need_one_tenant():
    rows = [result("a.com", 1, 1, 1.0, tenant="t1"), result("b.com", 1, 1, 1.0, tenant="t2")]
    with pytest.raises(export.ExportError, match="hold 2 \\(t1, t2\\): pick one with --tenant"):
        export.one_tenant(rows, None, "defender-indicators")
    assert export.one_tenant(rows, "t2", "defender-indicators") == [rows[1]]


def test_export_reads_the_tables_and_reports_what_it_left_out(spark, tmp_path, caplog):
    from partner_hunt.config import config_from_mapping
    from partner_hunt.core.tables import RESULTS_DDL
    from partner_hunt.store import io

    out = tmp_path / "lake" / "results"
    config = config_from_mapping({"output": str(out)})
    older = datetime(2026, 2, 1, tzinfo=timezone.utc)
    rows = [
        ("t1", "a.com", 10, 9, 0.9, WINDOW[0], WINDOW[1], "kql", "r1", WINDOW[1]),
        ("t1", "b.com", 10, 3, 0.3, WINDOW[0], WINDOW[1], "kql", "r1", WINDOW[1]),
        ("t1", "old.com", 10, 50, 5.0, older, WINDOW[0], "kql", "r0", WINDOW[0]),
    ]
    io.append(spark.createDataFrame(rows, RESULTS_DDL), TableRef(str(out), True))
    with caplog.at_level(logging.WARNING, logger="partner_hunt"):
        summary = export.export(
            spark, config, "defender-indicators", tmp_path / "ind.csv", limit=1, now=datetime(2026, 4, 1, tzinfo=timezone.utc)
        )
    assert (summary.rows, summary.left_out) == (1, 1)
    assert [r[1] for r in read(tmp_path / "ind.csv")[1:]] == ["a.com"]  # the newest window only
    assert "1 domain(s) left out over the limit of 1 active indicators per tenant" in caplog.text
    assert "b.com" in caplog.text
    with pytest.raises(export.ExportError, match="teams-allowlist needs the partners table"):
        export.export(spark, config, "teams-allowlist", tmp_path / "teams.csv")
