"""Typed, validated configuration: YAML is read once, then only frozen dataclasses travel.

Every section is a frozen dataclass whose fields are the YAML keys. CLI flags are merged into the
YAML mapping first (flags win), and the merged mapping is validated once, so cross-key rules (an
end after its start) see the final values. An unknown key or a value of the wrong type fails with
a `ConfigError` that names the dotted key. YAML is read with YAML 1.2's core schema: true/false
are the only booleans, and numbers have no `_` separators or base-60 forms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from partner_hunt.core.options import CountOptions, FinishOptions
from partner_hunt.validate import ConfigError, build, load_mapping

# `known-now` is `corrected` with the threats found after delivery counted too (docs/kql-parity.md).
MODES = ("kql", "corrected", "known-now")
# What the quarantine keeps of a bad row's original record (`SourceRecord`): see docs/personal-data.md.
QUARANTINE_RECORDS = ("redacted", "full", "none")

LOCAL_SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.adaptive.enabled": "true",
    "spark.driver.memory": "2g",
    # Delta rebuilds a table's state with this many shuffle partitions (default 50): on one
    # machine that is 50 tiny tasks per snapshot, and the incremental path reads several tables.
    "spark.databricks.delta.snapshotPartitions": "4",
}


@dataclass(frozen=True)
class SparkSettings:
    """Where Spark runs and the settings it gets; `master: null` defers to spark-submit or Databricks."""

    master: str | None = "local[*]"
    app_name: str = "partner-hunt"
    # The one copy of the local defaults: conf/local.yml leaves them to this, so an installed
    # wheel without that file behaves alike.
    conf: Mapping[str, str] = field(default_factory=lambda: dict(LOCAL_SPARK_CONF))


@dataclass(frozen=True)
class HuntSettings:
    """What the hunt computes; the three switches default from `mode` when left null."""

    mode: str = "kql"
    start: datetime | None = None
    end: datetime | None = None
    exclude_domains: tuple[str, ...] = ()
    include_ratio: bool = True
    normalize_domains: bool | None = None
    count_messages: bool | None = None
    dedupe_edits: bool | None = None
    top: int = 20
    trailing_days: int = 30
    backfill_batch_days: int = 1
    backfill_trailing_days: int | None = None
    # `auto` (derive each tenant's own domains from the window's events), a list, or off/null.
    own_domains: tuple[str, ...] | None = None
    own_domains_min_share: float = 0.2
    own_domains_in_kql: bool = False
    partners_baseline_days: int = 90

    def __post_init__(self) -> None:
        self._check_own_domains()
        if self.mode not in MODES:
            raise ConfigError(f"hunt.mode: '{self.mode}' is not one of {', '.join(MODES)}")
        if self.start and self.end and self.end <= self.start:
            raise ConfigError(
                f"hunt.end ({self.end.isoformat()}) must be after hunt.start ({self.start.isoformat()})"
            )
        if self.top < 0:
            raise ConfigError("hunt.top: must be 0 or more")
        if self.trailing_days < 1:
            raise ConfigError("hunt.trailing_days: must be 1 or more")
        if self.backfill_batch_days < 1:
            raise ConfigError("hunt.backfill_batch_days: must be 1 or more")
        if self.backfill_trailing_days is not None and self.backfill_trailing_days < 1:
            raise ConfigError("hunt.backfill_trailing_days: must be 1 or more, or null for one window")

    def _own_words(self) -> list[str]:
        """`own_domains` as written, trimmed and lower-cased: where `auto` and `off` are recognised."""
        return [d.strip().lower() for d in self.own_domains or ()]

    def _check_own_domains(self) -> None:
        words = self._own_words()
        if {"auto", "off"} & set(words) and len(words) > 1:
            raise ConfigError("hunt.own_domains: 'auto' and 'off' stand alone, not inside a list of domains")
        if not 0.0 < self.own_domains_min_share <= 1.0:
            raise ConfigError("hunt.own_domains_min_share: must be above 0 and at most 1")
        if self.partners_baseline_days < 1:
            raise ConfigError("hunt.partners_baseline_days: must be 1 or more")

    @property
    def own_domains_auto(self) -> bool:
        """`hunt.own_domains: auto`: each tenant's own domains are derived from the data."""
        return self._own_words() == ["auto"]

    @property
    def own_domains_list(self) -> tuple[str, ...]:
        """The own domains given as a list (empty for auto and off)."""
        return () if self._own_words() in (["auto"], ["off"]) else tuple(self.own_domains or ())

    @property
    def apply_own_domains(self) -> bool:
        """Own domains are exclusions in corrected and known-now mode; in kql mode only on request, for parity."""
        return self.mode != "kql" or self.own_domains_in_kql

    def _by_mode(self, explicit: bool | None) -> bool:
        return explicit if explicit is not None else self.mode != "kql"

    @property
    def effective_normalize_domains(self) -> bool:
        """Lower-case/trim domains: explicit setting, else on except in kql mode."""
        return self._by_mode(self.normalize_domains)

    @property
    def effective_count_messages(self) -> bool:
        """Count distinct messages: explicit setting, else on except in kql mode."""
        return self._by_mode(self.count_messages)

    @property
    def effective_dedupe_edits(self) -> bool:
        """Keep only the latest version of an edited message: explicit, else on except in kql mode."""
        return self._by_mode(self.dedupe_edits)

    def count_options(self) -> CountOptions:
        """The counting switches these settings give (`hunt.count_window`, the partials' variant)."""
        return CountOptions(
            mode=self.mode,
            normalize=self.effective_normalize_domains,
            count_messages=self.effective_count_messages,
            dedupe_edits=self.effective_dedupe_edits,
        )


