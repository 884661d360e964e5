"""The own domains a run excludes: listed in the config, or derived from the window's events."""

from __future__ import annotations

import dataclasses
import logging

from pyspark.sql import DataFrame

from partner_hunt import owndomains
from partner_hunt.config import Config
from partner_hunt.runlog import RunReport

log = logging.getLogger("partner_hunt")


def with_own_domains(config: Config, report: RunReport, events_df: DataFrame) -> Config:
    """The config the run finishes its results with: own domains added to the exclusions where
    they apply (corrected mode, or kql mode with `hunt.own_domains_in_kql`).

    With `hunt.own_domains: auto` the domains are derived from `events_df` (canonical events of the
    window, quarantined rows dropped), put on the report for the run log and logged, applied or not.
    """
    h = config.hunt
    if h.own_domains_auto:
        derived_df = owndomains.derive_own_domains(
            events_df, min_share=h.own_domains_min_share, normalize=h.effective_normalize_domains
        )
        # Bounded: a domain needs `min_share` of a tenant's messages and a message names few
        # domains, so each tenant has a handful of rows at most.
        report.own_domains = owndomains.as_mapping(derived_df.collect())
        shown = owndomains.describe(report.own_domains) or "none found"
        applied = "excluded" if h.apply_own_domains else "not excluded in kql mode (hunt.own_domains_in_kql: false)"
        log.info("own domains derived from the data (hunt.own_domains: auto), %s: %s", applied, shown)
        if not h.apply_own_domains:
            return config
        tenants = dataclasses.replace(
            config.tenants,
            exclude_domains=owndomains.merged_exclusions(config.tenants.exclude_domains, report.own_domains),
        )
        return dataclasses.replace(config, tenants=tenants)
    # A listed `hunt.own_domains` is already in `Config.finish_options`.
    return config
