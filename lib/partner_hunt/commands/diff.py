"""`partner-hunt diff`: the hunt in `kql` and `corrected` mode over one window, compared."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pyspark.sql import Row, SparkSession

from partner_hunt.commands.steps.window import run_window
from partner_hunt.config import Config, with_overrides
from partner_hunt.core import diff
from partner_hunt.store import io
from partner_hunt.store.runlog import RunReport


@dataclass
class ModeDiff:
    """Both runs of `partner-hunt diff` and their comparison (bounded rows, for the terminal)."""

    reports: dict[str, RunReport]
    status_counts: dict[str, int]
    rows: list[Row]
    switches: dict[str, str]
    statuses: tuple[str, ...] = diff.STATUS_ORDER
    explanation: str = diff.EXPLANATION


def describe_switches(config: Config) -> str:
    """The effective hunt switches of a config, in words."""
    h = config.hunt
    inbound = "recipients' domains (published query)" if h.mode == "kql" else "sender's domain"
    return (
        f"inbound domain = {inbound}; normalise domains = {h.effective_normalize_domains}; "
        f"count = {'distinct messages' if h.effective_count_messages else 'message x recipient rows'}; "
        f"drop re-emitted edits = {h.effective_dedupe_edits}"
    )


def run_diff(spark: SparkSession, config: Config, command: str = "diff") -> ModeDiff:
    """Run the hunt in `kql` and `corrected` mode over the same window, then compare the results.

    Each run writes its results (keyed by window and mode, so this is idempotent) but no evidence
    or alerts: a diff is for understanding, not for paging anyone. The config's own mode is not
    used: both modes always run.
    """
    quiet = dataclasses.replace(
        config,
        evidence=dataclasses.replace(config.evidence, enabled=False),
        alerts=dataclasses.replace(config.alerts, enabled=False),
    )
    reports, frames, switches = {}, {}, {}
    for mode in ("kql", "corrected"):
        mode_config = with_overrides(quiet, {"hunt.mode": mode})
        reports[mode] = run_window(spark, mode_config, f"{command} ({mode})")
        frames[mode] = io.read_window_rows(spark, reports[mode].locations.output, reports[mode].window_key())
        switches[mode] = describe_switches(mode_config)
    diff_df = diff.compare_modes(frames["kql"], frames["corrected"]).cache()
    # Bounded: at most four statuses, and `top` rows.
    counts = {r["Status"]: int(r["Domains"]) for r in diff.status_counts(diff_df).collect()}
    top = config.hunt.top or 20
    rows = diff_df.transform(diff.filter_disagreements).transform(diff.sort_diff).limit(top).collect()
    diff_df.unpersist()
    return ModeDiff(reports=reports, status_counts=counts, rows=rows, switches=switches)
