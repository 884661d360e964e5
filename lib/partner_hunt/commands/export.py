"""`partner-hunt export`: the results and partners tables as files a SOC loads as they are.

Three formats (docs/export.md gives each one's source): a Microsoft Sentinel watchlist, a
Microsoft Defender for Endpoint indicators import, and Teams external access candidates. The
tables are read through `io`; the rows are built in plain Python (a window's results and a
tenant's partners are a few thousand rows at most) and written as UTF-8 CSV with a header row.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from partner_hunt.config import Config
from partner_hunt.store import io, runlog
from partner_hunt.store.locations import Locations

log = logging.getLogger("partner_hunt")

FORMATS = ("sentinel-watchlist", "defender-indicators", "teams-allowlist")
WATCHLIST_COLUMNS = (
    "SearchKey", "TenantId", "Domain", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats",
    "Bad_Traffic_Percentage", "FirstSeenOutbound", "FirstSeenInbound", "NewPartner", "BaselineThreatRate",
    "WindowStart", "WindowEnd", "Mode",
    # From the partner risk table, where the Teams signal tables feed one (docs/partner-risk.md).
    "RiskScore",
)
# Microsoft's import template, in its order (docs/export.md).
DEFENDER_COLUMNS = (
    "IndicatorType", "IndicatorValue", "ExpirationTime", "Action", "Severity", "Title", "Description",
    "RecommendedActions", "RbacGroups", "Category", "MitreTechniques", "GenerateAlert",
)
DEFENDER_ACTIONS = ("Audit", "Alert", "Warn", "Block", "AlertAndBlock")
DEFENDER_MAX_ACTIVE = 15_000  # active indicators per tenant
DEFENDER_BATCH = 500  # indicators per imported file
TEAMS_COLUMNS = (
    "Domain", "Recommendation", "TenantId", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats",
    "WindowOutbound", "WindowThreats", "FirstSeenOutbound", "LastSeenOutbound", "Reason",
)
Row = Mapping[str, Any]


class ExportError(ValueError):
    """The export cannot be written as asked; the message says why."""


@dataclass
class ExportSummary:
    """What an export wrote, and what it left out and why."""

    format: str
    files: list[str] = field(default_factory=list)
    rows: int = 0
    left_out: int = 0
    notes: list[str] = field(default_factory=list)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Row]) -> None:
    """UTF-8, a header row, RFC 4180 quoting (fields with commas, quotes or newlines are quoted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_text(row.get(c)) for c in columns])


def one_tenant(rows: Sequence[Row], tenant: str | None, fmt: str) -> list[Row]:
    """The rows of one tenant: `tenant`, or the only one there is (Defender and Teams are per tenant)."""
    if tenant is not None:
        return [r for r in rows if r["TenantId"] == tenant]
    tenants = sorted({r["TenantId"] for r in rows})
    if len(tenants) > 1:
        raise ExportError(f"{fmt} is per tenant and the tables hold {len(tenants)} ({', '.join(tenants)}): pick one with --tenant")
    return list(rows)


def watchlist_rows(
    results: Sequence[Row], partners: Mapping[tuple[str, str], Row], scores: Mapping[tuple[str, str], float] | None = None
) -> list[dict[str, Any]]:
    """Sentinel watchlist rows: the domain as `SearchKey`, the window's counts and ratio, history,
    and the partner's `RiskScore` where `scores` has one."""
    out = []
    for r in results:
        p = partners.get((r["TenantId"], r["SenderFromDomain"]), {})
        out.append({
            **{c: r.get(c) for c in ("TenantId", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats",
                                     "Bad_Traffic_Percentage", "WindowStart", "WindowEnd", "Mode")},
            "SearchKey": r["SenderFromDomain"],
            "Domain": r["SenderFromDomain"],
            **{c: p.get(c) for c in ("FirstSeenOutbound", "FirstSeenInbound", "NewPartner", "BaselineThreatRate")},
            "RiskScore": (scores or {}).get((r["TenantId"], r["SenderFromDomain"])),
        })
    return out


def severity(row: Row, high_threats: int, min_ratio: float | None) -> str:
    """High from `alerts.high_inbound_threats` threats, Medium from `alerts.min_ratio`, else Low."""
    if row["IncomingTeamsMessagesWithThreats"] >= high_threats:
        return "High"
    ratio = row.get("Bad_Traffic_Percentage")
    return "Medium" if min_ratio is not None and ratio is not None and ratio >= min_ratio else "Low"


