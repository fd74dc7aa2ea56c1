"""The ``merge`` command and ``status --client``: the finance parts of the command line.

Both open their own Flowtly client and CRM connector from the configuration (the same
wiring a run uses) and read live: ``status --client`` shows what Flowtly holds now, and
``merge`` decides from complete listings of the counterparties. Exit codes follow
`sync.exit_codes.ExitCode`.
"""

from __future__ import annotations

import asyncio
from typing import TextIO

from connectors.base import Connector
from sync.config import Settings
from sync.engine.binding import check_binding
from sync.exit_codes import ExitCode
from sync.extras.documents import render_summary, summarize
from sync.extras.duplicates import (
    DuplicateReport,
    MergeOutcome,
    apply_merges,
    find_duplicates,
    shown_key,
)
from sync.extras.search import find_clients
from sync.flowtly.side import FlowtlySide
from sync.model import EntityKind, Record
from sync.store import Store
from sync.wiring import build_crm, flowtly_client, flowtly_side

__all__ = ["client_status", "merge_duplicates"]


async def _records(side: Connector, entity: EntityKind) -> list[Record]:
    return [record async for batch in side.read(entity) for record in batch.records]


async def _crm_record(crm: Connector, entity: EntityKind, crm_id: str) -> Record | None:
    if entity not in crm.entities():
        return None
    async for batch in crm.read(entity):
        for record in batch.records:
            if record.id == crm_id:
                return record
    return None


def _ids(ids: tuple[str, ...]) -> str:
    return ", ".join(ids) if ids else "-"


def _print_report(
    report: DuplicateReport, client_dups: dict[str, list[Record]], show: bool, out: TextIO
) -> None:
    for group in report.groups:
        name = f" {group.crm_name!r}" if group.crm_name else ""
        kept = "linked" if group.linked == group.keep else "lowest id"
        out.write(
            f"counterparty group {shown_key(group.key, show)}: crm {group.crm_id}{name}; "
            f"keep flowtly {group.keep} ({kept}), merge {_ids(group.merge)}"
            + (f"; left alone (linked elsewhere): {_ids(group.held)}" if group.held else "")
            + "\n"
        )
    for blocked in report.blocked:
        out.write(
            f"not merged {shown_key(blocked.key, show)}: crm {_ids(blocked.crm_ids)}, "
            f"flowtly {_ids(blocked.flowtly_ids)}: {blocked.reason}\n"
        )
    for crm_id, clients in sorted(client_dups.items()):
        ids = tuple(c.id for c in clients)
        out.write(
            f"client crm {crm_id}: flowtly clients {_ids(ids)} share its key; Flowtly cannot "
            "merge clients through its API, merge them in Flowtly\n"
        )


async def _client_duplicates(
    crm: Connector, side: FlowtlySide, linked: set[str]
) -> dict[str, list[Record]]:
    if EntityKind.CLIENT not in crm.entities():
        return {}
    unlinked = [r for r in await _records(crm, EntityKind.CLIENT) if r.id not in linked]
    found = await find_clients(side, unlinked)
    return {crm_id: hits for crm_id, hits in found.items() if len(hits) > 1}


async def _merge(settings: Settings, store: Store, *, apply: bool, show: bool, out: TextIO) -> int:
    name = settings.sync.name
    crm = build_crm(settings)
    client = flowtly_client(settings)
    side = flowtly_side(settings, client)
    async with client, crm, side:
        # Links of other sides would pair strangers: refuse before reading them.
        await check_binding(name, crm, side, store, dry_run=True)
        crm_links = store.link_index(name, EntityKind.COUNTERPARTY)
        links = {crm_id: row.flowtly_id for crm_id, row in crm_links.items()}
        crm_cps: list[Record] = []
        if EntityKind.COUNTERPARTY in crm.entities():
            crm_cps = await _records(crm, EntityKind.COUNTERPARTY)
        report = find_duplicates(crm_cps, await _records(side, EntityKind.COUNTERPARTY), links)
        linked_clients = set(store.link_index(name, EntityKind.CLIENT))
        client_dups = await _client_duplicates(crm, side, linked_clients)
        _print_report(report, client_dups, show, out)
        if not report.groups:
            out.write("nothing to merge\n")
            return ExitCode.OK
        if not apply:
            out.write(f"{len(report.groups)} group(s) would merge (dry run; --apply merges)\n")
            return ExitCode.OK
        with store.lock(name):
            outcomes = await apply_merges(side, store, name, report.groups)
    return _print_outcomes(outcomes, out)


def _print_outcomes(outcomes: list[MergeOutcome], out: TextIO) -> int:
    for outcome in outcomes:
        group = outcome.group
        if outcome.ok:
            out.write(f"merged flowtly {_ids(group.merge)} into {group.keep}\n")
        else:
            out.write(f"could not merge into {group.keep}: {outcome.error}\n")
    merged = sum(1 for o in outcomes if o.ok)
    out.write(f"{merged} of {len(outcomes)} group(s) merged; the next run links them\n")
    return ExitCode.OK if merged == len(outcomes) else ExitCode.PARTIAL


def merge_duplicates(
    settings: Settings, store: Store, *, apply: bool, show_sensitive: bool, out: TextIO
) -> int:
    """``flowtly-sync merge [--apply]``: list (and with ``apply`` merge) duplicates."""
    return asyncio.run(_merge(settings, store, apply=apply, show=show_sensitive, out=out))


async def _status(settings: Settings, store: Store, crm_id: str, out: TextIO) -> int:
    link = store.link_index(settings.sync.name, EntityKind.CLIENT).get(crm_id)
    crm = build_crm(settings)
    client = flowtly_client(settings)
    side = flowtly_side(settings, client)
    async with client, crm, side:
        how = "linked"
        flowtly_id = link.flowtly_id if link is not None else None
        if flowtly_id is None:
            record = await _crm_record(crm, EntityKind.CLIENT, crm_id)
            if record is None:
                out.write(f"client {crm_id}: no such client in the CRM\n")
                return ExitCode.FAILED
            hits = (await find_clients(side, [record])).get(crm_id, [])
            if not hits:
                out.write(f"client {crm_id}: not linked, and no Flowtly client matches it\n")
                return ExitCode.FAILED
            if len(hits) > 1:
                ids = ", ".join(h.id for h in hits)
                out.write(f"client {crm_id}: not linked; Flowtly clients {ids} all match it\n")
                return ExitCode.PARTIAL
            flowtly_id, how = hits[0].id, "not linked yet, matched by key"
        found = await side.fetch(EntityKind.CLIENT, flowtly_id)
        if found is None:
            out.write(f"client {crm_id}: Flowtly client {flowtly_id} no longer exists\n")
            return ExitCode.FAILED
        summary = summarize(flowtly_id, await side.client_documents(flowtly_id))
    out.write(f"client {crm_id} -> flowtly {flowtly_id} ({how}): {found.get('name') or '-'}\n")
    out.write(render_summary(summary))
    return ExitCode.OK


def client_status(settings: Settings, store: Store, crm_id: str, *, out: TextIO) -> int:
    """``flowtly-sync status --client CRM_ID``: the client's documents summary, live."""
    return asyncio.run(_status(settings, store, crm_id, out))
