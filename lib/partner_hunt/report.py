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
    outputs = getattr(report, "analyst_outputs", None)
    if outputs is not None:
        print_alerts(outputs)
    _console.print(f"results    -> {loc.output}")
    if outputs is not None and outputs.evidence:
        _console.print(f"evidence   -> {outputs.evidence} ({outputs.evidence_rows:,} domains)")
    if outputs is not None and outputs.alerts:
        _console.print(f"alerts     -> {outputs.alerts} ({outputs.alerts_raised:,} raised)")
    if outputs is not None and outputs.alerts_jsonl:
        _console.print(f"alert JSONL-> {outputs.alerts_jsonl}")
    if report.rows_quarantined:
        _console.print(f"quarantine -> {loc.quarantine}")
    _console.print(f"run log    -> {loc.run_log} (run {report.run_id})")
    for note in outputs.notes if outputs is not None else ():
        _console.print(f"note: {note}")
    sys.stdout.flush()


def print_alerts(outputs: Any) -> None:
    """The alerts a run raised (already sorted and bounded), or one line saying there were none."""
    if not outputs.alerts:
        return
    if not outputs.alerts_raised:
        _console.print("Alerts: none raised (no domain crossed a threshold).")
        return
    if not outputs.top_alerts:
        _console.print(f"Alerts raised: {outputs.alerts_raised:,}")
        return
    shown = len(outputs.top_alerts)
    more = f", top {shown} shown" if outputs.alerts_raised > shown else ""
    table = Table(title=f"Alerts raised: {outputs.alerts_raised:,}{more}", title_justify="left")
    show_tenant = len({r["TenantId"] for r in outputs.top_alerts}) > 1
    if show_tenant:
        table.add_column("TenantId")
    for name in ("Severity", "SenderFromDomain", "Inbound threats", "Outbound", "Why", "AlertId"):
        table.add_column(name, justify="right" if name in ("Inbound threats", "Outbound") else "left")
    for r in outputs.top_alerts:
        cells = [r["TenantId"]] if show_tenant else []
        domain = r["SenderFromDomain"]
        cells += [
            r["Severity"],
            domain if domain and domain.strip() == domain else repr(domain),
            f"{r['IncomingTeamsMessagesWithThreats']:,}",
            f"{r['OutboundTeamsMessages']:,}",
            ", ".join(r["Reasons"]),
            r["AlertId"][:12],
        ]
        table.add_row(*cells)
    _console.print(table)


def print_diff(mode_diff: Any) -> None:
    """The mode diff: per-status counts, the disagreeing domains (bounded) and why they disagree."""
    kql = mode_diff.reports["kql"]
    window = _fmt_window(kql.window_start, kql.window_end)
    counts = mode_diff.status_counts
    _console.print(f"Mode diff over {window}: " + ", ".join(f"{counts.get(s, 0):,} {s}" for s in mode_diff.statuses))
    for mode, text in mode_diff.switches.items():
        _console.print(f"  {mode:9}: {text}")
    if mode_diff.rows:
        table = Table(title="Domains on which the modes disagree", title_justify="left")
        show_tenant = len({r["TenantId"] for r in mode_diff.rows}) > 1
        if show_tenant:
            table.add_column("TenantId")
        for name in ("SenderFromDomain", "Status", "kql out", "kql in", "corrected out", "corrected in", "Why"):
            table.add_column(name, justify="right" if " out" in name or " in" in name else "left")
        fmt = lambda v: "" if v is None else f"{v:,}"  # noqa: E731
        for r in mode_diff.rows:
            cells = [r["TenantId"]] if show_tenant else []
            domain = r["SenderFromDomain"]
            cells += [
                domain if domain and domain.strip() == domain else repr(domain),
                r["Status"],
                fmt(r["KqlOutbound"]),
                fmt(r["KqlInbound"]),
                fmt(r["CorrectedOutbound"]),
                fmt(r["CorrectedInbound"]),
                r["Why"],
            ]
            table.add_row(*cells)
        _console.print(table)
    else:
        _console.print("The two modes agree on every domain in this window.")
    _console.print(mode_diff.explanation)
    _console.print(f"results    -> {kql.locations.output} (both modes, keyed by window and Mode)")
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

    def __enter__(self) -> DayProgress:
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
