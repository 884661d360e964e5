"""The plain settings the core's steps take: frozen values, never the job's `Config`.

The config turns its YAML into these (`HuntSettings.count_options`, `Config.finish_options`), so
a transform's signature says exactly which settings change its output. No Spark import here:
the config reads them without starting anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class CountOptions:
    """The switches that change the hunt's counts, and therefore the partials' variant."""

    mode: str = "kql"
    normalize: bool = False
    count_messages: bool = False
    dedupe_edits: bool = False

    @property
    def variant(self) -> str:
        """These switches as one key: partials of different variants never mix."""
        return (
            f"{self.mode};normalize={int(self.normalize)};messages={int(self.count_messages)};"
            f"dedupe={int(self.dedupe_edits)}"
        )


@dataclass(frozen=True)
class FinishOptions:
    """What turns counts into result rows: the excluded domains (global and per tenant) and the ratio."""

    exclude: tuple[str, ...] = ()
    tenant_exclude: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    normalize: bool = False
    include_ratio: bool = True

    def with_tenant_domains(self, found: Mapping[str, Sequence[str]]) -> FinishOptions:
        """These options with `found` ({tenant: domains}) added to the per-tenant exclusions."""
        tenants = sorted({*self.tenant_exclude, *found})
        merged = {t: tuple(dict.fromkeys([*self.tenant_exclude.get(t, ()), *found.get(t, ())])) for t in tenants}
        return replace(self, tenant_exclude=merged)

    def with_domains(self, domains: Sequence[str]) -> FinishOptions:
        """These options with `domains` added to the global exclusions."""
        return replace(self, exclude=tuple(dict.fromkeys([*self.exclude, *domains])))
