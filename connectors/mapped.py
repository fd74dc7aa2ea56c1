"""Field mapping: a CRM's own field names and values <-> canonical ones, for any connector.

Configured per table (``[mapping.company]``, ``[mapping.contact]``, ``[mapping.note]``, see
`sync.mapping.config` and config.example.toml): which CRM field is which canonical field,
value maps (CRM ``Customer - Active`` -> ``active``), constants, defaults, a direction per
field, and which CRM kind values mean client or supplier.

Design: a mapping has two halves, applied where each can be.

* Names (renaming CRM fields, reading the company kind) only exist inside a connector, so
  they travel as a `sync.mapping.layout.FieldLayout` to connectors that implement
  `LayoutAware` (the files connector renames CSV columns with it). Such a connector hands
  the mapped fields over as verbatim text, so a value map can take CRM values that would
  not normalize on their own (``Ja``, ``Deutschland``).
* Values are translated by `MappingConnector`, a wrapper around *any* connector: on read
  it applies value maps (then the field type's normalization; country names in the EU
  languages are understood), defaults for empty values and constants; on write it maps
  canonical values back (the first CRM value listed for a canonical value is written),
  leaves constants out and sends only the fields the connector carries.

A future CRM connector gets value mapping for free, and names by implementing
`LayoutAware`; renaming fields of a connector that does not is a configuration error.
Constants (and defaults of fields the CRM has no field for, which act the same) flow from
the CRM to Flowtly only, so a Flowtly edit of them is reverted instead of echoing back
and forth; `MappingConnector.directions` gives them to the policy together with the
configured per-field directions. With an empty mapping `wrap_crm` returns the connector
itself: the files connector then works with canonical columns exactly as without mapping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import ClassVar

from connectors.base import (
    Capability,
    ChangeBatch,
    Connector,
    ConnectorSettings,
    Cursor,
    ItemResult,
)
from sync.errors import ConfigError, RecordError, ValidationFailed, Violation
from sync.mapping.compile import (
    CrmMapping,
    compile_mapping,
)
from sync.mapping.config import (
    MappingConfig,
)
from sync.mapping.layout import LayoutAware
from sync.model import EntityKind, Record, Scalar, Side
from sync.normalize import NormalizationError
from sync.policy import Direction

__all__ = ["MappingConnector", "wrap_crm"]


class MappingConnector(Connector):
    """Any connector, read and written through a `CrmMapping` (see the module docstring).

    Capabilities, deletes and archiving are the wrapped connector's.
    """

    name: ClassVar[str] = "mapping"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.READ})
    settings_model: ClassVar[type[ConnectorSettings]] = ConnectorSettings

    def __init__(self, inner: Connector, mapping: CrmMapping) -> None:
        self.inner = inner
        self.mapping = mapping
        # The wrapper is what the wrapped connector is: same name, same capabilities.
        self.name = inner.name  # type: ignore[misc]
        self.capabilities = inner.capabilities  # type: ignore[misc]
        self.write_batch = inner.write_batch  # type: ignore[misc]
        self._verbatim = isinstance(inner, LayoutAware)
        if isinstance(inner, LayoutAware):
            inner.use_layout(mapping.layout)
        else:
            for key in mapping.renames:
                raise ConfigError(key, f"the {inner.name} connector cannot rename fields")
            if mapping.layout.kinds:
                raise ConfigError(
                    "mapping.company.kinds", f"the {inner.name} connector has no kind field"
                )

    async def open(self) -> None:
        """Open the wrapped connector."""
        await self.inner.open()

    async def close(self) -> None:
        """Close the wrapped connector."""
        await self.inner.close()

    def describe(self) -> str:
        """The wrapped connector's description."""
        return self.inner.describe()

    async def identity(self) -> str:
        """The wrapped connector's identity: mapping changes names, not which records."""
        return await self.inner.identity()

    def entities(self) -> frozenset[EntityKind]:
        """The wrapped connector's entities."""
        return self.inner.entities()

    def fields(self, entity: EntityKind) -> frozenset[str]:
        """The wrapped connector's fields, plus those the mapping fills in."""
        mapping = self.mapping.entities[entity]
        return (
            self.inner.fields(entity) | frozenset(mapping.constants) | frozenset(mapping.defaults)
        )

    def directions(self) -> dict[str, Direction]:
        """Per-field directions the mapping implies: the configured ones, and
        ``crm_to_flowtly`` for defaults of fields the CRM does not carry (constants in
        effect). Call after `open`."""
        directions = dict(self.mapping.directions)
        for entity in self.inner.entities():
            carried = self.inner.fields(entity)
            for name in self.mapping.entities[entity].defaults:
                if name not in carried:
                    directions.setdefault(name, Direction.CRM_TO_FLOWTLY)
        return directions

    async def read(
        self, entity: EntityKind, since: Cursor | None = None
    ) -> AsyncIterator[ChangeBatch]:
        """The wrapped connector's batches, each record translated; a record with a value
        that has no canonical form is rejected (its id still counts as present)."""
        mapping = self.mapping.entities[entity]
        async for batch in self.inner.read(entity, since):
            records: list[Record] = []
            rejected = list(batch.rejected)
            present = list(batch.present_ids)
            for record in batch.records:
                try:
                    records.append(mapping.read(record))
                except NormalizationError as error:
                    rejected.append(
                        RecordError(
                            str(entity),
                            str(Side.CRM),
                            record.id,
                            f"{self.describe()}: {error.reason}",
                            error.field,
                            None if error.value is None else str(error.value),
                        )
                    )
                    if record.id not in present:
                        present.append(record.id)
            yield ChangeBatch(
                entity,
                records=records,
                deleted_ids=batch.deleted_ids,
                rejected=rejected,
                present_ids=present,
                cursor=batch.cursor,
                left_ids=batch.left_ids,
                incomplete=batch.incomplete,
            )

    def _out(self, entity: EntityKind, values: Mapping[str, Scalar]) -> dict[str, Scalar]:
        carried = self.inner.fields(entity)
        return self.mapping.entities[entity].write(values, carried, verbatim=self._verbatim)

    def _back(self, record: Record) -> Record:
        try:
            return self.mapping.entities[record.entity].read(record)
        except NormalizationError as error:
            raise ValidationFailed(
                f"{record.entity} {record.id} refused by {self.describe()}: {error.reason}",
                violations=(Violation(error.field, error.reason),),
            ) from None

    async def create(self, entity: EntityKind, values: Mapping[str, Scalar]) -> Record:
        """Create the record with the CRM's values; return it translated back."""
        return self._back(await self.inner.create(entity, self._out(entity, values)))

    async def update(
        self, entity: EntityKind, record_id: str, changes: Mapping[str, Scalar]
    ) -> Record:
        """Change the fields with the CRM's values; return the record translated back."""
        out = self._out(entity, changes)
        return self._back(await self.inner.update(entity, record_id, out))

    async def delete(self, entity: EntityKind, record_id: str) -> None:
        """Delete through the wrapped connector."""
        await self.inner.delete(entity, record_id)

    # Batches go to the wrapped connector's own, so a CRM batch API stays one call.

    async def get_many(
        self, entity: EntityKind, ids: Sequence[str], *, limit: asyncio.Semaphore | None = None
    ) -> list[Record]:
        """The wrapped connector's records, translated; one that does not translate is
        left out here (a listing reports it as rejected)."""
        found = []
        for record in await self.inner.get_many(entity, ids, limit=limit):
            with contextlib.suppress(ValidationFailed):
                found.append(self._back(record))
        return found

    async def absent(self, entity: EntityKind, ids: Sequence[str]) -> set[str] | None:
        # Ids are the wrapped connector's own; a record whose values do not translate is
        # still held there, so it is not absent.
        return await self.inner.absent(entity, ids)

    async def create_many(
        self,
        entity: EntityKind,
        items: Sequence[Mapping[str, Scalar]],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        """Create through the wrapped connector's batch, values and results translated."""
        out = [self._out(entity, values) for values in items]
        return self._results(await self.inner.create_many(entity, out, limit=limit))

    async def update_many(
        self,
        entity: EntityKind,
        items: Sequence[tuple[str, Mapping[str, Scalar]]],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        """Update through the wrapped connector's batch, values and results translated."""
        out = [(record_id, self._out(entity, changes)) for record_id, changes in items]
        return self._results(await self.inner.update_many(entity, out, limit=limit))

    async def delete_many(
        self, entity: EntityKind, ids: Sequence[str], *, limit: asyncio.Semaphore | None = None
    ) -> list[ItemResult]:
        """Delete through the wrapped connector's batch."""
        return await self.inner.delete_many(entity, ids, limit=limit)

    def _results(self, results: Sequence[ItemResult]) -> list[ItemResult]:
        translated = []
        for result in results:
            if result.record is not None:
                try:
                    result = ItemResult(record=self._back(result.record))
                except ValidationFailed as error:
                    result = ItemResult(error=error)
            translated.append(result)
        return translated

    def capabilities_for(self, entity: EntityKind) -> frozenset[Capability]:
        """As the wrapped connector."""
        return self.inner.capabilities_for(entity)

    async def commit(self) -> None:
        """Commit the wrapped connector's buffered writes."""
        await self.inner.commit()

    def can_delete(self, entity: EntityKind) -> bool:
        """As the wrapped connector."""
        return self.inner.can_delete(entity)

    def archive_status(self, entity: EntityKind) -> str | None:
        """As the wrapped connector."""
        return self.inner.archive_status(entity)


_WriteColumns = Callable[[EntityKind, str, Mapping[str, str]], Awaitable[bool]]


class _ColumnsMappingConnector(MappingConnector):
    """A mapped connector whose wrapped connector also writes non-canonical columns (the
    documents summary): those cells are the CRM's own, so they pass through untranslated."""

    def __init__(self, inner: Connector, mapping: CrmMapping, write: _WriteColumns) -> None:
        super().__init__(inner, mapping)
        self._write_columns = write

    async def write_columns(
        self, entity: EntityKind, record_id: str, values: Mapping[str, str]
    ) -> bool:
        """Set the cells through the wrapped connector; True when any changed."""
        return await self._write_columns(entity, record_id, values)


def wrap_crm(connector: Connector, config: MappingConfig) -> Connector:
    """``connector`` read and written through ``config``; itself when the mapping is empty.
    Raises `ConfigError` when the connector cannot apply a configured rename."""
    mapping = compile_mapping(config)
    if mapping.is_identity:
        return connector
    write_columns: _WriteColumns | None = getattr(connector, "write_columns", None)
    if write_columns is not None:
        return _ColumnsMappingConnector(connector, mapping, write_columns)
    return MappingConnector(connector, mapping)
