"""What each CLI command does, once its arguments and configuration are parsed."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import structlog
from rich.console import Console

from sync.cli.progress import RunProgress
from sync.cli.reports import print_report, write_reports
from sync.config import Settings
from sync.engine.run import RunResult, run_sync
from sync.errors import ConfigError, SyncError, described
from sync.exit_codes import ExitCode
from sync.model import Side
from sync.quality import sensitive_fields
from sync.report.literal import json_visible, visible
from sync.report.logs import scrub_message
from sync.report.outcomes import Outcome, RunFailure, status_of
from sync.report.redaction import scrubbed
from sync.report.render import OutputFormat, mask
from sync.store import ConflictResolution, Store
from sync.wiring import open_job, open_store, scrubber_of

__all__ = [
    "cmd_check",
    "cmd_conflicts",
    "cmd_crm",
    "cmd_merge",
    "cmd_run",
    "cmd_sandbox",
    "cmd_status",
    "cmd_store",
]


log = structlog.get_logger("sync")


def _progress() -> tuple[AbstractContextManager[object], RunProgress | None]:
    """A live progress display on a terminal; nothing when output is piped."""
    if not sys.stderr.isatty():
        return nullcontext(), None
    progress = RunProgress(Console(stderr=True))
    return progress.display, progress


async def _run(
    settings: Settings, store: Store, dry_run: bool, allow_mass_delete: bool = False
) -> RunResult:
    display, progress = _progress()
    async with open_job(settings, store) as job:
        if allow_mass_delete:
            # One explicit run only: the daemon and the configuration never carry it.
            job.policy = replace(job.policy, allow_mass_delete=True)
        with display:
            return await run_sync(
                job,
                dry_run=dry_run,
                progress=progress.advance if progress else None,
                expect=progress.expect if progress else None,
                run_timeout=settings.sync.run_timeout,
            )


def _selected(args: argparse.Namespace, settings: Settings) -> list[Settings]:
    names = [args.sync] if args.sync else settings.sync_names()
    return [settings.for_sync(name) for name in names]


def _one(args: argparse.Namespace, settings: Settings) -> Settings:
    return settings.for_sync(args.sync or settings.sync_names()[0])


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """``run`` and ``diff``: every configured sync, or the one named by ``--sync``.

    A sync that fails is reported as failed (stderr, ``--output json``, ``--report``) and
    the others still run; the exit code is then 1.
    """
    dry_run = args.command == "diff" or bool(getattr(args, "dry_run", False))
    allow = bool(getattr(args, "allow_mass_delete", False))
    explicit = OutputFormat(args.output) if args.output else None
    fmt = explicit or OutputFormat.TEXT
    outcomes: list[Outcome] = []
    sensitive = sensitive_fields(settings.quality)
    scrub = scrubber_of(settings)
    selected = _selected(args, settings)
    several = len(selected) > 1
    started = datetime.now(UTC)
    try:
        store = open_store(settings)
    except SyncError as exc:
        outcomes = [_failed(one, dry_run, exc, started, several) for one in selected]
        _write_reports(args, outcomes, fmt, explicit, sensitive)
        return ExitCode.FAILED
    try:
        for one in selected:
            started = datetime.now(UTC)
            try:
                result = scrubbed(asyncio.run(_run(one, store, dry_run, allow)), scrub)
            except ConfigError as exc:
                # Still a usage error (exit 2, said by the caller), but reported: a script
                # must not read the previous run's report as this one's.
                failure = RunFailure(
                    one.sync.name, dry_run, type(exc).__name__, scrub(str(exc)), started
                )
                _write_reports(args, [*outcomes, failure], fmt, explicit, sensitive)
                raise
            except SyncError as exc:
                outcomes.append(_failed(one, dry_run, exc, started, several))
                continue
            outcomes.append(result)
            if fmt is not OutputFormat.JSON:
                print_report(result, fmt, show_sensitive=args.show_sensitive, sensitive=sensitive)
    finally:
        store.close()
    _write_reports(args, outcomes, fmt, explicit, sensitive)
    if any(isinstance(outcome, RunFailure) for outcome in outcomes):
        return ExitCode.FAILED
    return ExitCode.OK if all(status_of(o) == "ok" for o in outcomes) else ExitCode.PARTIAL


def _failed(
    one: Settings, dry_run: bool, exc: SyncError, started: datetime, several: bool
) -> RunFailure:
    """The failure of one sync, said on stderr (and logged) as it happens."""
    message = scrub_message(scrubber_of(one)(described(exc)))
    log.error("run_failed", sync=one.sync.name, error=message, error_type=type(exc).__name__)
    prefix = f"sync {one.sync.name}: " if several else ""
    sys.stderr.write(visible(f"flowtly-sync: {prefix}{message}") + "\n")
    return RunFailure(one.sync.name, dry_run, type(exc).__name__, message, started)


def _write_reports(
    args: argparse.Namespace,
    outcomes: list[Outcome],
    fmt: OutputFormat,
    explicit: OutputFormat | None,
    sensitive: frozenset[str],
) -> None:
    write_reports(
        outcomes,
        fmt,
        explicit,
        args.report,
        show_sensitive=bool(args.show_sensitive),
        sensitive=sensitive,
    )


def _say(out: TextIO, line: str) -> None:
    """One line of a listing, its data values shown literally."""
    out.write(visible(line) + "\n")


def _shown(value: object, field: str, sensitive: frozenset[str], show: bool) -> str:
    """A stored value for the terminal: sensitive fields masked unless asked for."""
    if value is None:
        return "∅"
    if field in sensitive and not show:
        return str(mask(value if isinstance(value, str | int | bool) else str(value)))
    return str(value)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """``status``: the last runs, open conflicts and rejected records.

    With ``--client CRM_ID``: that client's documents summary, read live from Flowtly.
    """
    if getattr(args, "client", None):
        from sync.cli.extras import client_status

        one = _one(args, settings)
        with open_store(one) as client_store:
            out = scrubber_of(settings).stream(sys.stdout)
            return client_status(one, client_store, args.client, out=out)
    store = open_store(settings)
    name = _one(args, settings).sync.name
    try:
        runs = store.recent_runs(name, limit=args.limit)
        conflicts = store.open_conflicts(name)
        rejections = store.rejections(name)
    finally:
        store.close()
    out = sys.stdout
    # Reasons and errors are stored scrubbed; rows older than that are scrubbed here.
    scrub = scrubber_of(settings)
    _say(out, f"sync {name}")
    if not runs:
        out.write("no runs yet\n")
    for run in runs:
        finished = run.finished_at.isoformat(timespec="seconds") if run.finished_at else "-"
        line = f"  run {run.id}: {run.outcome} started {run.started_at.isoformat('T', 'seconds')}"
        line += f" finished {finished}"
        if run.error:
            line += f" error: {scrub(run.error)}"
        _say(out, line)
    sensitive = sensitive_fields(settings.quality)
    show = bool(getattr(args, "show_sensitive", False))
    out.write(f"{len(conflicts)} open conflict(s)\n")
    for c in conflicts:
        _say(
            out,
            f"  #{c.id} {c.entity} crm {c.crm_id} / flowtly {c.flowtly_id} field {c.field}: "
            f"crm={_shown(c.crm_value, c.field, sensitive, show)} "
            f"flowtly={_shown(c.flowtly_value, c.field, sensitive, show)}",
        )
    out.write(f"{len(rejections)} rejected record(s)\n")
    for r in rejections:
        field = f" field {r.field}" if r.field else ""
        if r.field and r.value is not None:
            field += f" value {_shown(scrub(r.value), r.field, sensitive, show)!r}"
        _say(out, f"  {r.entity} {r.record_id} ({r.side}){field}: {scrub(r.reason)}")
    return ExitCode.OK


def cmd_conflicts(args: argparse.Namespace, settings: Settings) -> int:
    """``conflicts list|show|resolve``."""
    store = open_store(settings)
    name = _one(args, settings).sync.name
    try:
        sensitive = sensitive_fields(settings.quality)
        show = bool(getattr(args, "show_sensitive", False))
        if args.conflicts_command == "list":
            conflicts = store.open_conflicts(name)
            if not conflicts:
                sys.stdout.write("no open conflicts\n")
            for c in conflicts:
                _say(
                    sys.stdout,
                    f"#{c.id} {c.entity} crm {c.crm_id} / flowtly {c.flowtly_id} "
                    f"{c.field}: base={_shown(c.base_value, c.field, sensitive, show)} "
                    f"crm={_shown(c.crm_value, c.field, sensitive, show)} "
                    f"flowtly={_shown(c.flowtly_value, c.field, sensitive, show)}",
                )
            return ExitCode.OK
        conflict = store.get_conflict(args.conflict_id)
        if conflict is None or conflict.sync != name:
            sys.stderr.write(f"flowtly-sync: no conflict #{args.conflict_id} in sync {name}\n")
            return ExitCode.FAILED
        if args.conflicts_command == "show":
            sys.stdout.write(
                _json_text(
                    {
                        "id": conflict.id,
                        "entity": str(conflict.entity),
                        "crm_id": conflict.crm_id,
                        "flowtly_id": conflict.flowtly_id,
                        "field": conflict.field,
                        "base": conflict.base_value,
                        "crm": conflict.crm_value,
                        "flowtly": conflict.flowtly_value,
                        "detected_at": conflict.detected_at.isoformat(),
                        "resolved_at": conflict.resolved_at.isoformat()
                        if conflict.resolved_at
                        else None,
                        "resolution": conflict.resolution,
                        "resolved_by": conflict.resolved_by,
                    },
                )
                + "\n"
            )
            return ExitCode.OK
        return _resolve(store, name, conflict.id, Side(args.take))
    finally:
        store.close()


def _json_text(data: dict[str, object]) -> str:
    """``data`` as indented JSON with control characters escaped, even the few JSON allows."""
    return json_visible(json.dumps(data, indent=2, ensure_ascii=False))


def _resolve(store: Store, name: str, conflict_id: int, winner: Side) -> int:
    """Settle a conflict so the next run writes the winner's value to the other side.

    The link's base for the field becomes the loser's value and the winner's stored
    fingerprint is cleared: the next run then sees "winner changed, loser did not" and
    propagates the winner's value through the normal three-way path.
    """
    conflict = store.get_conflict(conflict_id)
    assert conflict is not None
    link = store.link_index(name, conflict.entity, [conflict.crm_id]).get(conflict.crm_id)
    with store.transaction() as tx:
        if link is not None:
            base = dict(
                store.load_bases(name, conflict.entity, [conflict.crm_id]).get(conflict.crm_id, {})
            )
            loser = conflict.flowtly_value if winner is Side.CRM else conflict.crm_value
            base[conflict.field] = loser
            tx.save_link(
                name,
                conflict.entity,
                link.crm_id,
                link.flowtly_id,
                base,
                "" if winner is Side.CRM else link.crm_fp,
                "" if winner is Side.FLOWTLY else link.flowtly_fp,
            )
    store.resolve_conflict(conflict_id, ConflictResolution(str(winner)), None, getpass.getuser())
    sys.stdout.write(f"conflict #{conflict_id} resolved: {winner} wins; the next run writes it\n")
    return ExitCode.OK


def cmd_merge(args: argparse.Namespace, settings: Settings) -> int:
    """``merge [--apply]``: duplicate Flowtly counterparties of one CRM company."""
    from sync.cli.extras import merge_duplicates

    one = _one(args, settings)
    with open_store(one) as store:
        out = scrubber_of(settings).stream(sys.stdout)
        return merge_duplicates(
            one, store, apply=args.apply, show_sensitive=args.show_sensitive, out=out
        )


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """``check``: both sides reachable, credentials valid, assumptions probed."""
    from sync.cli.check import run_checks

    ok = True
    out = scrubber_of(settings).stream(sys.stdout)
    for one in _selected(args, settings):
        out.write(f"sync {one.sync.name}:\n")
        ok = asyncio.run(run_checks(one, out)) and ok
    return ExitCode.OK if ok else ExitCode.FAILED


def cmd_crm(args: argparse.Namespace, settings: Settings) -> int:
    """``crm setup [--apply]``: the CRM's custom fields, listed or created."""
    from sync.cli.crm_setup import setup_crm

    ok = True
    out = scrubber_of(settings).stream(sys.stdout)
    for one in _selected(args, settings):
        ok = asyncio.run(setup_crm(one, out, apply=args.apply)) and ok
    return ExitCode.OK if ok else ExitCode.PARTIAL


def cmd_store(args: argparse.Namespace, settings: Settings) -> int:
    """``store rebind``: bind one sync's store to the sides configured now."""
    from sync.cli.rebind import rebind

    names = settings.sync_names()
    if args.sync is None and len(names) > 1:
        raise ConfigError("--sync", f"name the sync to rebind; configured: {', '.join(names)}")
    one = _one(args, settings)
    with open_store(one) as store:
        asyncio.run(rebind(one, store, sys.stdout))
    return ExitCode.OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    """``sandbox``: serve the emulator until SIGINT/SIGTERM."""
    from sync.sandbox import SandboxSettings, serve

    settings = SandboxSettings(
        token=args.token,
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit,
        fail_rate=args.fail_rate,
        seed=args.seed,
        db=Path(args.db) if args.db else None,
    )

    # serve() prints the ready line itself (tests and scripts wait for it).
    asyncio.run(serve(settings, args.host, args.port))
    return ExitCode.OK
