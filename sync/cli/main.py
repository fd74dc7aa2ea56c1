"""The command line: parse, call, render. Exit codes are an interface (docs/reference.md):

0 done and clean; 3 done, but records were rejected or parked as conflicts;
2 bad usage or configuration; 1 the run could not proceed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sync import __version__
from sync.errors import ConfigError, SyncError, described
from sync.exit_codes import ExitCode

if TYPE_CHECKING:
    from sync.config import Settings

# Nothing heavy is imported here (pydantic, httpx, SQLAlchemy, rich, structlog): `--help`,
# usage errors and a cron job's start wait only for what their command needs.

__all__ = ["main"]

OUTPUT_FORMATS = ("text", "json", "markdown")
"""The values of `sync.report.render.OutputFormat`, spelled out so parsing needs no renderer."""

DEFAULT_CONFIG = Path("config.toml")
CONFIG_ENV = "FLOWTLY_SYNC_CONFIG"
"""The configuration file when ``--config`` is not given (before the working directory's)."""
SEARCHED = (DEFAULT_CONFIG, Path("config.example.toml"))


def _config_path(value: str | None) -> Path:
    """``--config``, else ``$FLOWTLY_SYNC_CONFIG``, else the first of `SEARCHED` found.

    Running on the built-in defaults alone would only fail later on a required key (or
    create a store in whatever folder this is): no file found is a usage error.
    """
    if value is not None:
        return Path(value)
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise ConfigError(CONFIG_ENV, f"no such file: {path}")
        return path
    for candidate in SEARCHED:
        if candidate.is_file():
            return candidate
    looked = " and ".join(f"./{candidate}" for candidate in SEARCHED)
    raise ConfigError(
        "--config",
        f"no configuration file found: looked for {looked} in {Path.cwd()}, and "
        f"{CONFIG_ENV} is not set; pass --config PATH or set {CONFIG_ENV} "
        "(config.example.toml of the project documents every key)",
    )


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sync", metavar="NAME", help="only this sync (default: all; one for status/conflicts)"
    )
    parser.add_argument(
        "--config",
        "-c",
        metavar="PATH",
        help="configuration file (default: $FLOWTLY_SYNC_CONFIG, else ./config.toml, "
        "else ./config.example.toml)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowtly-sync",
        description="Keep a CRM and a Flowtly account in sync, in both directions.",
    )
    parser.add_argument("--version", action="version", version=f"flowtly-sync {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, helptext in (
        ("run", "sync both sides once"),
        ("diff", "show what a run would change (same as run --dry-run)"),
    ):
        cmd = commands.add_parser(name, help=helptext, description=helptext)
        _add_config(cmd)
        if name == "run":
            cmd.add_argument(
                "--dry-run", action="store_true", help="plan and report, write nothing anywhere"
            )
            cmd.add_argument(
                "--allow-mass-delete",
                action="store_true",
                help="this run only: delete even what the mass-delete guard would refuse",
            )
        cmd.add_argument(
            "--output",
            "-o",
            choices=OUTPUT_FORMATS,
            default=None,
            help="report format on stdout (default: text), and of a --report FILE whose "
            "extension names none",
        )
        cmd.add_argument(
            "--report",
            metavar="FILE",
            help="also write the report here, also when the run fails; the format is "
            "the extension's (.json, .md, .txt), else --output's, else JSON",
        )
        cmd.add_argument(
            "--show-sensitive",
            action="store_true",
            help="show tax ids and other sensitive values unmasked",
        )

    status = commands.add_parser("status", help="last runs, open conflicts, rejected records")
    _add_config(status)
    status.add_argument("--limit", type=int, default=5, help="how many runs to show")
    status.add_argument(
        "--show-sensitive",
        action="store_true",
        help="show tax ids and other sensitive values unmasked",
    )
    status.add_argument(
        "--client",
        metavar="CRM_ID",
        help="instead: this CRM client's Flowtly documents summary, read live",
    )

    conflicts = commands.add_parser("conflicts", help="list, show and resolve conflicts")
    conflict_cmds = conflicts.add_subparsers(
        dest="conflicts_command", required=True, metavar="ACTION"
    )
    listing = conflict_cmds.add_parser("list", help="open conflicts")
    _add_config(listing)
    listing.add_argument(
        "--show-sensitive",
        action="store_true",
        help="show tax ids and other sensitive values unmasked",
    )
    show = conflict_cmds.add_parser("show", help="one conflict with its values")
    _add_config(show)
    show.add_argument("conflict_id", type=int)
    resolve = conflict_cmds.add_parser(
        "resolve", help="decide a conflict; the next run writes the chosen value"
    )
    _add_config(resolve)
    resolve.add_argument("conflict_id", type=int)
    resolve.add_argument(
        "--take", required=True, choices=["crm", "flowtly"], help="whose value wins"
    )

    merge = commands.add_parser(
        "merge",
        help="list duplicate Flowtly counterparties of one CRM company; --apply merges them",
        description="List groups of Flowtly counterparties that share the natural key of one "
        "CRM company (dry run). --apply merges each group into its linked counterparty (else "
        "the lowest id) through Flowtly's merge operation; the next run links the result.",
    )
    _add_config(merge)
    merge.add_argument("--apply", action="store_true", help="merge (default: only list)")
    merge.add_argument(
        "--show-sensitive", action="store_true", help="show tax ids in keys unmasked"
    )

    crm = commands.add_parser("crm", help="the CRM account: custom fields the mapping needs")
    crm_cmds = crm.add_subparsers(dest="crm_command", required=True, metavar="ACTION")
    setup = crm_cmds.add_parser(
        "setup",
        help="list the custom fields the mapping needs; --apply creates the missing ones",
        description="List the custom fields (properties) the CRM connector keeps canonical "
        "fields in that have no standard field, and which the account lacks. --apply creates "
        "the missing ones where the CRM's API can. Exit 0 when none is missing, 3 when some "
        "still are. A missing field is not synced; it is never an error per record.",
    )
    _add_config(setup)
    setup.add_argument("--apply", action="store_true", help="create the missing fields")

    check = commands.add_parser(
        "check", help="both sides reachable, credentials valid, Flowtly assumptions probed"
    )
    _add_config(check)

    store = commands.add_parser("store", help="the state store: rebind it to the configured sides")
    store_cmds = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    rebind = store_cmds.add_parser(
        "rebind",
        help="bind a sync's store to the CRM and Flowtly account configured now",
        description="A store remembers which CRM and which Flowtly account its links were "
        "made with, and runs against others refuse. Run this only when the configured sides "
        "hold those same records (e.g. the CRM folder moved); for other sides use a new "
        "store ([store] url). Prints the recorded and the new sides. With several syncs "
        "configured, --sync names the one.",
    )
    _add_config(rebind)

    daemon = commands.add_parser(
        "daemon",
        help="run every sync on its schedule; serve /healthz, /metrics and webhooks",
        description="Run every configured sync on its [sync] interval or cron and serve "
        "/healthz, /metrics and POST /webhooks/{source} on [daemon] listen. SIGTERM or "
        "SIGINT finishes the operations in flight and exits 0; a second signal exits at once.",
    )
    daemon.add_argument(
        "--config",
        "-c",
        metavar="PATH",
        help="configuration file (default: $FLOWTLY_SYNC_CONFIG, else ./config.toml, "
        "else ./config.example.toml)",
    )

    sandbox = commands.add_parser("sandbox", help="serve the local Flowtly emulator over HTTP")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument("--db", metavar="FILE", help="SQLite file (default: in memory)")
    sandbox.add_argument("--token", help="the only bearer token accepted (default: any)")
    sandbox.add_argument("--latency-ms", type=float, default=0.0)
    sandbox.add_argument("--rate-limit", type=float, default=0.0, help="requests/s, 0 = off")
    sandbox.add_argument(
        "--fail-rate", type=float, default=0.0, help="fraction of requests answered 500/503"
    )
    sandbox.add_argument("--seed", type=int, default=None)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    from sync.config import load_settings
    from sync.report.logs import configure_logging

    settings = load_settings(_config_path(args.config))
    configure_logging(
        settings.logging.level,
        settings.logging.format,
        settings.secrets(),
        sensitive=settings.quality.sensitive_fields,
    )
    return settings


def _dispatch(args: argparse.Namespace) -> int:
    # Imported here so `--help` and usage errors stay fast and never touch the store.
    import sync.cli.commands as commands

    handlers: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
        "run": commands.cmd_run,
        "diff": commands.cmd_run,
        "status": commands.cmd_status,
        "conflicts": commands.cmd_conflicts,
        "check": commands.cmd_check,
        "merge": commands.cmd_merge,
        "store": commands.cmd_store,
        "crm": commands.cmd_crm,
    }
    if args.command == "sandbox":
        return commands.cmd_sandbox(args)
    if args.command == "daemon":
        from sync.daemon import cmd_daemon

        return cmd_daemon(args, _settings(args))
    return handlers[args.command](args, _settings(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``flowtly-sync`` and ``python -m sync``."""
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"flowtly-sync: configuration error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except SyncError as exc:
        import structlog

        from sync.report.logs import scrub_message

        structlog.get_logger("sync").error(
            "run_failed", error=str(exc), error_type=type(exc).__name__
        )
        print(f"flowtly-sync: {scrub_message(described(exc))}", file=sys.stderr)
        return ExitCode.FAILED
    except KeyboardInterrupt:
        print("flowtly-sync: interrupted", file=sys.stderr)
        return ExitCode.FAILED
