"""Field mapping: a CRM's own field names and values <-> canonical ones, for any connector.

Configured per table (``[mapping.company]``, ``[mapping.contact]``, ``[mapping.note]``, see
`sync._mapping_config` and config.example.toml): which CRM field is which canonical field,
value maps (CRM ``Customer - Active`` -> ``active``), constants, defaults, a direction per
field, and which CRM kind values mean client or supplier.

Design: a mapping has two halves, applied where each can be.

* Names (renaming CRM fields, reading the company kind) only exist inside a connector, so
  they travel as a `connectors._mapping.FieldLayout` to connectors that implement
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

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

from connectors._mapping import FieldLayout, LayoutAware, fold
from connectors.base import Capability, ChangeBatch, Connector, ConnectorSettings, Cursor
from sync._country_names import country_from_name
from sync._mapping_config import (
    PSEUDO_FIELDS,
    CompanyField,
    CompanyMapping,
    ContactField,
    ContactMapping,
    CrmKind,
    EntityMappingConfig,
    FieldRule,
    MappedEntity,
    MappingConfig,
    NoteField,
    NoteMapping,
)
from sync.engine.policy import Direction
from sync.errors import ConfigError, RecordError, ValidationFailed, Violation
from sync.model import SCHEMAS, EntityKind, FieldSpec, FieldType, Record, Scalar, Side
from sync.normalize import NormalizationError, normalize_value

__all__ = [
    "CompanyField",
    "CompanyMapping",
    "ContactField",
    "ContactMapping",
    "CrmKind",
    "CrmMapping",
    "EntityMapping",
    "EntityMappingConfig",
    "FieldMap",
    "FieldRule",
    "MappedEntity",
    "MappingConfig",
    "MappingConnector",
    "NoteField",
    "NoteMapping",
    "compile_mapping",
    "mapping_directions",
    "wrap_crm",
]


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True)
class FieldMap:
    """One mapped canonical field: its value map both ways."""

    spec: FieldSpec
    exact: Mapping[str, Scalar]
    """CRM value (stripped) -> canonical value."""
    folded: Mapping[str, Scalar]
    """CRM value compared ignoring case -> canonical value (the first listed wins)."""
    reverse: Mapping[Scalar, str]
    """Canonical value -> the first CRM value listed for it."""

    @classmethod
    def build(cls, spec: FieldSpec, values: Mapping[str, Scalar | str]) -> FieldMap:
        exact: dict[str, Scalar] = {}
        folded: dict[str, Scalar] = {}
        reverse: dict[Scalar, str] = {}
        for crm_value, raw in values.items():
            canonical = normalize_value(spec, raw)  # checked when the config was loaded
            exact.setdefault(crm_value.strip(), canonical)
            folded.setdefault(fold(crm_value), canonical)
            if canonical is not None:
                reverse.setdefault(canonical, crm_value)
        return cls(spec, MappingProxyType(exact), MappingProxyType(folded), reverse)

    def read(self, raw: Scalar) -> Scalar:
        """The canonical value of the CRM value ``raw``; `NormalizationError` if none."""
        if raw is None:
            return None
        text = _text(raw).strip()
        if text in self.exact:
            return self.exact[text]
        if fold(text) in self.folded:
            return self.folded[fold(text)]
        try:
            return normalize_value(self.spec, raw)
        except NormalizationError:
            if self.spec.type is FieldType.COUNTRY:
                code = country_from_name(text)
                if code is not None:
                    return code
            raise

    def write(self, value: Scalar, *, verbatim: bool) -> Scalar:
        """The CRM value for the canonical ``value`` (text when the CRM takes it verbatim)."""
        if value is None:
            return None
        crm_value = self.reverse.get(value)
        if crm_value is not None:
            return crm_value
        return _text(value) if verbatim else value


@dataclass(frozen=True, slots=True)
class EntityMapping:
    """The value half of the mapping of one entity kind."""

    entity: EntityKind
    fields: Mapping[str, FieldMap]
    constants: Mapping[str, Scalar]
    defaults: Mapping[str, Scalar]

    def read(self, record: Record) -> Record:
        """``record`` as the CRM holds it -> canonical; `NormalizationError` on a value
        that has no canonical form."""
        values = dict(record.fields)
        for name, field_map in self.fields.items():
            if name in values:
                values[name] = field_map.read(values[name])
        for name, default in self.defaults.items():
            if values.get(name) is None:
                values[name] = default
        values.update(self.constants)
        return Record(self.entity, record.id, values)

    def write(
        self, values: Mapping[str, Scalar], carried: frozenset[str], *, verbatim: bool
    ) -> dict[str, Scalar]:
        """Canonical ``values`` -> the CRM's, for the ``carried`` fields; constants are
        never written (they are not the CRM's)."""
        out: dict[str, Scalar] = {}
        for name, value in values.items():
            if name in self.constants or name not in carried:
                continue
            field_map = self.fields.get(name)
            out[name] = field_map.write(value, verbatim=verbatim) if field_map else value
        return out


@dataclass(frozen=True, slots=True)
class CrmMapping:
    """A compiled ``[mapping]``: names for the connector, values for the wrapper."""

    entities: Mapping[EntityKind, EntityMapping]
    layout: FieldLayout
    directions: Mapping[str, Direction]
    renames: Mapping[str, str]
    """Dotted config key -> CRM name, of every CRM field that is not named canonically."""

    @property
    def is_identity(self) -> bool:
        """Whether the mapping changes nothing (no table configured)."""
        return (
            not self.renames
            and not self.layout.kinds
            and not self.directions
            and all(not (m.fields or m.constants or m.defaults) for m in self.entities.values())
        )


def _entity_mapping(entity: EntityKind, table: EntityMappingConfig) -> EntityMapping:
    schema = SCHEMAS[entity]
    fields = {
        rule.field: FieldMap.build(schema[rule.field], rule.values)
        for rule in table.rules().values()
        if rule.field in schema
    }

    def canonical(values: Mapping[str, Scalar | str]) -> dict[str, Scalar]:
        return {
            name: normalize_value(schema[name], value)
            for name, value in values.items()
            if name in schema
        }

    return EntityMapping(
        entity,
        MappingProxyType(fields),
        MappingProxyType(canonical(table.constant_values())),
        MappingProxyType(canonical(table.default_values())),
    )


def mapping_directions(config: MappingConfig) -> dict[str, Direction]:
    """The per-field directions the mapping sets: those configured (other than ``both``)
    and ``crm_to_flowtly`` for constants. Applies to the field of every entity."""
    directions: dict[str, Direction] = {}
    for table in config.tables().values():
        for rule in table.rules().values():
            if rule.field not in PSEUDO_FIELDS and rule.direction is not Direction.BOTH:
                directions[rule.field] = rule.direction
        for name in table.constant_values():
            directions[name] = Direction.CRM_TO_FLOWTLY
    return directions


def compile_mapping(config: MappingConfig) -> CrmMapping:
    """Turn the validated ``[mapping]`` tables into what connectors and the wrapper apply."""
    entities: dict[EntityKind, EntityMapping] = {}
    aliases: dict[EntityKind, Mapping[str, str]] = {}
    verbatim: dict[EntityKind, frozenset[str]] = {}
    renames: dict[str, str] = {}
    for group, table in config.tables().items():
        names = {fold(crm): rule.field for crm, rule in table.rules().items()}
        for crm, rule in table.rules().items():
            if fold(crm) != rule.field:
                renames[f"mapping.{group}.fields.{crm}"] = crm
        mapped = frozenset(n for n in names.values() if n not in PSEUDO_FIELDS)
        for entity in group.entities:
            entities[entity] = _entity_mapping(entity, table)
            aliases[entity] = MappingProxyType(names)
            verbatim[entity] = mapped & frozenset(SCHEMAS[entity])
    kinds: dict[str, EntityKind] = {}
    labels: dict[EntityKind, str] = {}
    for crm_value, kind in config.company.kinds.items():
        kinds.setdefault(fold(crm_value), kind.entity)
        labels.setdefault(kind.entity, crm_value)
    layout = FieldLayout(
        MappingProxyType(aliases),
        MappingProxyType(verbatim),
        MappingProxyType(kinds),
        MappingProxyType({**FieldLayout().kind_labels, **labels}),
    )
    return CrmMapping(
        MappingProxyType(entities),
        layout,
        MappingProxyType(mapping_directions(config)),
        MappingProxyType(renames),
    )


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
