"""Deterministic fault injection, for tests only: the process kills itself at a named point.

Set `PARTNER_HUNT_FAULT=<point>` in a child process's environment and it ends with SIGKILL (no
cleanup, no `finally`, no run-log row: a machine that lost power) when it reaches that point:

- `after-partials-commit`: right after a batch of daily partials is committed (backfill, incremental).
- `before-report`: after the partials, before the window report (results, evidence, alerts).
- `after-results-commit`: right after the results table's commit, the run's last table commit.
- `before-run-log`: after every table is written, before the run-log row is appended.
- `after-ingest-quarantine`, `after-ingest-commit`: an ingest, after its quarantine's write and
  after its table's commit (before it records what it consumed of each blob).
- `mid-create-<table>` with `<table>` one of evidence, alerts, run_log, quarantine, partials: in the
  middle of that state table's first creation. "Middle" means what a kill during Delta's first
  write leaves behind: the data files are on disk (written here as Parquet part files) and the
  `_delta_log` folder exists, but no commit landed. It applies to a local path table whose
  location ends in `_<table>` (the default sibling names).

Unset, or naming another point, every call is a no-op.
"""

from __future__ import annotations

import os
import signal

ENV = "PARTNER_HUNT_FAULT"
STATE_TABLES = ("evidence", "alerts", "run_log", "quarantine", "partials")


def armed(name: str) -> bool:
    """True when the environment names this fault point."""
    return os.environ.get(ENV, "") == name


def kill() -> None:
    """End this process at once, as SIGKILL does: nothing after this line runs."""
    os.kill(os.getpid(), signal.SIGKILL)


def point(name: str) -> None:
    """Kill the process here when the environment names this point; otherwise do nothing."""
    if armed(name):
        kill()


def creation_point(location: str) -> str | None:
    """The armed `mid-create-<table>` point that applies to a table at `location`, if any."""
    wanted = os.environ.get(ENV, "")
    for table in STATE_TABLES:
        if wanted == f"mid-create-{table}" and location.rstrip("/").endswith(f"_{table}"):
            return wanted
    return None