def defender_rows(
    results: Sequence[Row],
    partners: Mapping[tuple[str, str], Row],
    *,
    action: str,
    expires: datetime,
    limit: int,
    high_threats: int = 50,
    min_ratio: float | None = 0.5,
) -> tuple[list[dict[str, Any]], list[str]]:
    """`DomainName` indicators, most inbound threats first, and the domains left out over `limit`."""
    if action not in DEFENDER_ACTIONS:
        raise ExportError(f"--action {action!r} is not one of {', '.join(DEFENDER_ACTIONS)}")
    ranked = sorted(
        results,
        key=lambda r: (-r["IncomingTeamsMessagesWithThreats"], -(r.get("Bad_Traffic_Percentage") or 0.0), r["SenderFromDomain"]),
    )
    expiry = expires.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.0Z")
    rows = []
    for r in ranked[:limit]:
        domain = r["SenderFromDomain"]
        first = partners.get((r["TenantId"], domain), {}).get("FirstSeenOutbound")
        rows.append({
            "IndicatorType": "DomainName",
            "IndicatorValue": domain,
            "ExpirationTime": expiry,
            "Action": action,
            "Severity": severity(r, high_threats, min_ratio),
            "Title": f"Teams partner domain sending threats: {domain}",
            "Description": (
                f"partner-hunt (Microsoft hunting rule af2b5dbd-4b66-47b4-9936-abfecb246ba1, {r.get('Mode')} mode): "
                f"{r['IncomingTeamsMessagesWithThreats']} inbound Teams messages with threats, "
                f"{r['OutboundTeamsMessages']} outbound, ratio {_text(r.get('Bad_Traffic_Percentage'))}, "
                f"window {_text(r.get('WindowStart'))} to {_text(r.get('WindowEnd'))}"
                + (f", first outbound contact {_text(first)}" if first else "")
            ),
            "RecommendedActions": (
                "Confirm with the partner whether its accounts are compromised; review the evidence table "
                "for the messages; consider blocking the domain in Teams external access."
            ),
            "RbacGroups": "",
            "Category": "SuspiciousActivity",
            "MitreTechniques": "T1566",
            "GenerateAlert": action in ("Audit", "Alert", "AlertAndBlock"),
        })
    return rows, [r["SenderFromDomain"] for r in ranked[limit:]]


def teams_rows(partners: Sequence[Row]) -> list[dict[str, Any]]:
    """Allowlist candidates (outbound traffic in the window) and block-review candidates (threats
    in the window and never any outbound traffic), allow first, busiest first."""
    out = []
    for p in partners:
        if not p["Domain"]:
            continue  # an address without a domain: nothing to allow or block
        if p["WindowOutbound"] > 0:
            threats = p["WindowThreats"]
            reason = f"{p['WindowOutbound']} outbound messages in the window"
            if threats:
                reason += f"; {threats} inbound threats too: review before allowing"
            out.append({**p, "Recommendation": "Allow", "Reason": reason})
        elif p["WindowThreats"] > 0 and p["OutboundTeamsMessages"] == 0:
            reason = f"{p['WindowThreats']} inbound threats in the window and no outbound message in the whole history"
            out.append({**p, "Recommendation": "ReviewBlock", "Reason": reason})
    return sorted(out, key=lambda r: (r["Recommendation"] != "Allow", -r["WindowOutbound"], -r["WindowThreats"], r["Domain"]))


