"""What the engine needs of the state store: a small protocol of its own.

The engine remembers, between runs, which records are linked, the last agreed values of
each link (the base of a three-way merge) and what updates sent since it was stored,
cursors, creates in flight (intents), conflicts, rejections, the runs and their audit
trail. It reaches all of that through `Status` and the transactions it opens
(`StatusTx`), as vdirsyncer's algorithm reaches its status: `sync.store.Store` is the
implementation, and a test may pass any other.
The values crossing it are the store's row types (`sync.store.rows`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from sync.model import EntityKind, Scalar, Side
from sync.store.rows import (
    BindingRow,
    EventValues,
    IntentRow,
    IntentValues,
    JSONInput,
    JSONValue,
    LinkColumn,
    LinkRow,
    LinkValues,
    RejectionRow,
    RunOutcome,
    SentValues,
)

__all__ = ["Status", "StatusTx"]


class StatusTx(Protocol):
    """One transaction of the status: everything in it commits together, or nothing."""

    def save_links(self, sync: str, entity: EntityKind, links: Iterable[LinkValues]) -> None:
        """Insert or update many links in one statement (the fast path of a run's chunk)."""
        ...

    def clear_intents(self, intent_ids: Iterable[int]) -> None:
        """Drop several intents at once."""
        ...

    def note_sent(
        self, sync: str, entity: EntityKind, sent: Iterable[tuple[str, SentValues]]
    ) -> None:
        """Record, per linked CRM id, what its updates are about to send (with what earlier
        runs sent and never stored), before they go out; `save_links` clears it."""
        ...

    def add_events(self, run_id: int, entity: EntityKind, events: Iterable[EventValues]) -> None:
        """Append many operations to the run's audit trail in one statement; values of sensitive
        fields are kept masked, messages scrubbed of secrets."""
        ...

    def delete_link(self, sync: str, entity: EntityKind, crm_id: str) -> None:
        """Drop the link of ``crm_id`` (no error when there is none)."""
        ...

    def add_intents(
        self, sync: str, entity: EntityKind, run_id: int, intents: Sequence[IntentValues]
    ) -> list[int]:
        """Record many creates about to be sent, in one statement; their ids, in order."""
        ...

    def clear_intent(self, intent_id: int) -> None:
        """Drop one intent (its create is linked, or known not to have happened)."""
        ...

    def clear_intents_for(
        self, sync: str, entity: EntityKind, target: Side, source_id: str
    ) -> None:
        """Drop every intent to create ``source_id`` on ``target``."""
        ...

    def set_cursor(
        self, sync: str, side: Side, entity: EntityKind, cursor_json: Mapping[str, JSONInput]
    ) -> None:
        """Advance a side's cursor, in the transaction that commits the batch it covers."""
        ...

    def clear_cursor(self, sync: str, side: Side, entity: EntityKind) -> None:
        """Forget a side's cursor (it expired): the next read of it is complete."""
        ...

    def record_conflict(
        self,
        sync: str,
        entity: EntityKind,
        crm_id: str,
        flowtly_id: str,
        field: str,
        base_value: Scalar,
        crm_value: Scalar,
        flowtly_value: Scalar,
    ) -> int:
        """Park a field conflict; a re-detected open conflict is updated, not duplicated."""
        ...

    def record_rejection(
        self,
        sync: str,
        entity: EntityKind,
        side: Side,
        record_id: str,
        field: str | None,
        value: str | None,
        reason: str,
        source_fp: str,
    ) -> None:
        """Record (or refresh) that ``side`` refused ``record_id``, at source ``source_fp``."""
        ...

    def clear_rejection(self, sync: str, entity: EntityKind, side: Side, record_id: str) -> None:
        """Forget a rejection (the record went through, or is gone)."""
        ...


class Status(Protocol):
    """The engine's view of the state store."""

    def transaction(self) -> AbstractContextManager[StatusTx]:
        """One operation's writes: committed when the block ends, rolled back on exception."""
        ...

    def lock(self, sync: str) -> AbstractContextManager[None]:
        """Hold ``sync``'s run lock for a ``with`` block."""
        ...

    def binding(self, sync: str) -> dict[Side, BindingRow]:
        """The sides ``sync``'s links belong to, as recorded; empty before the first run."""
        ...

    def bind(self, sync: str, identities: Mapping[Side, str]) -> None:
        """Bind ``sync`` to ``identities`` (side -> identity text without secrets), replacing the
        recorded identity of each side given."""
        ...

    def link_index(
        self, sync: str, entity: EntityKind, crm_ids: Iterable[str] | None = None
    ) -> dict[str, LinkRow]:
        """The links of ``sync`` and ``entity`` keyed by CRM id, without the bases: every one, or
        only those of ``crm_ids``."""
        ...

    def link_map(
        self,
        sync: str,
        entity: EntityKind,
        key: LinkColumn,
        value: LinkColumn,
        keys: Iterable[str] | None = None,
    ) -> dict[str, str]:
        """One column of the links of ``sync`` and ``entity`` by another: every link, or those whose
        ``key`` is in ``keys``."""
        ...

    def link_count(self, sync: str, entity: EntityKind) -> int:
        """How many records of ``entity`` are linked."""
        ...

    def load_bases(
        self, sync: str, entity: EntityKind, crm_ids: Iterable[str]
    ) -> dict[str, dict[str, Scalar]]:
        """The agreed base record of each linked ``crm_id`` (ids without a link are absent)."""
        ...

    def load_sent(
        self, sync: str, entity: EntityKind, crm_ids: Iterable[str]
    ) -> dict[str, SentValues]:
        """What updates sent to the links of ``crm_ids`` since their base was stored (by a run
        that stopped before storing them); links with nothing sent are absent."""
        ...

    def pending_intents(self, sync: str) -> list[IntentRow]:
        """Creates that were started but never linked, oldest first."""
        ...

    def get_cursor(self, sync: str, side: Side, entity: EntityKind) -> dict[str, JSONValue] | None:
        """The stored cursor of a side and entity, None before the first complete read."""
        ...

    def rejections(self, sync: str, entity: EntityKind | None = None) -> list[RejectionRow]:
        """Records a target refused, by entity and record id."""
        ...

    def start_run(self, sync: str, dry_run: bool) -> int:
        """Record a run as started (outcome ``running``); returns its id."""
        ...

    def finish_run(
        self,
        run_id: int,
        outcome: RunOutcome,
        summary: Mapping[str, JSONInput],
        error: str | None,
    ) -> None:
        """Record how a run ended."""
        ...
