"""What a run shows: rich tables and bars on a terminal or in a notebook, plain `logging` lines elsewhere.

A Databricks job, spark-submit or CI has no terminal: there every line goes through the
`partner_hunt` logger (time and level, kept in the driver log), and nothing draws boxes or bars.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

log = logging.getLogger("partner_hunt")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _CurrentStderr(logging.StreamHandler):
    """A stderr handler that follows `sys.stderr` when it is replaced (test capture, notebooks)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging() -> None:
    """The job's own lines go to stderr through `logging` at INFO, with time and level: a driver log keeps them."""
    logger = logging.getLogger("partner_hunt")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, _CurrentStderr) for h in logger.handlers):
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
    # Our handler writes every line once; a runtime's root handlers would repeat them.
    logger.propagate = False

# Logs and CI capture stdout without a terminal; rich would then squeeze the table to 80 columns.
_console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def interactive() -> bool:
    """True on a terminal or in a notebook (rich output); False in a job, a pipe or a test (logging)."""
    return _console.is_terminal or _console.is_jupyter


def say(message: str) -> None:
    """One progress line: on the terminal, or logged at INFO."""
    if interactive():
        _console.print(message)
    else:
        log.info(message)


def warn(message: str) -> None:
    """A line the reader must not miss: logged at WARNING everywhere."""
    log.warning(message)


@dataclass
class Grid:
    """A small table of already-formatted cells, shown as a rich table or as one log line per row."""

    title: str
    headers: list[str]
    right: set[str] = field(default_factory=set)
    rows: list[list[str]] = field(default_factory=list)

    def to_table(self) -> Table:
        """The rich table for a terminal."""
        table = Table(title=self.title, title_justify="left")
        for name in self.headers:
            table.add_column(name, justify="right" if name in self.right else "left")
        for row in self.rows:
            table.add_row(*row)
        return table

    def to_lines(self) -> list[str]:
        """The title, then `header=cell` pairs per row, for a log."""
        return [self.title] + ["  " + ", ".join(f"{h}={c}" for h, c in zip(self.headers, row, strict=True)) for row in self.rows]


def _show(grid: Grid) -> None:
    if interactive():
        _console.print(grid.to_table())
    else:
        for line in grid.to_lines():
            log.info(line)


def _fmt_window(start: Any, end: Any) -> str:
    left = start.strftime("%Y-%m-%d %H:%M:%SZ") if start else "(all data)"
    right = end.strftime("%Y-%m-%d %H:%M:%SZ") if end else "(open)"
    return f"[{left}, {right})" if (start or end) else "all data"


def _domain(value: str | None) -> str:
    # repr-quote the domain so that "" and padded domains are visible as such.
    return value if value and value.strip() == value else repr(value)


def results_grid(rows: list[Any], include_ratio: bool, title: str) -> Grid:
    """The result rows (already sorted and bounded) as a grid."""
    show_tenant = len({r["TenantId"] for r in rows}) > 1
    headers = (["TenantId"] if show_tenant else []) + [
        "SenderFromDomain", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats",
    ]
    if include_ratio:
        headers.append("Bad_Traffic_Percentage")
    grid = Grid(title, headers, right={"OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats", "Bad_Traffic_Percentage"})
    for r in rows:
        cells = [r["TenantId"]] if show_tenant else []
        cells += [_domain(r["SenderFromDomain"]), f"{r['OutboundTeamsMessages']:,}", f"{r['IncomingTeamsMessagesWithThreats']:,}"]
        if include_ratio:
            ratio = r["Bad_Traffic_Percentage"]
            cells.append("" if ratio is None else f"{ratio:.2f}")
        grid.rows.append(cells)
    return grid


def print_run(report: Any, include_ratio: bool) -> None:
    """Show the top domains, the run summary and where everything was written."""
    window = _fmt_window(report.window_start, report.window_end)
    title = f"Top partner domains ({report.mode} mode, {window}): {report.result_rows:,} domains"
    if report.top_rows:
        _show(results_grid(report.top_rows, include_ratio, title))
    else:
        say(f"{title}: no domain has both outbound traffic and inbound threats.")
    loc = report.locations
    say(
        f"rows read {report.rows_read:,} | used {report.rows_used:,} | quarantined {report.rows_quarantined:,}"
        + (
            " (" + ", ".join(f"{k}={v:,}" for k, v in sorted(report.quarantine_by_reason.items())) + ")"
            if report.quarantine_by_reason
            else ""
        )
        + f" | recipient rows {report.recipient_rows:,} | {report.duration_seconds:.1f}s"
    )
    outputs = getattr(report, "analyst_outputs", None)
    if outputs is not None:
        print_alerts(outputs)
    say(f"results    -> {loc.output}")
    if outputs is not None and outputs.evidence:
        say(f"evidence   -> {outputs.evidence} ({outputs.evidence_rows:,} domains)")
    if outputs is not None and outputs.alerts:
        say(f"alerts     -> {outputs.alerts} ({outputs.alerts_raised:,} raised, {outputs.alerts_withdrawn:,} withdrawn)")
    if outputs is not None and outputs.alerts_jsonl:
        say(f"alert JSONL-> {outputs.alerts_jsonl}")
    if report.rows_quarantined:
        say(f"quarantine -> {loc.quarantine}")
    job_run = getattr(report, "job_run_id", None)
    say(f"run log    -> {loc.run_log} (run {report.run_id}" + (f", job run {job_run})" if job_run else ")"))
    for note in outputs.notes if outputs is not None else ():
        warn(f"note: {note}")
    sys.stdout.flush()


