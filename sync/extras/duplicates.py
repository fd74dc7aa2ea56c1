"""Duplicate counterparties in Flowtly: find the groups one CRM company matches, merge them.

Initial matching links a CRM company to the one Flowtly counterparty with the same natural
key (`sync.normalize.natural_key`); when several share it the engine reports an ambiguous
match and links nothing. `find_duplicates` lists those groups: for each group it keeps the
counterparty already linked to the company, else the lowest id, and merges the others into
it through ``POST /counterparties/{keep}/merge`` (`apply_merges`). A counterparty linked to
another CRM company is never merged away; a key several CRM companies share is reported,
not merged, since no choice would be safe.

After a merge the company and the kept counterparty are the only holders of their key, so
the next run links them through ordinary matching (or, when already linked, carries the
merged values over as a Flowtly-side change); the stale "ambiguous match" rejections are
cleared at once so ``status`` stops showing them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sync.errors import ApiError, AuthenticationError, TransportSecurityError
from sync.model import EntityKind, Record, Side
from sync.normalize import natural_key
from sync.report.render import mask
from sync.store import Store

__all__ = [
    "BlockedKey",
    "CounterpartyMerger",
    "DuplicateGroup",
    "DuplicateReport",
    "MergeOutcome",
    "apply_merges",
    "find_duplicates",
    "shown_key",
]


class CounterpartyMerger(Protocol):
    """What merging needs of the Flowtly side (`sync.flowtly.side.FlowtlySide`)."""

    async def merge_counterparties(self, keep_id: str, other_ids: Sequence[str]) -> Record: ...


@dataclass(frozen=True, slots=True)
class DuplicateGroup:
    """Flowtly counterparties sharing the natural key of one CRM company.

    ``keep`` survives; ``merge`` are merged into it. ``linked`` is the member already
    linked to the company, if any; ``held`` are members linked to other CRM companies,
    left alone.
    """

    key: str
    crm_id: str
    crm_name: str | None
    keep: str
    merge: tuple[str, ...]
    linked: str | None = None
    held: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BlockedKey:
    """Duplicates that cannot be merged safely, and why."""

    key: str
    crm_ids: tuple[str, ...]
    flowtly_ids: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class DuplicateReport:
    """Every group that can be merged, and every duplicate that cannot."""

    groups: tuple[DuplicateGroup, ...] = ()
    blocked: tuple[BlockedKey, ...] = ()


@dataclass(frozen=True, slots=True)
class MergeOutcome:
    """What became of one group: merged (``error`` None) or refused with a reason."""

    group: DuplicateGroup
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _order(record_id: str) -> tuple[int, str]:
    # Flowtly ids are integers; anything else sorts after them, by text.
    return (int(record_id), "") if record_id.isdigit() else (1 << 62, record_id)


def _by_key(records: Sequence[Record]) -> dict[str, list[Record]]:
    index: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        key = natural_key(record)
        if key is not None:
            index[key].append(record)
    return index


def find_duplicates(
    crm: Sequence[Record], flowtly: Sequence[Record], links: Mapping[str, str]
) -> DuplicateReport:
    """Group the Flowtly counterparties that share one CRM company's natural key.

    ``crm`` and ``flowtly`` are the counterparties of each side; ``links`` maps CRM ids to
    linked Flowtly ids. Keys no CRM company holds are not duplicates of anything synced
    and are left out.
    """
    crm_by_key = _by_key(crm)
    crm_of = {flowtly_id: crm_id for crm_id, flowtly_id in links.items()}
    groups: list[DuplicateGroup] = []
    blocked: list[BlockedKey] = []
    for key, members in sorted(_by_key(flowtly).items()):
        ids = sorted((m.id for m in members), key=_order)
        companies = crm_by_key.get(key, [])
        if len(ids) < 2 or not companies:
            continue
        crm_ids = tuple(sorted(c.id for c in companies))
        if len(companies) > 1:
            reason = "several CRM companies share this key; make them distinct in the CRM first"
            blocked.append(BlockedKey(key, crm_ids, tuple(ids), reason))
            continue
        company = companies[0]
        held = tuple(i for i in ids if i in crm_of and crm_of[i] != company.id)
        free = [i for i in ids if i not in held]
        linked = links.get(company.id)
        linked = linked if linked in free else None
        if len(free) < 2:
            reason = "the other counterparties are linked to other CRM companies"
            blocked.append(BlockedKey(key, crm_ids, tuple(ids), reason))
            continue
        keep = linked if linked is not None else free[0]
        merge = tuple(i for i in free if i != keep)
        name = company.get("name")
        groups.append(
            DuplicateGroup(
                key, company.id, None if name is None else str(name), keep, merge, linked, held
            )
        )
    return DuplicateReport(tuple(groups), tuple(blocked))


async def apply_merges(
    merger: CounterpartyMerger, store: Store, sync: str, groups: Sequence[DuplicateGroup]
) -> list[MergeOutcome]:
    """Merge each group on Flowtly and settle the store; one failure costs one group.

    Authentication and transport-security failures stop everything (they would fail
    every group alike).
    """
    outcomes: list[MergeOutcome] = []
    for group in groups:
        try:
            await merger.merge_counterparties(group.keep, group.merge)
        except (AuthenticationError, TransportSecurityError):
            raise
        except ApiError as error:
            outcomes.append(MergeOutcome(group, str(error)))
            continue
        with store.transaction() as tx:
            entity = EntityKind.COUNTERPARTY
            tx.clear_rejection(sync, entity, Side.CRM, group.crm_id)
            for flowtly_id in (group.keep, *group.merge):
                tx.clear_rejection(sync, entity, Side.FLOWTLY, flowtly_id)
        outcomes.append(MergeOutcome(group))
    return outcomes


def shown_key(key: str, show_sensitive: bool) -> str:
    """A natural key for display: the tax id in a ``tax:`` key is masked unless asked."""
    kind, sep, value = key.partition(":")
    if kind != "tax" or not sep or show_sensitive:
        return key
    country, has_country, number = value.rpartition(":")
    return f"{kind}:{country}{has_country}{mask(number)}"
