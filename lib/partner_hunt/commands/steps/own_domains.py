"""The own-domain step of every command: with `hunt.own_domains: auto`, each tenant's own domains
are derived (from the window's events, or from the daily partials' evidence), recorded on the
run's report and logged. What a command then excludes is a value it passes on; the Config is
never rewritten."""

from __future__ import annotations

import logging
from datetime import date

from pyspark.sql import DataFrame

from partner_hunt.config import HuntSettings
from partner_hunt.core import own_domains as rules
from partner_hunt.core import partials
from partner_hunt.core.options import FinishOptions
from partner_hunt.store.runlog import RunReport

log = logging.getLogger("partner_hunt")


def from_events(hunt: HuntSettings, report: RunReport, events_df: DataFrame) -> dict[str, list[str]]:
    """Derive the own domains from a window's canonical events (quarantined rows dropped)."""
    if not hunt.own_domains_auto:
        return {}
    found_df = rules.derive_own_domains(events_df, min_share=hunt.own_domains_min_share, normalize=hunt.effective_normalize_domains)
    return _record(hunt, report, found_df)


def from_partials(hunt: HuntSettings, report: RunReport, partials_df: DataFrame, window: tuple[date, date]) -> dict[str, list[str]]:
    """Derive the own domains of a window from the daily partials' own-domain evidence."""
    if not hunt.own_domains_auto:
        return {}
    if "OwnDomainEvidence" not in partials_df.columns:
        # Partials written before they kept the evidence: say how to get it rather than fail.
        log.warning(
            "own domains not derived: the partials table %s keeps no own-domain evidence yet; "
            "`backfill --force` over the window recomputes its days with it",
            report.locations.partials,
        )
        report.own_domains = {}
        return {}
    days_df = partials_df.transform(partials.filter_window_days, report.variant, *window)
    return _record(hunt, report, rules.own_domains_from_counts(days_df, hunt.own_domains_min_share))


def _record(hunt: HuntSettings, report: RunReport, found_df: DataFrame) -> dict[str, list[str]]:
    # Bounded: a domain needs `min_share` of a tenant's evidence and a message names few domains,
    # so each tenant has a handful of rows at most.
    report.own_domains = rules.as_mapping(found_df.collect())
    shown = rules.describe(report.own_domains) or "none found"
    applied = "excluded" if hunt.apply_own_domains else "not excluded in kql mode (hunt.own_domains_in_kql: false)"
    log.info("own domains derived from the data (hunt.own_domains: auto), %s: %s", applied, shown)
    return report.own_domains


def results_exclusions(hunt: HuntSettings, finish: FinishOptions, found: dict[str, list[str]]) -> FinishOptions:
    """The exclusions a command finishes its results with: the derived own domains added where
    own domains apply (corrected mode, or kql mode with `hunt.own_domains_in_kql`)."""
    return finish.with_tenant_domains(found) if hunt.apply_own_domains else finish


def partner_exclusions(hunt: HuntSettings, finish: FinishOptions, found: dict[str, list[str]]) -> FinishOptions:
    """The exclusions of the partners table: own domains are never partners, in either mode."""
    return finish.with_domains(hunt.own_domains_list).with_tenant_domains(found)