def print_alerts(outputs: Any) -> None:
    """The alerts a run raised (already sorted and bounded) and the ones it withdrew, or one line."""
    if not outputs.alerts:
        return
    raised, withdrawn = outputs.alerts_raised, getattr(outputs, "alerts_withdrawn", 0)
    quiet = " (no domain crossed a threshold)" if not raised else ""
    say(f"Alerts: {raised:,} raised, {withdrawn:,} withdrawn{quiet}")
    if withdrawn:
        gone = getattr(outputs, "withdrawn_alerts", [])
        shown = ", ".join(_domain(r["SenderFromDomain"]) for r in gone)
        more = f" (and {withdrawn - len(gone):,} more)" if withdrawn > len(gone) else ""
        if shown:
            say(f"Alerts withdrawn (no longer raised by this window's results, now Resolved): {shown}{more}")
    if not raised or not outputs.top_alerts:
        return
    shown_n = len(outputs.top_alerts)
    more = f", top {shown_n} shown" if raised > shown_n else ""
    show_tenant = len({r["TenantId"] for r in outputs.top_alerts}) > 1
    headers = (["TenantId"] if show_tenant else []) + ["Severity", "SenderFromDomain", "Inbound threats", "Outbound", "Why", "AlertId"]
    grid = Grid(f"Alerts raised: {raised:,}{more}", headers, right={"Inbound threats", "Outbound"})
    for r in outputs.top_alerts:
        cells = [r["TenantId"]] if show_tenant else []
        cells += [
            r["Severity"],
            _domain(r["SenderFromDomain"]),
            f"{r['IncomingTeamsMessagesWithThreats']:,}",
            f"{r['OutboundTeamsMessages']:,}",
            ", ".join(r["Reasons"]),
            r["AlertId"][:12],
        ]
        grid.rows.append(cells)
    _show(grid)


def print_diff(mode_diff: Any) -> None:
    """The mode diff: per-status counts, the disagreeing domains (bounded) and why they disagree."""
    kql = mode_diff.reports["kql"]
    window = _fmt_window(kql.window_start, kql.window_end)
    counts = mode_diff.status_counts
    say(f"Mode diff over {window}: " + ", ".join(f"{counts.get(s, 0):,} {s}" for s in mode_diff.statuses))
    for mode, text in mode_diff.switches.items():
        say(f"  {mode:9}: {text}")
    if mode_diff.rows:
        show_tenant = len({r["TenantId"] for r in mode_diff.rows}) > 1
        headers = (["TenantId"] if show_tenant else []) + [
            "SenderFromDomain", "Status", "kql out", "kql in", "corrected out", "corrected in", "Why",
        ]
        grid = Grid("Domains on which the modes disagree", headers, right={"kql out", "kql in", "corrected out", "corrected in"})
        fmt = lambda v: "" if v is None else f"{v:,}"  # noqa: E731
        for r in mode_diff.rows:
            cells = [r["TenantId"]] if show_tenant else []
            cells += [
                _domain(r["SenderFromDomain"]),
                r["Status"],
                fmt(r["KqlOutbound"]),
                fmt(r["KqlInbound"]),
                fmt(r["CorrectedOutbound"]),
                fmt(r["CorrectedInbound"]),
                r["Why"],
            ]
            grid.rows.append(cells)
        _show(grid)
    else:
        say("The two modes agree on every domain in this window.")
    say(mode_diff.explanation)
    if mode_diff.known_now_counts is not None:
        _print_known_now(mode_diff)
    say(f"results    -> {kql.locations.output} (every mode, keyed by window and Mode)")
    sys.stdout.flush()


def _print_known_now(mode_diff: Any) -> None:
    """corrected against known-now: the partners whose threats were found after delivery."""
    counts = mode_diff.known_now_counts
    say("corrected against known-now: " + ", ".join(f"{counts.get(s, 0):,} {s}" for s in ("only in known-now", "counts differ", "same")))
    rows = mode_diff.known_now_rows or []
    if rows:
        show_tenant = len({r["TenantId"] for r in rows}) > 1
        headers = (["TenantId"] if show_tenant else []) + ["SenderFromDomain", "Status", "corrected in", "known-now in", "found after", "Why"]
        grid = Grid("Partners with threats found after delivery", headers, right={"corrected in", "known-now in", "found after"})
        fmt = lambda v: "" if v is None else f"{v:,}"  # noqa: E731
        for r in rows:
            cells = [r["TenantId"]] if show_tenant else []
            cells += [
                _domain(r["SenderFromDomain"]), r["Status"], fmt(r["CorrectedInbound"]), fmt(r["KnownNowInbound"]),
                fmt(r["FoundAfterDelivery"]), r["Why"],
            ]
            grid.rows.append(cells)
        _show(grid)
    say(mode_diff.known_now_explanation)


class DayProgress:
    """Progress over days: a rich bar on a terminal, else one log line per committed day."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if interactive():
            self._progress = Progress(
                TextColumn(f"{label} days"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=_console,
                transient=False,
            )

    def __enter__(self) -> DayProgress:
        if self._progress is not None:
            self._progress.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(kind, error, trace)

    def advance(self, days: list, finished: int, total: int) -> None:
        """Called by the pipeline after each committed batch of days."""
        first = finished - len(days)
        if self._progress is None:
            for i, day in enumerate(days):
                log.info("%s: day %s committed (%d/%d)", self._label, day.isoformat(), first + i + 1, total)
            return
        if self._task is None:
            self._task = self._progress.add_task("days", total=total, completed=first)
        self._progress.update(self._task, completed=finished, total=total)
        for i, day in enumerate(days):
            self._progress.console.log(f"day {day.isoformat()} committed ({first + i + 1}/{total})", log_locals=False)
