"""The `partner-hunt` command: argument parsing, subcommands and terminal output; nothing else."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from partner_hunt import __version__
from partner_hunt.config import MODES, Config, ConfigError, load_config

DEFAULT_CONFIG = Path("conf/local.yml")
# Problems a user can fix: reported in one line, no stack trace.
EXIT_USAGE = 2
EXIT_FAILED = 1


class UserError(Exception):
    """An error whose message is the whole story for the user."""


def _known_errors() -> tuple[type[BaseException], ...]:
    from partner_hunt.commands.steps.accounting import BadInputError
    from partner_hunt.core.schema import SchemaContractError
    from partner_hunt.store.checks import PrecheckError
    from partner_hunt.store.landing import LandingError
    from partner_hunt.store.locations import CorruptFileError, TableFormatError, TableNotFoundError
    from partner_hunt.store.partials_table import PartialsMismatchError
    from partner_hunt.store.session import JavaMissingError

    return (
        UserError, ConfigError, TableFormatError, TableNotFoundError, SchemaContractError, BadInputError,
        JavaMissingError, PartialsMismatchError, CorruptFileError, PrecheckError, LandingError,
    )


def _bool_flag(parser: argparse.ArgumentParser, name: str, help_text: str) -> None:
    parser.add_argument(f"--{name}", dest=name.replace("-", "_"), action=argparse.BooleanOptionalAction, default=None, help=help_text)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help=f"YAML config file (default: {DEFAULT_CONFIG} if present, else built-in defaults)")
    parser.add_argument("--master", help="Spark master URL, e.g. local[*] or spark://host:7077 (config spark.master)")
    parser.add_argument("--debug", action="store_true", help="show the full stack trace on errors")


def _add_hunt_options(parser: argparse.ArgumentParser, mode: bool = True) -> None:
    parser.add_argument("--source", help="MessageEvents Delta table: a path or catalog.schema.table (config source)")
    parser.add_argument("--output", help="results Delta table: a path or catalog.schema.table (config output)")
    parser.add_argument("--start", help="window start, inclusive: ISO date or date-time, UTC (config hunt.start)")
    parser.add_argument("--end", help="window end, exclusive: ISO date or date-time, UTC (config hunt.end)")
    parser.add_argument(
        "--exclude-domain", action="append", dest="exclude_domain", metavar="D",
        help="an own domain to leave out; repeat for several (config hunt.exclude_domains)",
    )
    if mode:
        parser.add_argument(
            "--mode",
            choices=MODES,
            help="kql = exact parity (default); corrected = sender-side inbound; known-now = corrected, threats found after delivery counted too",
        )
    parser.add_argument("--top", type=int, help="how many result rows to print (config hunt.top)")
    _bool_flag(parser, "include-ratio", "compute Bad_Traffic_Percentage (config hunt.include_ratio)")
    _bool_flag(parser, "normalize-domains", "lower-case/trim domains (config hunt.normalize_domains)")
    _bool_flag(parser, "count-messages", "count distinct messages, not message x recipient rows (config hunt.count_messages)")
    _bool_flag(parser, "dedupe-edits", "keep only the latest version of each TeamsMessageId (config hunt.dedupe_edits)")
    parser.add_argument("--max-bad-fraction", type=float, help="fail above this share of malformed rows (config quality.max_bad_fraction)")
    _bool_flag(parser, "skip-corrupt-files", "skip unreadable source data files and list them (config quality.skip_corrupt_files)")


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    """For the commands that write a window's analyst outputs; `diff` writes none, so it has no such flags."""
    _bool_flag(parser, "evidence", "write the evidence table beside the results (config evidence.enabled)")
    _bool_flag(parser, "alerts", "write the alerts table and JSON Lines beside the results (config alerts.enabled)")


