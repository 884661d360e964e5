"""`partner-hunt diff`: the hunt in `kql` and `corrected` mode (and `known-now`, where it can run) over one window, compared."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pyspark.sql import Row, SparkSession

from partner_hunt.commands.steps.window import run_window
from partner_hunt.config import Config, with_overrides
from partner_hunt.core import caching, diff
from partner_hunt.core.signals import POST_DELIVERY
from partner_hunt.store import io
from partner_hunt.store.locations import Locations
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
    # With a post-delivery table: corrected against known-now (`diff.compare_known_now`).
    known_now_counts: dict[str, int] | None = None
    known_now_rows: list[Row] | None = None
    known_now_explanation: str = diff.KNOWN_NOW_EXPLANATION


def describe_switches(config: Config) -> str:
    """The effective hunt switches of a config, in words."""
    h = config.hunt
    inbound = "recipients' domains (published query)" if h.mode == "kql" else "sender's domain"
    if h.mode == "known-now":
        inbound += ", threats found after delivery counted"
    return (
        f"inbound domain = {inbound}; normalise domains = {h.effective_normalize_domains}; "
        f"count = {'distinct messages' if h.effective_count_messages else 'message x recipient rows'}; "
        f"drop re-emitted edits = {h.effective_dedupe_edits}"
    )


def run_diff(spark: SparkSession, config: Config, command: str = "diff") -> ModeDiff:
    """Run the hunt in `kql` and `corrected` mode over the same window, then compare the results;
    where the post-delivery table is there, `known-now` mode too, compared with `corrected`.

    Each run writes its results (keyed by window and mode, so this is idempotent) but no evidence
    or alerts: a diff is for understanding, not for paging anyone. The config's own mode is not
    used: every mode always runs.
    """
    quiet = dataclasses.replace(
        config,
        evidence=dataclasses.replace(config.evidence, enabled=False),
        alerts=dataclasses.replace(config.alerts, enabled=False),
    )
    reports, frames, switches = {}, {}, {}
    post_delivery = Locations.from_config(config).signals[POST_DELIVERY.key]
    known_now = io.table_exists(spark, post_delivery)
    for mode in ("kql", "corrected", *(("known-now",) if known_now else ())):
        mode_config = with_overrides(quiet, {"hunt.mode": mode})
        reports[mode] = run_window(spark, mode_config, f"{command} ({mode})")
        frames[mode] = io.read_window_rows(spark, reports[mode].locations.output, reports[mode].window_key())
        switches[mode] = describe_switches(mode_config)
    diff_df = caching.cached(diff.compare_modes(frames["kql"], frames["corrected"]))
    # Bounded: at most four statuses, and `top` rows.
    counts = {r["Status"]: int(r["Domains"]) for r in diff.status_counts(diff_df).collect()}
    top = config.hunt.top or 20
    rows = diff_df.transform(diff.filter_disagreements).transform(diff.sort_diff).limit(top).collect()
    caching.release(diff_df)
    result = ModeDiff(reports=reports, status_counts=counts, rows=rows, switches=switches)
    if known_now:
        known_df = caching.cached(diff.compare_known_now(frames["corrected"], frames["known-now"]))
        try:
            # Bounded: at most three statuses, and `top` rows.
            result.known_now_counts = {r["Status"]: int(r["Domains"]) for r in diff.status_counts(known_df).collect()}
            result.known_now_rows = known_df.transform(diff.filter_disagreements).transform(diff.sort_known_now).limit(top).collect()
        finally:
            caching.release(known_df)
    return result