@dataclass(frozen=True)
class StateSettings:
    """Where the hunt's own tables live; null means beside the results table."""

    partials: str | None = None
    run_log: str | None = None
    quarantine: str | None = None
    evidence: str | None = None
    alerts: str | None = None
    partners: str | None = None
    signal_partials: str | None = None
    partner_risk: str | None = None


@dataclass(frozen=True)
class QualitySettings:
    """How bad input is handled."""

    max_bad_fraction: float = 0.01
    skip_corrupt_files: bool = False
    quarantine_record: str = "redacted"

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise ConfigError("quality.max_bad_fraction: must be between 0 and 1")
        if self.quarantine_record not in QUARANTINE_RECORDS:
            raise ConfigError(
                f"quality.quarantine_record: '{self.quarantine_record}' is not one of {', '.join(QUARANTINE_RECORDS)}"
            )


@dataclass(frozen=True)
class TenantSettings:
    """Per-tenant options; keys are TenantId values."""

    exclude_domains: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestSettings:
    """How `partner-hunt ingest` reads Defender's exports into the source table."""

    # Log Analytics exports carry the workspace's id as TenantId: {workspace id: tenant id}.
    workspace_tenants: Mapping[str, str] = field(default_factory=dict)
    # Where the ingest keeps its unreadable lines and what it consumed of each blob; null means
    # beside the table it writes (`<into>_ingest_quarantine`, `<into>_ingest_files`).
    quarantine: str | None = None
    files: str | None = None

    def __post_init__(self) -> None:
        for workspace, tenant in self.workspace_tenants.items():
            if not str(tenant).strip():
                raise ConfigError(f"ingest.workspace_tenants.{workspace}: the tenant id must not be empty")


@dataclass(frozen=True)
class SignalSettings:
    """Defender's Teams signals beside MessageEvents (docs/partner-risk.md): where each flat table
    is (null: beside the MessageEvents table, `<source>_post_delivery_events`, ...), and how long
    after its message a removal or a click is still credited to the message's day."""

    post_delivery: str | None = None
    url_info: str | None = None
    url_clicks: str | None = None
    max_delay_days: int = 7

    def __post_init__(self) -> None:
        if self.max_delay_days < 1:
            raise ConfigError("signals.max_delay_days: must be 1 or more")


# The partner risk score's parts: each is its weight times the window's count (docs/partner-risk.md).
RISK_WEIGHTS = {
    "threats_at_delivery": 1.0,
    "threats_after_delivery": 2.0,
    "clicks_allowed": 3.0,
    "clicks_through": 5.0,
    "clicks_blocked": 1.0,
    "threat_rate_change": 10.0,
}


@dataclass(frozen=True)
class RiskSettings:
    """The partner risk table: its score's weights, and the score from which a partner is alerted
    (null: no risk alerts)."""

    weights: Mapping[str, float] = field(default_factory=lambda: dict(RISK_WEIGHTS))
    alert_min_score: float | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(RISK_WEIGHTS))
        if unknown:
            raise ConfigError(f"risk.weights.{unknown[0]}: not a part of the score (one of {', '.join(RISK_WEIGHTS)})")
        for name, weight in self.weights.items():
            if weight < 0:
                raise ConfigError(f"risk.weights.{name}: must be 0 or more")
        if self.alert_min_score is not None and self.alert_min_score < 0:
            raise ConfigError("risk.alert_min_score: must be 0 or more, or null to turn the risk rule off")

    def weights_in_full(self) -> dict[str, float]:
        """Every part's weight: as configured, else its default."""
        return {name: float(self.weights.get(name, default)) for name, default in RISK_WEIGHTS.items()}


@dataclass(frozen=True)
class DemoSettings:
    """The seeded sample lake made by `partner-hunt demo`."""

    lake: str = "lake"
    rows: int = 200_000
    days: int = 30
    seed: int = 42
    tenants: int = 1
    # Write the sample as Defender's storage export and ingest it, instead of writing the table.
    as_export: bool = False

    def __post_init__(self) -> None:
        for key in ("rows", "days", "tenants"):
            if getattr(self, key) < 1:
                raise ConfigError(f"demo.{key}: must be 1 or more")


