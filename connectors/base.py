"""The protocol every side of a sync implements: CRM connectors and the Flowtly side alike.

A connector is a declarative class: a ``name``, the ``capabilities`` it offers, and a
pydantic ``settings_model`` for its configuration table. The engine speaks only this
protocol, in canonical records (`sync.model.Record`); vendor payloads never cross it.

Reading yields `ChangeBatch` values. Called without a cursor, a connector lists every
record of the entity (a *complete* listing, from which deletes may be inferred); with a
cursor, only records changed since it (inclusive, de-duplicated by id).

Writes may be buffered: the engine calls `Connector.commit` after a group of writes and
only then records their effects in the store, so a crash before `commit` leaves neither
the write nor its link behind.

A connector for an API CRM may override the batch methods (`Connector.get_many`,
`Connector.create_many`, `Connector.update_many`, `Connector.delete_many`): the engine
sends each chunk of writes through them, so a CRM with a batch endpoint gets one call per
chunk. Their defaults make single calls, concurrently within a bound, so a small
connector implements only the single-record methods.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol, Self, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict

from sync.errors import (
    AuthenticationError,
    BudgetExhausted,
    ConnectorError,
    RecordError,
    TransportSecurityError,
)
from sync.model import EntityKind, Record, Scalar
from sync.settings_base import DEFAULT_CONCURRENCY

if TYPE_CHECKING:
    import httpx

    from connectors.http import RequestStats

__all__ = [
    "DEFAULT_BATCH_CONCURRENCY",
    "RUN_STOPPING_ERRORS",
    "BatchConnector",
    "Capability",
    "ChangeBatch",
    "Connector",
    "ConnectorSettings",
    "Cursor",
    "ItemResult",
    "SupportsFetch",
]

_T = TypeVar("_T")

DEFAULT_BATCH_CONCURRENCY: Final = DEFAULT_CONCURRENCY
"""How many single calls the default batch methods have in flight without a ``limit``."""

RUN_STOPPING_ERRORS: Final = (AuthenticationError, BudgetExhausted, TransportSecurityError)
"""Failures that are no record's fault and would fail every other write alike: they stop
the run instead of being recorded per record (and stop a default batch at once)."""


class Capability(StrEnum):
    """What a connector can do."""

    READ = "read"
    """Lists records (always offered)."""
    WRITE = "write"
    """Creates and updates records."""
    DELETE = "delete"
    """Deletes records. Without it, a delete becomes an archive (see `Connector.archive_status`)."""
    INCREMENTAL = "incremental"
    """Reads only what changed since a cursor."""
    DELETES_FEED = "deletes_feed"
    """Reports deleted ids in incremental reads (tombstones)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in a side's change feed: (modification time, id), inclusive."""

    timestamp: datetime | None = None
    id: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "id": self.id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Cursor:
        raw = data.get("timestamp")
        return cls(datetime.fromisoformat(raw) if raw else None, data.get("id"))


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """Part of a read: records seen, ids deleted, records that could not be read.

    ``rejected`` holds rows that failed to parse (their ids still count as *present* for
    delete inference, so a bad row never looks like a deleted record: see ``present_ids``).
    ``cursor`` is where the next incremental read would start after this batch.
    ``incomplete`` says why the listing cannot be trusted to be whole (`connectors.listing`);
    one batch carrying it makes the whole read incomplete: no deletes are inferred from it.
    """

    entity: EntityKind
    records: Sequence[Record] = ()
    deleted_ids: Sequence[str] = ()
    rejected: Sequence[RecordError] = ()
    present_ids: Sequence[str] = ()
    cursor: Cursor | None = None
    left_ids: Sequence[str] = ()
    """Ids that are no longer records of ``entity`` though they still exist (a company
    whose kind changed from client to supplier): not deleted, so never taken for a
    delete. The engine detaches their links; the new entity's listing brings them in."""
    incomplete: str | None = None
    """Why this listing is not complete (a page that did not parse, members without
    an id, ids repeated, a count short of the stated total): set on any batch of a read,
    it keeps the engine from inferring deletes from it."""


@dataclass(frozen=True, slots=True)
class ItemResult:
    """How one item of a batch write turned out: the record as the side now holds it
    (None for a delete), or the error that refused or failed that item alone."""

    record: Record | None = None
    error: ConnectorError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class SupportsFetch(Protocol):
    """A side that reads one record by id (the default `Connector.get_many` uses it)."""

    async def fetch(self, entity: EntityKind, record_id: str) -> Record | None: ...


