"""Incremental Flowtly reads: which entities can be read by modification time, and the
cursor such a read ends on.

Contacts and notes carry ``updatedAt`` and accept API Platform's DateFilter
(``updatedAt[after]=``, an assumption `check` probes); clients and counterparties carry
no modification time, so they are always listed whole (concurrently, by page number).
Deletes never show in an increment: the engine's periodic complete listing (``[sync]
full_scan``) finds them.

The cursor is the latest ``(updatedAt, id)`` a read saw, and an increment lists what
changed at or after it (inclusive: the records stamped in that second come again). A
record edited while the read was under way, on a page already read, carries a stamp no
earlier than the read's start but perhaps earlier than one read later; so the cursor is
never later than the read's start less `OVERLAP` (which also covers a Flowtly clock
behind ours). Reading a record twice costs one member of a page; missing one would lose
an edit. An account that is quiet re-reads only the records of its latest second.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from connectors.base import Cursor
from sync.flowtly.assumptions import UPDATED_AFTER_PARAM, UPDATED_FIELD
from sync.model import EntityKind

__all__ = ["INCREMENTAL_ENTITIES", "OVERLAP", "CursorTracker", "changed_since"]

INCREMENTAL_ENTITIES: Final = frozenset({EntityKind.CONTACT, EntityKind.NOTE})
"""The entities whose Flowtly resources carry ``updatedAt`` and filter by it."""

OVERLAP: Final = timedelta(minutes=5)
"""How far before a read's start its cursor is at the latest (see the module docstring)."""


def changed_since(since: Cursor) -> dict[str, str]:
    """The query that lists what changed at or after ``since``."""
    if since.timestamp is None:
        return {}
    moment = _aware(since.timestamp).astimezone(UTC).replace(microsecond=0)
    return {UPDATED_AFTER_PARAM: moment.isoformat()}


def _stamp(item: Mapping[str, Any]) -> datetime | None:
    raw = item.get(UPDATED_FIELD)
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class CursorTracker:
    """The latest ``(updatedAt, id)`` of a read, and whether the read may move the cursor.

    A member without a readable ``updatedAt`` or one that did not map (a rejected record)
    holds the cursor back: an increment from past it would never bring that record again.
    """

    def __init__(self, since: Cursor | None, started: datetime) -> None:
        self._bound = _aware(started) - OVERLAP
        self._latest: tuple[datetime, str] | None = None
        if since is not None and since.timestamp is not None:
            self._latest = (_aware(since.timestamp), since.id or "")
        self._held = False

    def saw(self, item: Mapping[str, Any], record_id: str | None) -> None:
        """One member read."""
        stamp = _stamp(item)
        if stamp is None or record_id is None:
            self._held = True
            return
        if self._latest is None or (stamp, record_id) > self._latest:
            self._latest = (stamp, record_id)

    def hold(self) -> None:
        """Keep the cursor where it was (a member was rejected)."""
        self._held = True

    def cursor(self) -> Cursor | None:
        """Where the next increment starts; None when this read may not move it."""
        if self._held:
            return None
        if self._latest is None or self._latest[0] > self._bound:
            return Cursor(self._bound, None)
        return Cursor(self._latest[0], self._latest[1] or None)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
