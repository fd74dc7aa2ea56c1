"""Finding the Flowtly clients that match a few CRM companies, with ``/clients/search``.

The engine always lists every client (it needs complete listings to infer deletes), so
search cannot speed up a run. It helps one-off look-ups: ``status --client`` and the
duplicate report of ``merge`` ask about a handful of companies, where a few searches cost
far less than paging through a large account. Above `SEARCH_LIMIT` companies one complete
listing is cheaper, and `find_clients` switches to it.

Candidates are confirmed by `sync.normalize.natural_key` (the key initial matching uses),
so a name search that finds "ACME" and "ACME Holding" keeps only the real match.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from typing import Final, Protocol

from connectors.base import ChangeBatch, Cursor
from sync.model import EntityKind, Record
from sync.normalize import compact_tax_id, natural_key

__all__ = ["SEARCH_LIMIT", "ClientFinder", "find_clients", "search_terms"]

SEARCH_LIMIT: Final = 10
"""Companies up to which searching beats one complete listing of the clients."""

_MIN_TERM: Final = 3


class ClientFinder(Protocol):
    """What a look-up needs of the Flowtly side (`sync.flowtly.side.FlowtlySide`)."""

    async def search_clients(self, term: str) -> list[Record]: ...

    def read(
        self, entity: EntityKind, since: Cursor | None = None
    ) -> AsyncIterator[ChangeBatch]: ...


def search_terms(record: Record) -> list[str]:
    """What to search for to find ``record``: its tax ids (with and without the country
    prefix, as Flowtly may store either), else its name. Terms under 3 characters are
    dropped, since Flowtly refuses them."""
    terms: list[str] = []
    country = record.get("country")
    for name in ("vat_number", "tin"):
        value = record.get(name)
        if value is None:
            continue
        compact = compact_tax_id(str(value))
        terms.append(compact)
        if isinstance(country, str) and compact.startswith(country.upper()):
            terms.append(compact[len(country) :])
    if not terms and record.get("name") is not None:
        terms.append(str(record.get("name")).strip())
    return [t for t in dict.fromkeys(terms) if len(t) >= _MIN_TERM]


async def _by_search(finder: ClientFinder, record: Record, key: str) -> list[Record]:
    found: dict[str, Record] = {}
    for term in search_terms(record):
        for candidate in await finder.search_clients(term):
            if natural_key(candidate) == key:
                found.setdefault(candidate.id, candidate)
    return sorted(found.values(), key=lambda r: _order(r.id))


async def _by_listing(finder: ClientFinder, keys: set[str]) -> dict[str, list[Record]]:
    found: dict[str, list[Record]] = defaultdict(list)
    async for batch in finder.read(EntityKind.CLIENT):
        for candidate in batch.records:
            key = natural_key(candidate)
            if key is not None and key in keys:
                found[key].append(candidate)
    return {key: sorted(records, key=lambda r: _order(r.id)) for key, records in found.items()}


def _order(record_id: str) -> tuple[int, str]:
    return (int(record_id), "") if record_id.isdigit() else (1 << 62, record_id)


async def find_clients(
    finder: ClientFinder, records: Sequence[Record], *, search_limit: int = SEARCH_LIMIT
) -> dict[str, list[Record]]:
    """For each CRM company in ``records`` (by id), the Flowtly clients with its key.

    Companies without a natural key find nothing. Up to ``search_limit`` companies are
    looked up with ``/clients/search``; more with one complete listing.
    """
    keyed = {record.id: (record, natural_key(record)) for record in records}
    result: dict[str, list[Record]] = {record.id: [] for record in records}
    if len(records) <= search_limit:
        for crm_id, (record, key) in keyed.items():
            if key is not None:
                result[crm_id] = await _by_search(finder, record, key)
        return result
    listed = await _by_listing(finder, {k for _, k in keyed.values() if k is not None})
    for crm_id, (_, key) in keyed.items():
        if key is not None:
            result[crm_id] = list(listed.get(key, []))
    return result
