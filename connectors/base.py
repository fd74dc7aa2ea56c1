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
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict

from sync.errors import RecordError
from sync.model import EntityKind, Record, Scalar

__all__ = [
    "Capability",
    "ChangeBatch",
    "Connector",
    "ConnectorSettings",
    "Cursor",
]


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
    incomplete: str | None = None


class ConnectorSettings(BaseModel):
    """Base of connector settings models; unknown keys are configuration errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Connector(abc.ABC):
    """One side of a sync. Subclasses declare ``name``, ``capabilities``, ``settings_model``."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]
    settings_model: ClassVar[type[ConnectorSettings]]

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

    def can_delete(self, entity: EntityKind) -> bool:
        """Whether ``entity`` records can be deleted here (else they are archived)."""
        return Capability.DELETE in self.capabilities

    def archive_status(self, entity: EntityKind) -> str | None:
        """The ``status`` value that archives a record that cannot be deleted, if any."""
        return None

    def describe(self) -> str:
        """Where this side points, for messages (never containing secrets)."""
        return self.name
