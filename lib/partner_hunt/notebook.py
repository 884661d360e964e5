"""Helpers for the hunting notebook: a config from widget values, and reads of one run's outputs."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from partner_hunt.commands import backfill
from partner_hunt.config import Config, load_config
from partner_hunt.core import partials, partners
from partner_hunt.store import io
from partner_hunt.store.locations import Locations
from partner_hunt.store.runlog import RunReport


def notebook_config(
    source: str,
    output: str,
    start: str | None = None,
    end: str | None = None,
    mode: str = "kql",
    top: int = 10,
    config_path: str | None = None,
    own_domains: str | None = "auto",
) -> Config:
    """A validated config for a notebook: the YAML file if given, then these values on top.

    `own_domains` is `hunt.own_domains`: `auto` (the default, as in `partner-hunt demo`) finds each
    tenant's own domains in the data and leaves them out in both modes, so the charts show
    partners; a comma-separated list names them; empty keeps the YAML's setting.
    """
    words = [w.strip() for w in (own_domains or "").split(",") if w.strip()]
    return load_config(
        config_path,
        {
            "source": source,
            "output": output,
            "hunt.start": start or None,
            "hunt.end": end or None,
            "hunt.mode": mode,
            "hunt.top": top,
            "hunt.own_domains": words or None,
            "hunt.own_domains_in_kql": True if words and words != ["off"] else None,
        },
    )


def focus_domain(report: RunReport, domain: str | None = None) -> tuple[str | None, str] | None:
    """(TenantId, domain) worth a closer look: `domain` if given, else the top alert's, else the
    top result's by inbound threats. The tenant is None when `domain` is in no shown row."""
    outputs = report.analyst_outputs
    shown = [*(outputs.top_alerts if outputs else []), *report.top_rows]
    if domain:
        tenants = [r["TenantId"] for r in shown if r["SenderFromDomain"] == domain]
        return (tenants[0] if tenants else None), domain
    if outputs and outputs.top_alerts:
        top = outputs.top_alerts[0]
        return top["TenantId"], top["SenderFromDomain"]
    if report.top_rows:
        top = max(report.top_rows, key=lambda r: (r["IncomingTeamsMessagesWithThreats"], r["OutboundTeamsMessages"]))
        return top["TenantId"], top["SenderFromDomain"]
    return None


def read_evidence(spark: SparkSession, report: RunReport, tenant: str | None = None, domain: str | None = None) -> DataFrame:
    """The evidence rows of the report's window, optionally of one (tenant, domain)."""
    evidence_df = io.read_window_rows(spark, report.locations.evidence, report.window_key())
    if tenant is not None:
        evidence_df = evidence_df.filter(F.col("TenantId") == F.lit(tenant))
    if domain is not None:
        evidence_df = evidence_df.filter(F.col("SenderFromDomain") == F.lit(domain))
    return evidence_df


def daily_trend(spark: SparkSession, report: RunReport, tenant: str | None, domain: str) -> list[Row]:
    """(Day, OutboundTeamsMessages, IncomingTeamsMessagesWithThreats) of one domain, by day."""
    trend_df = read_evidence(spark, report, tenant, domain).select(F.inline("DailyCounts")).orderBy("Day")
    # Bounded: one row per day of the window.
    return trend_df.collect()


def widget_or_env(widgets: Any, name: str, env: str, default: str) -> str:
    """A notebook parameter: the Databricks widget `name` where `widgets` (dbutils.widgets) exists,
    seeded from the environment variable `env`; else that variable; else `default`."""
    seeded = os.environ.get(env, default)
    if widgets is None:
        return seeded
    widgets.text(name, seeded)
    return str(widgets.get(name))


PARTNER_COLUMNS = (
    "TenantId", "Domain", "FirstSeenOutbound", "FirstSeenInbound", "ActiveDays", "WindowOutbound", "WindowThreats",
    "BaselineThreatRate", "WindowThreatRate", "ThreatRateChange",
)


def partner_history(spark: SparkSession, config: Config, latest_days: int = 1) -> DataFrame | None:
    """The partners table over the config's window, with its last `latest_days` days as the latest
    window (so the days before it are history): computes the missing daily partials (backfill), then
    rewrites the partners rows. None when the window is not set in whole UTC days."""
    if config.hunt.start is None or config.hunt.end is None:
        return None
    try:
        start, end = partials.as_day(config.hunt.start), partials.as_day(config.hunt.end)
    except ValueError:
        return None
    latest = (max(start, end - timedelta(days=latest_days)), end)
    report = backfill.backfill(spark, config, start, end, partners_window=latest)
    return io.read_table(spark, report.locations.partners).filter(F.col("Variant") == F.lit(report.variant))


def new_partners(partners_df: DataFrame, top: int = 10) -> DataFrame:
    """The partners first contacted in the latest window, busiest first (display columns)."""
    return partners.new_partners(partners_df).select(*PARTNER_COLUMNS).limit(top)


def threat_rate_jumps(partners_df: DataFrame, top: int = 10, min_change: float = 0.1) -> DataFrame:
    """Established partners whose threat rate rose against their baseline, worst first (display columns)."""
    return partners.rate_jumps(partners_df, min_change=min_change).select(*PARTNER_COLUMNS).limit(top)


# The partner risk table's score and each of its parts, then the counts behind them.
RISK_COLUMNS = (
    "TenantId", "Domain", "RiskScore", "ScoreThreatsAtDelivery", "ScoreThreatsAfterDelivery", "ScoreClicksAllowed",
    "ScoreClicksThrough", "ScoreClicksBlocked", "ScoreThreatRateChange", "WindowInboundMessages", "WindowThreatsAtDelivery",
    "WindowThreatsAfterDelivery", "WindowRemovedAfterDelivery", "WindowClicks", "WindowUrlDomains", "FirstContact",
)


def partner_risk(spark: SparkSession, config: Config, top: int = 10) -> DataFrame | None:
    """The riskiest partners of the config's variant with their score's parts (display columns), or
    None where no partner risk table was written (no Teams signal table beside the source)."""
    ref = Locations.from_config(config).partner_risk
    if not io.table_exists(spark, ref):
        return None
    variant = config.hunt.count_options().variant
    return (
        io.read_table(spark, ref)
        .filter(F.col("Variant") == F.lit(variant))
        .orderBy(F.col("RiskScore").desc(), F.col("Domain"), F.col("TenantId"))
        .select(*RISK_COLUMNS)
        .limit(top)
    )