class ConnectorSettings(BaseModel):
    """Base of connector settings models; unknown keys are configuration errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Connector(abc.ABC):
    """One side of a sync. Subclasses declare ``name``, ``capabilities``, ``settings_model``."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]
    settings_model: ClassVar[type[ConnectorSettings]]
    uses_transport: ClassVar[bool] = False
    """True for connectors over an HTTP API: `from_settings` hands them its ``transport``."""
    write_batch: ClassVar[int] = 1
    """How many records the batch methods send in one call (HubSpot's batch 100,
    Salesforce's collections 200): the engine hands them chunks of at least this many."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Acquire resources (connections, files). Raise `ConnectorError` if unreachable."""

    async def close(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Release resources."""

    @classmethod
    def from_settings(
        cls, settings: ConnectorSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> Self:
        """Build the connector from its validated ``settings_model`` instance.

        API connectors (`uses_transport`) send every request through ``transport`` when
        one is given (an in-process server: the Flowtly sandbox, a vendor fake in tests)
        and are called with it; the others have no use for it and get the settings alone.
        """
        if not isinstance(settings, cls.settings_model):
            raise TypeError(
                f"{cls.__name__} takes {cls.settings_model.__name__}, got {type(settings).__name__}"
            )
        # The subclass's own __init__ takes its settings model (and the transport): the
        # base cannot spell that signature.
        if cls.uses_transport:
            return cls(settings, transport=transport)  # type: ignore[call-arg]
        return cls(settings)  # type: ignore[call-arg]

    def request_stats(self) -> RequestStats | None:
        """The counters of this side's HTTP client (for ``/metrics``); None without one."""
        return None

    @abc.abstractmethod
    def entities(self) -> frozenset[EntityKind]:
        """The entity kinds this side holds."""

    @abc.abstractmethod
    def fields(self, entity: EntityKind) -> frozenset[str]:
        """The canonical fields this side carries for ``entity``; only these are compared."""

    @abc.abstractmethod
    def read(self, entity: EntityKind, since: Cursor | None = None) -> AsyncIterator[ChangeBatch]:
        """Yield batches of records; a complete listing when ``since`` is None."""

    @abc.abstractmethod
    async def create(self, entity: EntityKind, values: Mapping[str, Scalar]) -> Record:
        """Create a record; return it as the side now holds it (with its new id)."""

    @abc.abstractmethod
    async def update(
        self, entity: EntityKind, record_id: str, changes: Mapping[str, Scalar]
    ) -> Record:
        """Change some fields of a record; return the record as the side now holds it."""

    @abc.abstractmethod
    async def delete(self, entity: EntityKind, record_id: str) -> None:
        """Delete a record (only called when ``Capability.DELETE`` is offered)."""

    async def commit(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Make buffered writes durable. Called before their links are stored."""

    def capabilities_for(self, entity: EntityKind) -> frozenset[Capability]:
        """What this side can do for ``entity``: the class's ``capabilities`` unless a
        connector differs per entity (an API with a change feed for companies only)."""
        return self.capabilities

    def can_delete(self, entity: EntityKind) -> bool:
        """Whether ``entity`` records can be deleted here (else they are archived)."""
        return Capability.DELETE in self.capabilities_for(entity)

    def archive_status(self, entity: EntityKind) -> str | None:
        """The ``status`` value that archives a record that cannot be deleted, if any."""
        return None

    def describe(self) -> str:
        """Where this side points, for messages (never containing secrets)."""
        return self.name

    async def identity(self) -> str:
        """What this side is, stably and without secrets: a store's links are bound to it.

        A later run whose side answers other text refuses to start (its links would pair
        unrelated records), so name what holds the records: a resolved folder, a database
        URL without password, a portal or instance id. By default what `describe` names.
        """
        return self.describe()

    # -- batches: defaults over the single-record methods ------------------------------

    async def get_many(
        self, entity: EntityKind, ids: Sequence[str], *, limit: asyncio.Semaphore | None = None
    ) -> list[Record]:
        """The records with these ids, in the order asked, ids not found left out.

        By default one `SupportsFetch.fetch` per id when the connector has it (within
        ``limit``), else a complete listing filtered to ``ids``, stopped once all are found.
        """
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        if isinstance(self, SupportsFetch):
            fetched = await _bounded([partial(self.fetch, entity, one) for one in wanted], limit)
            return [record for record in fetched if record is not None]
        found: dict[str, Record] = {}
        missing = set(wanted)
        batches = self.read(entity)
        try:
            async for batch in batches:
                for record in batch.records:
                    if record.id in missing:
                        found[record.id] = record
                        missing.discard(record.id)
                if not missing:
                    break
        finally:
            await _close(batches)
        return [found[record_id] for record_id in wanted if record_id in found]

    async def absent(self, entity: EntityKind, ids: Sequence[str]) -> set[str] | None:
        """Which of ``ids`` this side holds no record of ``entity`` for, or None when that
        cannot be told this time.

        A connector that reads by id (`SupportsFetch`) is asked for them (`absent_by_id`);
        one whose `get_many` reads by id without `fetch` says so by overriding this with
        `absent_by_id`. Otherwise a complete listing is read, stopped once every id has
        been seen (a row that did not parse counts as held); a listing that arrives
        incomplete tells nothing, so the answer is None.
        """
        if isinstance(self, SupportsFetch):
            return await self.absent_by_id(entity, ids)
        wanted = set(ids)
        if not wanted:
            return set()
        seen: set[str] = set()
        batches = self.read(entity)
        try:
            async for batch in batches:
                if batch.incomplete is not None:
                    return None
                seen.update(record.id for record in batch.records)
                seen.update(batch.present_ids)
                seen.update(batch.left_ids)
                seen.update(error.record_id for error in batch.rejected)
                if wanted <= seen:
                    return set()
        finally:
            await _close(batches)
        return wanted - seen

    async def absent_by_id(self, entity: EntityKind, ids: Sequence[str]) -> set[str]:
        """The ids `get_many` does not return: `absent` for a connector that reads by id."""
        wanted = set(ids)
        if not wanted:
            return set()
        return wanted - {record.id for record in await self.get_many(entity, sorted(wanted))}

    async def create_many(
        self,
        entity: EntityKind,
        items: Sequence[Mapping[str, Scalar]],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        """Create several records; one result per item, in order (see `ItemResult`)."""
        return await _each([partial(self.create, entity, values) for values in items], limit)

    async def update_many(
        self,
        entity: EntityKind,
        items: Sequence[tuple[str, Mapping[str, Scalar]]],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        """Update several records, each ``(id, changes)``; one result per item, in order."""
        return await _each(
            [partial(self.update, entity, record_id, changes) for record_id, changes in items],
            limit,
        )

    async def delete_many(
        self,
        entity: EntityKind,
        ids: Sequence[str],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        """Delete several records; one result per id, in order (``record`` is None)."""
        return await _each([partial(self.delete, entity, record_id) for record_id in ids], limit)


class BatchConnector(Connector):
    """A connector whose API writes in batches (HubSpot's batch endpoints, Salesforce's
    collections): it implements the batch methods, and a single-record write is a batch
    of one, answered or refused as that item was."""

    @abc.abstractmethod
    async def create_many(
        self,
        entity: EntityKind,
        items: Sequence[Mapping[str, Scalar]],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        """Create several records in as few calls as the API allows."""

    @abc.abstractmethod
    async def update_many(
        self,
        entity: EntityKind,
        items: Sequence[tuple[str, Mapping[str, Scalar]]],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        """Update several records in as few calls as the API allows."""

    @abc.abstractmethod
    async def delete_many(
        self,
        entity: EntityKind,
        ids: Sequence[str],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        """Delete several records in as few calls as the API allows."""

    async def create(self, entity: EntityKind, values: Mapping[str, Scalar]) -> Record:
        return _only(await self.create_many(entity, [values]))

    async def update(
        self, entity: EntityKind, record_id: str, changes: Mapping[str, Scalar]
    ) -> Record:
        return _only(await self.update_many(entity, [(record_id, changes)]))

    async def delete(self, entity: EntityKind, record_id: str) -> None:
        [result] = await self.delete_many(entity, [record_id])
        if result.error is not None:
            raise result.error


def _only(results: Sequence[ItemResult]) -> Record:
    """The record of a batch of one, or its error raised."""
    [result] = results
    if result.error is not None:
        raise result.error
    assert result.record is not None, "a created or updated item carries its record"
    return result.record


async def _close(batches: AsyncIterator[ChangeBatch]) -> None:
    # Stopping early closes the listing (files, cursors) now, not at collection.
    close = getattr(batches, "aclose", None)
    if close is not None:
        await close()


async def _bounded(
    calls: Sequence[Callable[[], Awaitable[_T]]], limit: asyncio.Semaphore | None
) -> list[_T]:
    """Await every call, at most ``limit`` at a time; the first failure cancels the rest
    and is raised as itself (not wrapped in an exception group)."""
    semaphore = limit if limit is not None else asyncio.Semaphore(DEFAULT_BATCH_CONCURRENCY)

    async def one(call: Callable[[], Awaitable[_T]]) -> _T:
        async with semaphore:
            return await call()

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(call)) for call in calls]
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None
    return [task.result() for task in tasks]


async def _each(
    calls: Sequence[Callable[[], Awaitable[Record | None]]], limit: asyncio.Semaphore | None
) -> list[ItemResult]:
    """Single calls within ``limit``; each item's `ConnectorError` is its result. A
    run-stopping error (`RUN_STOPPING_ERRORS`) is raised, cancelling the rest."""

    async def item(call: Callable[[], Awaitable[Record | None]]) -> ItemResult:
        try:
            return ItemResult(record=await call())
        except RUN_STOPPING_ERRORS:
            raise
        except ConnectorError as error:
            return ItemResult(error=error)

    return await _bounded([partial(item, call) for call in calls], limit)