@dataclass(frozen=True)
class EvidenceSettings:
    """The per-domain evidence drill-down written beside the results."""

    enabled: bool = True
    sample_size: int = 10
    include_sender_addresses: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.sample_size <= 1000:
            raise ConfigError("evidence.sample_size: must be between 0 and 1000")


@dataclass(frozen=True)
class AlertSettings:
    """Thresholds that turn result rows into alerts; a rule whose threshold is null (or 0) is off."""

    enabled: bool = True
    min_inbound_threats: int = 10
    min_ratio: float | None = 0.5
    ratio_min_inbound: int = 3
    spike_factor: float | None = 3.0
    spike_baseline_days: int = 14
    spike_min_baseline_days: int = 3
    spike_min_inbound: int = 3
    high_inbound_threats: int = 50
    jsonl: str | None = None

    def __post_init__(self) -> None:
        for key in ("min_inbound_threats", "ratio_min_inbound", "spike_min_inbound", "high_inbound_threats"):
            if getattr(self, key) < 0:
                raise ConfigError(f"alerts.{key}: must be 0 or more")
        if self.min_ratio is not None and self.min_ratio < 0:
            raise ConfigError("alerts.min_ratio: must be 0 or more, or null to turn the ratio rule off")
        if self.spike_factor is not None and self.spike_factor <= 0:
            raise ConfigError("alerts.spike_factor: must be above 0, or null to turn the spike rule off")
        if self.spike_baseline_days < 1:
            raise ConfigError("alerts.spike_baseline_days: must be 1 or more")
        if not 1 <= self.spike_min_baseline_days <= self.spike_baseline_days:
            raise ConfigError("alerts.spike_min_baseline_days: must be between 1 and alerts.spike_baseline_days")


@dataclass(frozen=True)
class Config:
    """The whole job configuration."""

    source: str = "lake/message_events"
    output: str = "lake/partner_hunt_results"
    # The scheduler's id of this run (Databricks `{{job.run_id}}`), kept in the run log; not a setting.
    job_run_id: str | None = None
    hunt: HuntSettings = field(default_factory=HuntSettings)
    spark: SparkSettings = field(default_factory=SparkSettings)
    state: StateSettings = field(default_factory=StateSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    tenants: TenantSettings = field(default_factory=TenantSettings)
    demo: DemoSettings = field(default_factory=DemoSettings)
    evidence: EvidenceSettings = field(default_factory=EvidenceSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    signals: SignalSettings = field(default_factory=SignalSettings)
    risk: RiskSettings = field(default_factory=RiskSettings)

    def __post_init__(self) -> None:
        for key in ("source", "output"):
            if not getattr(self, key).strip():
                raise ConfigError(f"{key}: must not be empty")

    def finish_options(self) -> FinishOptions:
        """The configured exclusions (global and per tenant) and ratio switch (`hunt.window_results`)."""
        return FinishOptions(
            # A listed `hunt.own_domains` is one more global exclusion, where own domains apply.
            exclude=tuple(
                dict.fromkeys([*self.hunt.exclude_domains, *(self.hunt.own_domains_list if self.hunt.apply_own_domains else ())])
            ),
            tenant_exclude=dict(self.tenants.exclude_domains),
            normalize=self.hunt.effective_normalize_domains,
            include_ratio=self.hunt.include_ratio,
        )


def config_from_mapping(data: Any) -> Config:
    """Validate a parsed YAML document into a `Config`."""
    return build(Config, data)


def merge_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with dotted-key `overrides` set into it (None means unset and changes nothing)."""
    merged: dict[str, Any] = dict(data)
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = merged
        parts = dotted.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = {}
            elif not isinstance(child, Mapping):
                raise ConfigError(f"{'.'.join(parts[: i + 1])}: expected a mapping of keys, got {child!r}")
            node[part] = dict(child)
            node = node[part]
        node[parts[-1]] = value
    return merged


def load_config(path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read a YAML config file (None: built-in defaults), merge flag overrides, validate once."""
    return config_from_mapping(merge_overrides(load_mapping(path), overrides or {}))


def with_overrides(config: Config, overrides: Mapping[str, Any]) -> Config:
    """`config` with dotted-key overrides applied, validated again as a whole."""
    return config_from_mapping(merge_overrides(config_fingerprint(config), overrides))


def config_fingerprint(config: Config) -> dict[str, Any]:
    """A plain, JSON-serialisable view of the config: for the run log's hash, and re-validation."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in sorted(v.items())}
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, datetime):
            return v.isoformat()
        return v

    return plain(config)
