"""Terminal output: the top domains table and the run summary (rich, no logic of the hunt)."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from partner_hunt.config import Config

# Logs and CI capture stdout without a terminal; rich would then squeeze the table to 80 columns.
_console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def say(message: str) -> None:
    """One progress line on the terminal."""
    _console.print(message)


def _fmt_window(start: Any, end: Any) -> str:
    left = start.strftime("%Y-%m-%d %H:%M:%SZ") if start else "(all data)"
    right = end.strftime("%Y-%m-%d %H:%M:%SZ") if end else "(open)"
    return f"[{left}, {right})" if (start or end) else "all data"


def results_table(rows: list[Any], include_ratio: bool, title: str) -> Table:
    """A rich table of result rows (already sorted and bounded)."""
    table = Table(title=title, title_justify="left")
    show_tenant = len({r["TenantId"] for r in rows}) > 1
    if show_tenant:
        table.add_column("TenantId")
    table.add_column("SenderFromDomain")
    table.add_column("OutboundTeamsMessages", justify="right")
    table.add_column("IncomingTeamsMessagesWithThreats", justify="right")
    if include_ratio:
        table.add_column("Bad_Traffic_Percentage", justify="right")
    for r in rows:
        cells = [r["TenantId"]] if show_tenant else []
        # repr-quote the domain so that "" and padded domains are visible as such.
        domain = r["SenderFromDomain"]
        cells += [domain if domain and domain.strip() == domain else repr(domain)]
        cells += [f"{r['OutboundTeamsMessages']:,}", f"{r['IncomingTeamsMessagesWithThreats']:,}"]
        if include_ratio:
            ratio = r["Bad_Traffic_Percentage"]
            cells.append("" if ratio is None else f"{ratio:.2f}")
        table.add_row(*cells)
    return table


def print_run(report: Any, config: Config) -> None:
    """Print the top domains and where everything was written."""
    window = _fmt_window(report.window_start, report.window_end)
    title = f"Top partner domains ({report.mode} mode, {window}): {report.result_rows:,} domains"
    if report.top_rows:
        _console.print(results_table(report.top_rows, config.hunt.include_ratio, title))
    else:
        _console.print(f"{title}: no domain has both outbound traffic and inbound threats.")
    loc = report.locations
    _console.print(
        f"rows read {report.rows_read:,} | used {report.rows_used:,} | quarantined {report.rows_quarantined:,}"
        + (
            " (" + ", ".join(f"{k}={v:,}" for k, v in sorted(report.quarantine_by_reason.items())) + ")"
            if report.quarantine_by_reason
            else ""
        )
        + f" | recipient rows {report.recipient_rows:,} | {report.duration_seconds:.1f}s"
    )
    _console.print(f"results    -> {loc.output}")
    if report.rows_quarantined:
        _console.print(f"quarantine -> {loc.quarantine}")
    _console.print(f"run log    -> {loc.run_log} (run {report.run_id})")
    sys.stdout.flush()


class DayProgress:
    """A progress bar over days (done, left, time left) plus one log line per committed day."""

    def __init__(self, label: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn(f"{label} days"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=_console,
            transient=False,
        )
        self._task = None

    def __enter__(self) -> "DayProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def advance(self, days: list, finished: int, total: int) -> None:
        """Called by the pipeline after each committed batch of days."""
        if self._task is None:
            self._task = self._progress.add_task("days", total=total, completed=finished - len(days))
        self._progress.update(self._task, completed=finished, total=total)
        for i, day in enumerate(days):
            number = finished - len(days) + i + 1
            self._progress.console.log(f"day {day.isoformat()} committed ({number}/{total})", log_locals=False)
