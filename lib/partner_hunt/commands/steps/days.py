"""Daily partials and the window reports rolled up from them: the steps `backfill` and
`run --incremental` share.

The hunt's counts are additive over UTC days (see `core/partials.py`), so each day is computed
once into the partials table and any day-aligned window is rolled up from them.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from partner_hunt.commands.steps import accounting, outputs, own_domains, partners
from partner_hunt.config import Config
from partner_hunt.core import caching, hunt, partials, partner_signals, quality, schema
from partner_hunt.core import own_domains as rules
from partner_hunt.core.signals import POST_DELIVERY
from partner_hunt.core.tables import PARTIALS_COLUMNS, SIGNAL_PARTIALS_COLUMNS, window_key
from partner_hunt.store import faults, io, source
from partner_hunt.store.partials_table import Markers
from partner_hunt.store.predicates import equality_predicate, in_predicate
from partner_hunt.store.runlog import RunReport
from partner_hunt.store.signal_sources import SignalInputs

OnBatch = Callable[[list[date], int, int], None]


def source_requirements(config: Config) -> schema.Requirements:
    """The source columns a command that computes partials reads (the sender's address, where the
    source has it, for the evidence, the own domains and the partner signals)."""
    return quality.requirements(config.hunt.count_options(), keep_sender=True)


def known_now(config: Config, inputs: SignalInputs, first: datetime, last: datetime) -> Callable[[DataFrame], DataFrame]:
    """`known-now` mode's view of events from `first` to `last`: each message's threats as its
    post-delivery events up to `signals.max_delay_days` later found them."""
    post_df = inputs.frames[POST_DELIVERY.key]
    until = last + timedelta(days=config.signals.max_delay_days)
    post_df = post_df.filter(hunt.in_window(F.col("Timestamp"), first, until))
    return lambda events_df: partner_signals.with_threats_known_now(events_df, post_df)


def signal_rows(
    config: Config, report: RunReport, canonical_df: DataFrame, inputs: SignalInputs, days: list[date]
) -> DataFrame:
    """The signal partials of `days` (`tables.SIGNAL_PARTIALS_COLUMNS`): each inbound message of
    those days with the signals about it, up to `signals.max_delay_days` after its day."""
    first, last = min(days), max(days)
    since, until = partials.day_start(first), partials.day_start(last + timedelta(days=1 + config.signals.max_delay_days))
    messages_df = (
        canonical_df.transform(schema.drop_quarantined)
        .filter(partials.days_filter(F.col("Timestamp"), days))
        .transform(partner_signals.inbound_messages, config.hunt.effective_normalize_domains)
    )
    frames = {key: df.filter(hunt.in_window(F.col("Timestamp"), since, until)) for key, df in inputs.frames.items()}
    return partner_signals.daily_counts(
        messages_df, frames.get("post_delivery"), frames.get("url_info"), frames.get("url_clicks")
    ).select(
        "TenantId",
        "Day",
        F.lit(report.variant).alias("Variant"),
        "Domain",
        *partner_signals.COUNTS,
        "RemovedByAction",
        "RemovedByThreat",
        "UrlDomains",
        F.array(*[F.lit(k) for k in sorted(inputs.frames)]).alias("Signals"),
        F.lit(report.run_id).alias("RunId"),
        F.lit(report.started_at).cast("timestamp").alias("ComputedAt"),
    )


def _cached_signal_rows(config: Config, report: RunReport, delivered_df: DataFrame, inputs: SignalInputs, days: list[date]) -> DataFrame:
    """The signal partials of `days`, computed and cached (the caller drops them)."""
    return caching.materialized(signal_rows(config, report, delivered_df, inputs, days).select(*SIGNAL_PARTIALS_COLUMNS))


def compute_days(
    spark: SparkSession,
    config: Config,
    report: RunReport,
    source_df: DataFrame,
    days: list[date],
    timeless: bool = False,
    inputs: SignalInputs | None = None,
) -> None:
    """Compute and commit the partials of `days` in one atomic replace (idempotent).

    With `timeless`, the source rows whose Timestamp cannot be read are read too: they belong to
    no day, so a command quarantines and counts them once, in one of its batches. With signal
    tables in `inputs`, the days' signal partials are replaced first, so that a day whose partials
    are committed always has its signals.
    """
    if not days:
        return
    ts = F.col("Timestamp")
    in_days = partials.days_filter(ts, days)
    wanted = (in_days | ts.isNull()) if timeless else in_days
    zoned = isinstance(source_df.schema["Timestamp"].dataType, T.TimestampType)
    h = config.hunt
    prepared = quality.prepare(source_df.filter(wanted) if zoned else source_df, source_requirements(config), lambda df: df.filter(wanted))
    # The signal partials judge each message as it was delivered, whatever the mode counts.
    delivered_df = prepared.canonical_df
    if h.mode == "known-now" and inputs is not None:
        prepared = prepared.with_events(known_now(config, inputs, partials.day_start(min(days)), partials.day_start(max(days) + timedelta(days=1))))
    options = h.count_options()
    # Aggregated rows only, cached so that the accounting is known before anything is written;
    # dropped whatever happens (see `window.write_window`).
    counts_df = caching.cached(hunt.count_days(prepared.hunt_df, options))
    # With `own_domains: auto` the day's own-domain evidence rides in the same commit, so that a
    # later window derives its own domains from the partials without rescanning the source.
    own_df = (
        prepared.canonical_df.transform(schema.drop_quarantined).transform(
            rules.evidence_counts, h.effective_normalize_domains, by_day=True
        )
        if h.own_domains_auto
        else None
    )
    predicate = f"{in_predicate('Day', days)} AND {equality_predicate({'Variant': report.variant})}"
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="partner-hunt-signals")
    # The signal partials are computed (cached) while the accounting job runs, and committed only
    # after it: a batch over the quality ceiling writes nothing.
    signal_f = pool.submit(_cached_signal_rows, config, report, delivered_df, inputs, days) if inputs is not None and inputs.present else None
    try:
        quarantined = accounting.account(report, prepared, config.quality.max_bad_fraction, counts_df, committed=report.days_computed)
        # Rows with no day form a null-Day group with a null Domain, which `with_markers` leaves out.
        daily_df = counts_df.transform(partials.with_markers, report.variant, report.mode, days, own_df).withColumns(
            {
                "Source": F.lit(str(report.locations.source)),
                "SourceVersion": F.lit(report.source_version).cast("long"),
                "RunId": F.lit(report.run_id),
                "ComputedAt": F.lit(report.started_at).cast("timestamp"),
            }
        )
        # The quarantine before the partials: once a day's partials are committed a rerun skips
        # that day, so its quarantined rows must already be kept.
        if quarantined:
            source.write_quarantine(prepared.bad_df, report, config.quality.quarantine_record)
        if signal_f is not None:
            io.replace_where(signal_f.result(), report.locations.signal_partials, predicate)
        io.replace_where(daily_df.select(*PARTIALS_COLUMNS), report.locations.partials, predicate, partition_by=["Day"])
    finally:
        pool.shutdown(wait=True)
        if signal_f is not None and signal_f.exception() is None:
            caching.release(signal_f.result())
        prepared.release()
        caching.release(counts_df)
    report.days_computed.extend(days)
    faults.point("after-partials-commit")


def compute_in_batches(
    spark: SparkSession,
    config: Config,
    report: RunReport,
    source_df: DataFrame,
    todo: list[date],
    batch_days: int,
    total: int,
    on_batch: OnBatch | None = None,
    inputs: SignalInputs | None = None,
    timeless_first: bool = True,
) -> None:
    """Compute `todo` in batches of `batch_days`, each its own commit, reporting progress of `total`.

    The rows with no readable Timestamp are accounted for in the first batch (`timeless_first`),
    unless an earlier call of the same command already did."""
    finished = total - len(todo)
    for i in range(0, len(todo), max(1, batch_days)):
        batch = todo[i : i + max(1, batch_days)]
        compute_days(spark, config, report, source_df, batch, timeless=timeless_first and i == 0, inputs=inputs)
        finished += len(batch)
        if on_batch:
            on_batch(batch, finished, total)


def write_window_reports(
    spark: SparkSession,
    config: Config,
    report: RunReport,
    windows: list[tuple[date, date]],
    markers: Markers | None = None,
    inputs: SignalInputs | None = None,
    alongside: Callable[[dict[str, list[str]]], None] | None = None,
) -> None:
    """Roll the partials up into one results window each, written in a single commit; the last
    window's rows are shown and get the analyst outputs. `markers`, read by the command before
    it computed `report.days_computed`, say which days the partials hold without another job.
    `alongside` (the partners table's refresh) is given the own domains derived
    (`hunt.own_domains: auto`) and runs while the outputs and results are written; its failure
    fails the call."""
    partials_df = io.read_table(spark, report.locations.partials)
    # One derivation over the span of every window written: a window's own domains are those of
    # its days, and the span's are what the run log records and the partners table leaves out.
    found = own_domains.from_partials(config.hunt, report, partials_df, (windows[0][0], windows[-1][1]))
    finish = own_domains.results_exclusions(config.hunt, config.finish_options(), found)
    frames = []
    for start, end in windows:
        window = (partials.day_start(start), partials.day_start(end))
        frames.append(
            partials.rollup(partials_df, report.variant, start, end)
            .transform(hunt.window_results, finish)
            .transform(hunt.with_run_columns, window, report.mode, report.run_id, report.started_at)
        )
    results_df = frames[0]
    for frame in frames[1:]:
        results_df = results_df.unionByName(frame)
    results_df = caching.cached(results_df)
    # The partners table reads only the committed partials and the own domains: its commits
    # (mostly waiting on Delta's log) overlap the outputs' and the results'.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="partner-hunt-partners")
    alongside_f = pool.submit(alongside, found) if alongside is not None else None
    try:
        report.result_rows = results_df.count()
        last = (partials.day_start(windows[-1][0]), partials.day_start(windows[-1][1]))
        last_df = results_df.filter(F.col("WindowEnd") == F.lit(last[1]))
        top = config.hunt.top
        report.top_rows = last_df.transform(hunt.sort_results).limit(top).collect() if top else []
        # The analyst outputs before the results, which are the run's last commit (see `window.write_window`).
        # Evidence needs raw events; alerts come from the rolled-up rows (the spike rule's partials are here).
        done = None if markers is None else markers.done_days(report.variant) | set(report.days_computed)
        risk_df = partners.alert_scores(spark, config, report, windows[-1], found, inputs)
        report.analyst_outputs = outputs.write_outputs(spark, config, report, last, None, last_df, done, risk_df)
        predicate = " OR ".join(
            f"({equality_predicate(window_key(report.mode, (partials.day_start(s), partials.day_start(e))))})"
            for s, e in windows
        )
        io.replace_where(results_df, report.locations.output, predicate)
        faults.point("after-results-commit")
        if alongside_f is not None:
            alongside_f.result()
    finally:
        pool.shutdown(wait=True)
        caching.release(results_df)