def _add_job_run_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job-run-id", help="the scheduler's run id, recorded in the run log (Databricks: {{job.run_id}})")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="partner-hunt",
        description="Hunt partner compromise in Teams MessageEvents (rule af2b5dbd-4b66-47b4-9936-abfecb246ba1) on Spark + Delta.",
    )
    parser.add_argument("--version", action="version", version=f"partner-hunt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run the hunt over a window and write the results table")
    _add_common(run)
    _add_hunt_options(run)
    _add_output_flags(run)
    run.add_argument(
        "--incremental", action="store_true",
        help="recompute only the days whose source data changed (daily partials), then refresh the trailing window",
    )
    run.add_argument("--trailing-days", type=int, help="trailing window length for --incremental (config hunt.trailing_days)")
    _add_job_run_id(run)
    run.set_defaults(handler=cmd_run)

    backfill = sub.add_parser("backfill", help="compute missing daily partials over [start, end) and write the report")
    _add_common(backfill)
    _add_hunt_options(backfill)
    _add_output_flags(backfill)
    backfill.add_argument("--force", action="store_true", help="recompute days that are already done")
    backfill.add_argument(
        "--trailing-days", type=int,
        help="write one window of N days ending on each day, instead of one [start, end) window",
    )
    backfill.add_argument("--batch-days", type=int, help="days per commit (config hunt.backfill_batch_days)")
    _add_job_run_id(backfill)
    backfill.set_defaults(handler=cmd_backfill)

    diff = sub.add_parser(
        "diff", help="run kql and corrected modes over the same window and show where and why they disagree"
    )
    _add_common(diff)
    # No --mode: a diff always runs both modes.
    _add_hunt_options(diff, mode=False)
    diff.set_defaults(handler=cmd_diff)

    demo = sub.add_parser("demo", help="generate a seeded sample lake, then run the hunt on it")
    _add_common(demo)
    demo.add_argument("--lake", help="folder for the sample lake (config demo.lake)")
    demo.add_argument("--rows", type=int, help="rows of MessageEvents to generate (config demo.rows)")
    demo.add_argument("--days", type=int, help="days of data, ending today 00:00 UTC (config demo.days)")
    demo.add_argument("--seed", type=int, help="random seed (config demo.seed)")
    demo.add_argument("--tenants", type=int, help="tenants; more than 1 adds a TenantId column (config demo.tenants)")
    demo.add_argument(
        "--as-export", action="store_true", default=None,
        help="write the sample as Defender's storage export and ingest it first, the path real data takes (config demo.as_export)",
    )
    demo.add_argument("--mode", choices=MODES, help="hunt mode for the demo run")
    demo.add_argument("--top", type=int, help="how many result rows to print")
    demo.set_defaults(handler=cmd_demo)

    ingest = sub.add_parser("ingest", help="add what Defender exported (storage or Log Analytics export) to the MessageEvents table")
    _add_common(ingest)
    ingest.add_argument(
        "--from", dest="route", required=True, choices=("defender-storage", "log-analytics-export"),
        help="defender-storage: the Streaming API's container; log-analytics-export: a data export's am-messageevents container",
    )
    ingest.add_argument("--input", required=True, help="the export's container folder: a local path, abfss://..., or /Volumes/...")
    ingest.add_argument("--into", help="the flat MessageEvents Delta table to add to: a path or catalog.schema.table (default: config source)")
    ingest.add_argument("--output", help="results table beside which the run log is kept (config output)")
    _add_job_run_id(ingest)
    ingest.set_defaults(handler=cmd_ingest)

    export = sub.add_parser("export", help="write the results and partners as a file a SOC loads: Sentinel, Defender, Teams")
    _add_common(export)
    export.add_argument("--output", help="results Delta table to read: a path or catalog.schema.table (config output)")
    export.add_argument("--mode", choices=MODES, help="which mode's results and partners to export")
    export.add_argument(
        "--format", required=True, choices=("sentinel-watchlist", "defender-indicators", "teams-allowlist"),
        help="sentinel-watchlist | defender-indicators | teams-allowlist (docs/export.md)",
    )
    export.add_argument("--out", required=True, help="the CSV file to write (Defender: more files beside it past 500 rows)")
    export.add_argument("--tenant", help="the TenantId to export (needed for Defender and Teams when the tables hold several)")
    export.add_argument("--action", default="Audit", help="Defender indicator action (default Audit; Alert, Warn, Block, AlertAndBlock)")
    export.add_argument("--expire-days", type=int, default=30, help="Defender indicators expire this many days from now (default 30)")
    export.add_argument(
        "--max-indicators", type=int, default=15_000,
        help="Defender's active indicators per tenant (default 15000); lower it by the indicators already active",
    )
    export.set_defaults(handler=cmd_export)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Map parsed flags onto dotted config keys; unset flags are None and change nothing."""
    get = lambda name: getattr(args, name, None)  # noqa: E731
    return {
        "spark.master": get("master"),
        "source": get("source"),
        "output": get("output"),
        "hunt.start": get("start"),
        "hunt.end": get("end"),
        "hunt.exclude_domains": get("exclude_domain"),
        "hunt.mode": get("mode"),
        "hunt.top": get("top"),
        "hunt.include_ratio": get("include_ratio"),
        "hunt.normalize_domains": get("normalize_domains"),
        "hunt.count_messages": get("count_messages"),
        "hunt.dedupe_edits": get("dedupe_edits"),
        "quality.max_bad_fraction": get("max_bad_fraction"),
        "quality.skip_corrupt_files": get("skip_corrupt_files"),
        "evidence.enabled": get("evidence"),
        "alerts.enabled": get("alerts"),
        "hunt.trailing_days": get("trailing_days") if get("command") == "run" else None,
        "hunt.backfill_trailing_days": get("trailing_days") if get("command") == "backfill" else None,
        "hunt.backfill_batch_days": get("batch_days"),
        "job_run_id": get("job_run_id"),
        "demo.lake": get("lake"),
        "demo.rows": get("rows"),
        "demo.days": get("days"),
        "demo.seed": get("seed"),
        "demo.tenants": get("tenants"),
        "demo.as_export": get("as_export"),
    }


def resolve_config(args: argparse.Namespace) -> Config:
    """The YAML (explicit, else conf/local.yml if present) with the flags merged in, validated once."""
    path = args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    return load_config(path, _overrides(args))


def _session(config: Config):
    from partner_hunt.store.session import build_session

    return build_session(
        master=config.spark.master,
        app_name=config.spark.app_name,
        conf=config.spark.conf,
        remote=os.environ.get("PARTNER_HUNT_REMOTE") or None,
    )


def cmd_run(args: argparse.Namespace) -> int:
    """`partner-hunt run`."""
    from partner_hunt import terminal
    from partner_hunt.commands import refresh, run

    config = resolve_config(args)
    spark = _session(config)
    if args.incremental:
        try:
            with terminal.DayProgress("incremental") as progress:
                result = refresh.run_incremental(spark, config, on_batch=progress.advance)
        except ValueError as exc:
            raise UserError(f"run --incremental: {exc}") from None
    else:
        result = run.run(spark, config, command="run")
    terminal.print_run(result, config.hunt.include_ratio)
    if result.skipped_files:
        terminal.warn(f"skipped {len(result.skipped_files)} unreadable source file(s): {', '.join(result.skipped_files)}")
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    """`partner-hunt backfill --start D1 --end D2`: resumable, one commit per batch of days."""
    from partner_hunt import terminal
    from partner_hunt.commands import backfill
    from partner_hunt.core.partials import as_day

    config = resolve_config(args)
    if config.hunt.start is None or config.hunt.end is None:
        raise UserError("backfill needs --start and --end (or hunt.start and hunt.end in the config)")
    try:
        start, end = as_day(config.hunt.start), as_day(config.hunt.end)
    except ValueError as exc:
        raise UserError(f"backfill: {exc}") from None
    spark = _session(config)
    with terminal.DayProgress("backfill") as progress:
        result = backfill.backfill(spark, config, start, end, force=args.force, on_batch=progress.advance)
    terminal.print_run(result, config.hunt.include_ratio)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """`partner-hunt diff`: both modes over one window, compared."""
    from partner_hunt import terminal
    from partner_hunt.commands import diff

    config = resolve_config(args)
    spark = _session(config)
    terminal.print_diff(diff.run_diff(spark, config))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """`partner-hunt demo`: (re)generate the sample lake, then hunt it."""
    from partner_hunt import terminal
    from partner_hunt.commands import demo
    from partner_hunt.core import own_domains

    config = demo.demo_config(resolve_config(args))
    spark = _session(config)
    d = config.demo
    route = f" as Defender's storage export in {demo.export_folder(config)}, then ingesting it" if d.as_export else ""
    announce = lambda: terminal.say(  # noqa: E731
        f"Generating {d.rows:,} MessageEvents rows over {d.days} days in {Path(d.lake).resolve()}{route} ..."
    )
    result = demo.demo(spark, config, on_start=announce, say=terminal.say)
    terminal.print_run(result, config.hunt.include_ratio)
    if result.own_domains is not None:
        found = own_domains.describe(result.own_domains) or "none"
        terminal.say(
            f"Own domains found in the data and excluded (hunt.own_domains: auto): {found}. `partner-hunt diff` "
            "shows what the published query's kql mode and corrected mode see."
        )
    else:
        listed = ", ".join(config.hunt.own_domains_list)
        terminal.say(
            (f"Own domains as configured (hunt.own_domains): {listed}" if listed else "No own domains (hunt.own_domains: off)")
            + "; `partner-hunt diff` shows what the published query's kql mode and corrected mode see."
        )
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """`partner-hunt ingest --from ROUTE --input DIR [--into TABLE]`: exactly once, resumable."""
    from partner_hunt import terminal
    from partner_hunt.commands import ingest

    config = resolve_config(args)
    spark = _session(config)
    result = ingest.ingest(spark, config, args.route, args.input, into=args.into, say=terminal.say)
    counts = result.ingest_counts or {}
    terminal.say(
        f"ingested {counts.get('RecordsIngested', 0):,} of {counts.get('Records', 0):,} record(s) from "
        f"{counts.get('FilesRead', 0):,} blob(s) ({counts.get('BytesRead', 0):,} bytes) -> {result.locations.source} | "
        f"duplicates skipped {counts.get('DuplicatesSkipped', 0):,} | other categories {counts.get('OtherCategories', 0):,} | "
        f"quarantined {counts.get('Quarantined', 0):,} | incomplete lines held back {counts.get('IncompleteLinesHeldBack', 0):,} | "
        f"{result.duration_seconds:.1f}s"
    )
    terminal.say(f"run log    -> {result.locations.run_log} (run {result.run_id})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """`partner-hunt export --format F --out FILE`: results and partners as SOC files."""
    from partner_hunt import terminal
    from partner_hunt.commands import export

    config = resolve_config(args)
    if args.expire_days < 1 or args.max_indicators < 1:
        raise UserError("export: --expire-days and --max-indicators must be 1 or more")
    spark = _session(config)
    try:
        summary = export.export(
            spark, config, args.format, Path(args.out), tenant=args.tenant, action=args.action,
            expire_days=args.expire_days, limit=args.max_indicators,
        )
    except export.ExportError as exc:
        raise UserError(f"export: {exc}") from None
    terminal.say(
        f"{summary.format}: {summary.rows:,} row(s) -> {', '.join(summary.files)}"
        + (f" | {summary.left_out:,} left out (over --max-indicators)" if summary.left_out else "")
    )
    for note in summary.notes:
        terminal.warn(f"note: {note}")
    return 0


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code (0 ok, 1 unexpected failure, 2 user error, 130 interrupted)."""
    from partner_hunt import terminal

    parser = build_parser()
    args = parser.parse_args(argv)
    terminal.configure_logging()
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except _known_errors() as exc:
        if getattr(args, "debug", False):
            raise
        print(f"partner-hunt: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("partner-hunt: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one readable line, trace on --debug
        if getattr(args, "debug", False):
            raise
        from partner_hunt.store.errors import first_line

        print(f"partner-hunt: failed: {type(exc).__name__}: {first_line(exc)} (rerun with --debug for the trace)", file=sys.stderr)
        return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `partner-hunt` console command and of a Databricks python_wheel_task.

    A wheel task calls this and ignores what it returns, so a failure must raise SystemExit.
    """
    code = run_cli(argv)
    if code:
        raise SystemExit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