def _batches(path: Path, count: int, size: int) -> list[Path]:
    """`path` for the first `size` rows, then `<stem>-2<suffix>`, ... for the next ones."""
    parts = max(1, -(-count // size))
    return [path if i == 0 else path.with_name(f"{path.stem}-{i + 1}{path.suffix}") for i in range(parts)]


def _read_latest_results(spark: SparkSession, locations: Locations, mode: str) -> list[Row]:
    """The result rows of the newest window of `mode` (bounded: one row per domain of one window)."""
    results_df = io.read_table(spark, locations.output).filter(F.col("Mode") == F.lit(mode))
    latest = results_df.agg(F.max("WindowEnd").alias("end")).collect()[0]["end"]
    if latest is None:
        raise ExportError(f"the results table '{locations.output}' has no {mode}-mode rows: run the hunt first")
    return [r.asDict() for r in results_df.filter(F.col("WindowEnd") == F.lit(latest)).collect()]


def _read_partners(spark: SparkSession, locations: Locations, variant: str) -> list[Row] | None:
    """The variant's partners rows, or None before any backfill or refresh wrote them."""
    if not io.table_exists(spark, locations.partners):
        return None
    # Bounded by the partners of the tenants: what the Teams admin list holds anyway.
    return [r.asDict() for r in io.read_table(spark, locations.partners).filter(F.col("Variant") == F.lit(variant)).collect()]


def _read_scores(spark: SparkSession, locations: Locations, variant: str) -> dict[tuple[str, str], float] | None:
    """Each partner's `RiskScore` of the variant, or None where no partner risk table was written."""
    if not io.table_exists(spark, locations.partner_risk):
        return None
    # Bounded by the partners of the tenants, as the partners table.
    rows = io.read_table(spark, locations.partner_risk).filter(F.col("Variant") == F.lit(variant)).select("TenantId", "Domain", "RiskScore").collect()
    return {(r["TenantId"], r["Domain"]): r["RiskScore"] for r in rows}


def export(
    spark: SparkSession,
    config: Config,
    fmt: str,
    out: Path,
    *,
    tenant: str | None = None,
    action: str = "Audit",
    expire_days: int = 30,
    limit: int = DEFENDER_MAX_ACTIVE,
    now: datetime | None = None,
) -> ExportSummary:
    """Write one export format to `out` (Defender: more files beside it past 500 indicators)."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    locations = Locations.from_config(config)
    summary = ExportSummary(fmt)
    partner_list = _read_partners(spark, locations, config.hunt.count_options().variant)
    by_key = {(p["TenantId"], p["Domain"]): p for p in partner_list or []}
    if partner_list is None and fmt != "teams-allowlist":
        summary.notes.append(f"no partners table at {locations.partners} (run backfill): first-seen columns are empty")
    if fmt == "teams-allowlist":
        if partner_list is None:
            raise ExportError(f"teams-allowlist needs the partners table '{locations.partners}': run backfill or run --incremental first")
        own = runlog.latest_own_domains(spark, locations)
        kept = [p for p in partner_list if p["Domain"] not in own.get(p["TenantId"], ())]
        rows: list[dict[str, Any]] = teams_rows(one_tenant(kept, tenant, fmt))
        write_csv(out, TEAMS_COLUMNS, rows)
        summary.files.append(str(out))
    elif fmt == "sentinel-watchlist":
        scores = _read_scores(spark, locations, config.hunt.count_options().variant)
        if scores is None:
            summary.notes.append(f"no partner risk table at {locations.partner_risk} (docs/partner-risk.md): RiskScore is empty")
        rows = watchlist_rows(_read_latest_results(spark, locations, config.hunt.mode), by_key, scores)
        if tenant is not None:
            rows = [r for r in rows if r["TenantId"] == tenant]
        write_csv(out, WATCHLIST_COLUMNS, rows)
        summary.files.append(str(out))
    else:
        results = one_tenant(_read_latest_results(spark, locations, config.hunt.mode), tenant, fmt)
        expires = (now or datetime.now(timezone.utc)) + timedelta(days=expire_days)
        a = config.alerts
        rows, left = defender_rows(
            results, by_key, action=action, expires=expires, limit=limit,
            high_threats=a.high_inbound_threats, min_ratio=a.min_ratio,
        )
        if left:
            summary.left_out = len(left)
            reason = (
                f"{len(left)} domain(s) left out over the limit of {limit:,} active indicators per tenant "
                f"(the fewest inbound threats): {', '.join(left[:10])}{' ...' if len(left) > 10 else ''}"
            )
            log.warning("defender-indicators: %s", reason)
            summary.notes.append(reason)
        paths = _batches(out, len(rows), DEFENDER_BATCH)
        for i, path in enumerate(paths):
            write_csv(path, DEFENDER_COLUMNS, rows[i * DEFENDER_BATCH : (i + 1) * DEFENDER_BATCH])
            summary.files.append(str(path))
    summary.rows = len(rows)
    return summary
