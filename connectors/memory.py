"""An in-memory side, for tests: either the CRM or a stand-in for Flowtly.

Records live in dicts, ids are deterministic (``m1``, ``m2``, ...), values are normalized
like a real side would, and tests can mutate the side directly (`MemoryConnector.put`,
`MemoryConnector.remove`) or make chosen operations fail (`MemoryConnector.fail_next`,
`MemoryConnector.fail_when`), optionally after the operation took effect (a lost reply),
or make complete listings arrive broken (`MemoryConnector.garble_listing`); listings are
checked like any connector's (`connectors.listing`), against the number of records held.

With ``buffered=True`` writes only become durable on `MemoryConnector.commit`;
`MemoryConnector.crash` drops everything written since, as a killed process would.
`IncrementalMemoryConnector` adds cursor reads and a deletes feed on a logical clock;
`MemoryConnector.move` changes a record's kind (reported in ``left_ids``), and
`MemoryConnector.forget_history` makes older cursors expire.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from connectors._memory import (
    FaultPlan,
    ListingFault,
    MemoryCall,
    MemoryState,
    Op,
    Predicate,
    garble,
)
from connectors.base import Capability, ChangeBatch, Connector, ConnectorSettings, Cursor
from connectors.listing import ListingAudit
from sync.errors import ConnectorError, CursorExpired, NotFound, ValidationFailed, Violation
from sync.model import SCHEMAS, EntityKind, Record, Scalar
from sync.normalize import NormalizationError, normalize_value

__all__ = [
    "IncrementalMemoryConnector",
    "ListingFault",
    "MemoryCall",
    "MemoryConnector",
    "MemorySettings",
    "Op",
    "Predicate",
]

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_ALL = frozenset(EntityKind)


class MemorySettings(ConnectorSettings):
    """Settings of the in-memory side (only a label: nothing is persisted)."""

    name: str = "memory"


class MemoryConnector(Connector):
    """A side held in memory; usable as the CRM or as a fake Flowtly.

    ``deletable`` lists the entities that can be deleted; the others are archived by
    setting ``status`` to ``archive_status``. ``fields`` restricts the fields carried per
    entity (all canonical fields by default). ``clock`` stamps modifications (a logical
    clock, one second per write, by default).
    """

    name = "memory"
    capabilities = frozenset({Capability.READ, Capability.WRITE, Capability.DELETE})
    settings_model = MemorySettings

    def __init__(
        self,
        settings: MemorySettings | None = None,
        *,
        entities: Iterable[EntityKind] = _ALL,
        fields: Mapping[EntityKind, Iterable[str]] | None = None,
        deletable: frozenset[EntityKind] = _ALL,
        archive_status: str | None = "archived",
        id_prefix: str = "m",
        buffered: bool = False,
        batch_size: int = 5000,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings or MemorySettings()
        self._entities = frozenset(entities)
        self._fields: dict[EntityKind, frozenset[str]] = {}
        for entity in self._entities:
            carried = (
                frozenset(SCHEMAS[entity])
                if fields is None
                else frozenset(fields.get(entity, SCHEMAS[entity]))
            )
            unknown = carried - SCHEMAS[entity].keys()
            if unknown:
                raise ValueError(f"{entity} has no field(s) {', '.join(sorted(unknown))}")
            self._fields[entity] = carried
        self._deletable = deletable
        self._archive_status = archive_status
        self._prefix = id_prefix
        self._buffered = buffered
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._batch_size = batch_size
        self._clock = clock
        empty: dict[EntityKind, dict[str, Record]] = {entity: {} for entity in self._entities}
        self._state = MemoryState(
            empty,
            {e: {} for e in self._entities},
            {e: {} for e in self._entities},
            1,
            0,
            {e: {} for e in self._entities},
        )
        self._history_from: tuple[datetime, str] | None = None
        self._committed = self._state.copy()
        self._faults = FaultPlan()
        self.calls: list[MemoryCall] = []
        """Every accepted write, in order (cleared by `reset_calls`)."""
        self.commits = 0
        """How many times `commit` succeeded."""

    # -- protocol ---------------------------------------------------------------------

    def entities(self) -> frozenset[EntityKind]:
        """The entity kinds given to the constructor (all by default)."""
        return self._entities

    def fields(self, entity: EntityKind) -> frozenset[str]:
        """The carried fields of ``entity``."""
        return self._fields[self._check(entity)]

    def can_delete(self, entity: EntityKind) -> bool:
        """Whether ``entity`` is in ``deletable`` (and its capabilities offer deletes)."""
        return entity in self._deletable and Capability.DELETE in self.capabilities_for(entity)

    def archive_status(self, entity: EntityKind) -> str | None:
        """The archive status for entities that cannot be deleted."""
        return None if self.can_delete(entity) else self._archive_status

    def describe(self) -> str:
        """``memory:<settings name>``."""
        return f"memory:{self.settings.name}"

    async def read(
        self, entity: EntityKind, since: Cursor | None = None
    ) -> AsyncIterator[ChangeBatch]:
        """A complete listing in batches; with ``since``, records and deletes from it on."""
        self._check(entity)
        self._inject(Op.READ, entity, None, {})
        left = self._state.left[entity]
        if since is None:
            async for batch in self._listing(entity, left):
                yield batch
            return
        start_key = (since.timestamp or _EPOCH - timedelta(days=1), since.id or "")
        if self._history_from is not None and start_key < self._history_from:
            raise CursorExpired(f"{self.describe()}: no {entity} changes kept from {since}")
        changed = _since(self._state.stamps[entity], start_key)
        gone = _since(self._state.tombstones[entity], start_key)
        moved = _since(left, start_key)
        last = max([*changed[-1:], *gone[-1:], *moved[-1:]], default=None)
        feed = Capability.DELETES_FEED in self.capabilities_for(entity)
        yield ChangeBatch(
            entity,
            records=[self._state.records[entity][rid] for _, rid in changed],
            deleted_ids=[rid for _, rid in gone] if feed else (),
            present_ids=[rid for _, rid in changed],
            cursor=Cursor(last[0], last[1]) if last else since,
            left_ids=[rid for _, rid in moved],
        )

    async def _listing(self, entity: EntityKind, left: Iterable[str]) -> AsyncIterator[ChangeBatch]:
        """Every record, in pages of ``batch_size``, each stating the total held."""
        rows = list(self._state.records[entity].values())
        cursor = self._high_water(entity)
        pages = [
            rows[start : start + self._batch_size]
            for start in range(0, max(len(rows), 1), self._batch_size)
        ]
        fault = self._faults.listings.get(entity)
        if fault is not None:
            pages = garble(pages, fault)
            self._faults.garbled += 1
        audit = ListingAudit(f"{self.describe()} {entity}", noun="record")
        kept: list[list[Record]] = []
        for page in pages:
            audit.page(len(page), total=len(rows))
            kept.append([record for record in page if audit.member(record.id)])
        incomplete = audit.verdict()
        for number, page in enumerate(kept, 1):
            yield ChangeBatch(
                entity,
                records=page,
                present_ids=[r.id for r in page],
                cursor=cursor,
                left_ids=list(left) if number == 1 else (),
                incomplete=incomplete if number == len(kept) else None,
            )

    async def create(self, entity: EntityKind, values: Mapping[str, Scalar]) -> Record:
        """Store a new record under the next id; fields not carried are dropped."""
        self._check(entity)
        fault = self._faults.take(Op.CREATE, entity, None, values)
        if fault and not fault[1]:
            raise fault[0]
        record_id = f"{self._prefix}{self._state.next_id}"
        carried = self._normalize(entity, values)
        record = Record(
            entity, record_id, {name: carried.get(name) for name in sorted(self._fields[entity])}
        )
        self._state.next_id += 1
        self._store(self._state, record)
        self.calls.append(MemoryCall(Op.CREATE, entity, record_id, MappingProxyType(carried)))
        if fault:
            raise fault[0]
        return record

    async def update(
        self, entity: EntityKind, record_id: str, changes: Mapping[str, Scalar]
    ) -> Record:
        """Change the given fields of a record; other fields are kept."""
        current = self._existing(entity, record_id)
        fault = self._faults.take(Op.UPDATE, entity, record_id, changes)
        if fault and not fault[1]:
            raise fault[0]
        carried = self._normalize(entity, changes)
        record = Record(entity, record_id, {**current.fields, **carried})
        self._store(self._state, record)
        self.calls.append(MemoryCall(Op.UPDATE, entity, record_id, MappingProxyType(carried)))
        if fault:
            raise fault[0]
        return record

    async def delete(self, entity: EntityKind, record_id: str) -> None:
        """Remove a record of a deletable entity."""
        self._existing(entity, record_id)
        if entity not in self._deletable:
            raise ConnectorError(f"{entity} records cannot be deleted on {self.describe()}")
        fault = self._faults.take(Op.DELETE, entity, record_id, {})
        if fault and not fault[1]:
            raise fault[0]
        self._drop(self._state, entity, record_id)
        self.calls.append(MemoryCall(Op.DELETE, entity, record_id, MappingProxyType({})))
        if fault:
            raise fault[0]

    async def commit(self) -> None:
        """Make the writes so far durable (they survive `crash`)."""
        fault = self._faults.take(Op.COMMIT, None, None, {})
        if fault and not fault[1]:
            raise fault[0]
        if self._buffered:
            self._committed = self._state.copy()
        self.commits += 1
        if fault:
            raise fault[0]

    # -- test helpers -----------------------------------------------------------------

    def put(self, record: Record) -> Record:
        """Insert or replace a record directly, as a user of this side would; returns it
        with every carried field present (``None`` when not given) and others dropped."""
        self._check(record.entity)
        carried = self._normalize(record.entity, record.fields)
        full = Record(
            record.entity,
            record.id,
            {name: carried.get(name) for name in sorted(self._fields[record.entity])},
        )
        for state in self._states():
            self._bump_ids(state, record.id)
            self._store(state, full)
        return full

    def remove(self, entity: EntityKind, record_id: str) -> None:
        """Delete a record directly, as a user of this side would."""
        self._existing(entity, record_id)
        for state in self._states():
            if record_id in state.records[entity]:
                self._drop(state, entity, record_id)

    def move(self, record_id: str, source: EntityKind, target: EntityKind) -> Record:
        """Change a record's kind as a user would (a client becomes a supplier): it leaves
        ``source`` (reported in ``left_ids``) and is put into ``target`` under its id."""
        record = self._existing(source, record_id)
        for state in self._states():
            if record_id in state.records[source]:
                del state.records[source][record_id]
                del state.stamps[source][record_id]
                state.left[source][record_id] = self._now(state)
        return self.put(Record(target, record_id, dict(record.fields)))

    def forget_history(self) -> None:
        """Keep no changes from before now: reads from an older cursor raise
        `CursorExpired`, as a change feed that keeps only some days does."""
        keys = [
            (stamp, rid)
            for kept in (self._state.stamps, self._state.tombstones, self._state.left)
            for rows in kept.values()
            for rid, stamp in rows.items()
        ]
        self._history_from = max(keys, default=None)

    def get(self, entity: EntityKind, record_id: str) -> Record | None:
        """The record with ``record_id``, if any."""
        return self._state.records[self._check(entity)].get(record_id)

    def records(self, entity: EntityKind) -> list[Record]:
        """Every record of ``entity``, in creation order."""
        return list(self._state.records[self._check(entity)].values())

    def fail_next(
        self,
        op: Op,
        entity: EntityKind | None = None,
        exc: BaseException | None = None,
        *,
        times: int = 1,
        after: bool = False,
    ) -> None:
        """Make the next ``times`` ``op`` calls (on ``entity``, or any) raise ``exc``
        (a `TransientError` by default); with ``after``, the write happens first."""
        self._faults.add(op, entity, exc, times, after)

    def fail_when(self, predicate: Predicate, *, after: bool = False) -> None:
        """Raise whatever ``predicate(op, entity, record_id, values)`` returns, if not None."""
        self._faults.add_predicate(predicate, after)

    def garble_listing(self, entity: EntityKind, fault: ListingFault) -> None:
        """Make every complete listing of ``entity`` arrive broken by ``fault`` (until
        `clear_faults`), as a paged API can deliver it."""
        self._faults.listings[self._check(entity)] = fault

    @property
    def garbled_listings(self) -> int:
        """How many broken complete listings `garble_listing` made this side serve."""
        return self._faults.garbled

    def clear_faults(self) -> None:
        """Forget every injected failure."""
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """How many one-shot failures have not fired yet."""
        return self._faults.pending()

    def crash(self) -> None:
        """Lose every connector write since the last `commit`, as a killed process would
        (unbuffered writes are durable at once, so then nothing is lost)."""
        if self._buffered:
            self._state = self._committed.copy()

    def reset_calls(self) -> None:
        """Forget the recorded writes."""
        self.calls.clear()

    # -- internals --------------------------------------------------------------------

    def _check(self, entity: EntityKind) -> EntityKind:
        if entity not in self._entities:
            raise ConnectorError(f"{self.describe()} holds no {entity} records")
        return entity

    def _inject(
        self, op: Op, entity: EntityKind, record_id: str | None, values: Mapping[str, Scalar]
    ) -> None:
        fault = self._faults.take(op, entity, record_id, values)
        if fault:
            raise fault[0]

    def _existing(self, entity: EntityKind, record_id: str) -> Record:
        record = self._state.records[self._check(entity)].get(record_id)
        if record is None:
            raise NotFound(f"{entity} {record_id} not found on {self.describe()}", status=404)
        return record

    def _normalize(self, entity: EntityKind, values: Mapping[str, Scalar]) -> dict[str, Scalar]:
        schema = SCHEMAS[entity]
        carried = self._fields[entity]
        out: dict[str, Scalar] = {}
        violations: list[Violation] = []
        for name, value in values.items():
            spec = schema.get(name)
            if spec is None:
                violations.append(Violation(name, f"not a field of {entity}"))
            elif name in carried:
                try:
                    out[name] = normalize_value(spec, value)
                except NormalizationError as error:
                    violations.append(Violation(name, error.reason))
        if violations:
            raise ValidationFailed(
                f"{entity} refused by {self.describe()}: " + "; ".join(str(v) for v in violations),
                violations=tuple(violations),
                status=422,
            )
        return out

    def _now(self, state: MemoryState) -> datetime:
        state.tick += 1
        if self._clock is not None:
            return self._clock()
        return _EPOCH + timedelta(seconds=state.tick)

    def _states(self) -> tuple[MemoryState, ...]:
        # A direct mutation stands for a user's edit: durable at once, even while
        # buffered connector writes wait for `commit`.
        return (self._state, self._committed) if self._buffered else (self._state,)

    def _store(self, state: MemoryState, record: Record) -> None:
        state.records[record.entity][record.id] = record
        state.stamps[record.entity][record.id] = self._now(state)
        state.tombstones[record.entity].pop(record.id, None)
        state.left[record.entity].pop(record.id, None)

    def _drop(self, state: MemoryState, entity: EntityKind, record_id: str) -> None:
        del state.records[entity][record_id]
        del state.stamps[entity][record_id]
        state.tombstones[entity][record_id] = self._now(state)

    def _bump_ids(self, state: MemoryState, record_id: str) -> None:
        # Keep generated ids clear of ids put directly with the same prefix.
        suffix = record_id[len(self._prefix) :]
        if record_id.startswith(self._prefix) and suffix.isdigit():
            state.next_id = max(state.next_id, int(suffix) + 1)

    def _high_water(self, entity: EntityKind) -> Cursor | None:
        keys = [(stamp, rid) for rid, stamp in self._state.stamps[entity].items()]
        keys += [(stamp, rid) for rid, stamp in self._state.tombstones[entity].items()]
        keys += [(stamp, rid) for rid, stamp in self._state.left[entity].items()]
        if not keys:
            return None
        stamp, rid = max(keys)
        return Cursor(stamp, rid)


class IncrementalMemoryConnector(MemoryConnector):
    """A `MemoryConnector` that also offers incremental reads and a deletes feed.

    ``deletes_feed`` lists the entities whose incremental reads report deletes (all by
    default); the others declare no `Capability.DELETES_FEED`, like a CRM whose API
    lists changed records but never deleted ones.
    """

    capabilities = frozenset(
        {
            Capability.READ,
            Capability.WRITE,
            Capability.DELETE,
            Capability.INCREMENTAL,
            Capability.DELETES_FEED,
        }
    )

    def __init__(
        self,
        settings: MemorySettings | None = None,
        *,
        deletes_feed: Iterable[EntityKind] = _ALL,
        **options: Any,
    ) -> None:
        super().__init__(settings, **options)
        self._deletes_feed = frozenset(deletes_feed)

    def capabilities_for(self, entity: EntityKind) -> frozenset[Capability]:
        """All capabilities, without a deletes feed for entities not in ``deletes_feed``."""
        if entity in self._deletes_feed:
            return self.capabilities
        return self.capabilities - {Capability.DELETES_FEED}


def _since(
    stamps: Mapping[str, datetime], start: tuple[datetime, str]
) -> list[tuple[datetime, str]]:
    """(stamp, id) of every entry at or after ``start``, oldest first (inclusive)."""
    return sorted(key for key in ((stamp, rid) for rid, stamp in stamps.items()) if key >= start)
