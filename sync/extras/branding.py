"""Branding enrichment of the counterparties a run created in Flowtly (opt-in).

Flowtly can fill a counterparty's ``logoUrl`` (and an empty ``corporateWebsiteUrl``) by
itself. After a run, the counterparties the sync just created are queued for that; the
next run then carries the filled values to the CRM like any Flowtly-side change. With
enrichment on, ``logo_url`` flows only from Flowtly to the CRM (`sync.wiring.policy_of`),
so an enriched logo is never taken for a CRM-side edit, nor for a conflict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, Protocol

from sync.engine.ops import Action, Operation
from sync.model import EntityKind, Side

__all__ = ["ENRICH_CHUNK", "BrandingEnricher", "created_counterparties", "enrich_created"]

ENRICH_CHUNK: Final = 100
"""Ids per batch request: a bound on the body, since Flowtly publishes no limit."""


class BrandingEnricher(Protocol):
    """What enrichment needs of the Flowtly side (`sync.flowtly.side.FlowtlySide`)."""

    async def enrich_branding(self, ids: Sequence[str]) -> None: ...


def created_counterparties(operations: Iterable[Operation]) -> list[str]:
    """Flowtly ids of the counterparties that ``operations`` created there (in order)."""
    found = (
        op.flowtly_id
        for op in operations
        if op.entity is EntityKind.COUNTERPARTY
        and op.action is Action.CREATE
        and op.target is Side.FLOWTLY
        and op.outcome == "ok"
        and op.flowtly_id is not None
    )
    return list(dict.fromkeys(i for i in found if i is not None))


async def enrich_created(side: BrandingEnricher, operations: Iterable[Operation]) -> list[str]:
    """Queue enrichment for the counterparties ``operations`` created; their ids.

    One id goes to the single route, several to the batch route in chunks of
    `ENRICH_CHUNK`. Flowtly errors propagate to the caller.
    """
    ids = created_counterparties(operations)
    for start in range(0, len(ids), ENRICH_CHUNK):
        await side.enrich_branding(ids[start : start + ENRICH_CHUNK])
    return ids
