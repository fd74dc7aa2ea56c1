"""The ``[mapping.company]``, ``[mapping.contact]`` and ``[mapping.note]`` tables (pydantic).

Every name is checked here, so a typo fails at start-up naming its key: an unknown
canonical field in ``field`` fails at ``mapping.company.fields.<CRM name>.field``, in
``constants``/``defaults`` at ``mapping.company.constants.<name>``. Values are checked
against the canonical field's type (a constant ``due_days = "soon"`` is refused).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from sync.model import SCHEMAS, EntityKind, FieldSpec
from sync.normalize import NormalizationError, normalize_value
from sync.policy import Direction

__all__ = [
    "PSEUDO_FIELDS",
    "CompanyField",
    "CompanyMapping",
    "ContactField",
    "ContactMapping",
    "CrmKind",
    "EntityMappingConfig",
    "FieldRule",
    "MappedEntity",
    "MappingConfig",
    "NoteField",
    "NoteMapping",
    "TomlValue",
]

TomlValue = str | int | bool
"""A value as TOML gives it; normalized to the canonical field's type when compiled."""

PSEUDO_FIELDS = frozenset({"id", "kind"})
"""Names a CRM field may be mapped to besides canonical fields: the record id and, for
companies, the client/supplier kind."""


class MappedEntity(StrEnum):
    """The tables of ``[mapping]``: companies cover clients and counterparties."""

    COMPANY = "company"
    CONTACT = "contact"
    NOTE = "note"

    @property
    def entities(self) -> tuple[EntityKind, ...]:
        """The entity kinds this table maps."""
        if self is MappedEntity.COMPANY:
            return (EntityKind.CLIENT, EntityKind.COUNTERPARTY)
        return (EntityKind(self.value),)

    @property
    def schema(self) -> Mapping[str, FieldSpec]:
        """The canonical fields of the table (for companies, those of counterparties,
        which include every client field)."""
        return SCHEMAS[self.entities[-1]]

    @property
    def targets(self) -> frozenset[str]:
        """What a CRM field may be mapped to."""
        pseudo = PSEUDO_FIELDS if self is MappedEntity.COMPANY else frozenset({"id"})
        return frozenset(self.schema) | pseudo

    @classmethod
    def of(cls, entity: EntityKind) -> MappedEntity:
        """The table that maps ``entity``."""
        if entity in (EntityKind.CLIENT, EntityKind.COUNTERPARTY):
            return cls.COMPANY
        return cls(entity.value)


class CrmKind(StrEnum):
    """What a CRM kind value stands for."""

    CLIENT = "client"
    SUPPLIER = "supplier"

    @property
    def entity(self) -> EntityKind:
        return EntityKind.CLIENT if self is CrmKind.CLIENT else EntityKind.COUNTERPARTY


def _checker(group: MappedEntity, *, pseudo: bool) -> AfterValidator:
    allowed = group.targets if pseudo else frozenset(group.schema)

    def check(name: str) -> str:
        if name not in allowed:
            raise ValueError(
                f"unknown canonical field {name!r} of {group}; known: {', '.join(sorted(allowed))}"
            )
        return name

    return AfterValidator(check)


CompanyTarget = Annotated[str, _checker(MappedEntity.COMPANY, pseudo=True)]
CompanyName = Annotated[str, _checker(MappedEntity.COMPANY, pseudo=False)]
ContactTarget = Annotated[str, _checker(MappedEntity.CONTACT, pseudo=True)]
ContactName = Annotated[str, _checker(MappedEntity.CONTACT, pseudo=False)]
NoteTarget = Annotated[str, _checker(MappedEntity.NOTE, pseudo=True)]
NoteName = Annotated[str, _checker(MappedEntity.NOTE, pseudo=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_value(spec: FieldSpec, value: TomlValue, what: str) -> None:
    try:
        normalize_value(spec, value)
    except NormalizationError as error:
        raise ValueError(f"{what}: {error.reason} (got {value!r})") from None


class FieldRule(_Strict):
    """How one CRM field maps: to which canonical ``field``, with which value map
    (CRM value -> canonical value), and which way it may flow."""

    group: ClassVar[MappedEntity]
    field: str
    values: dict[str, TomlValue] = Field(default_factory=dict)
    direction: Direction = Direction.BOTH

    @model_validator(mode="after")
    def _check_values(self) -> FieldRule:
        if self.field in PSEUDO_FIELDS:
            if self.values:
                hint = " (use mapping.company.kinds)" if self.field == "kind" else ""
                raise ValueError(f"{self.field!r} takes no value map{hint}")
            if self.direction is not Direction.BOTH:
                raise ValueError(f"{self.field!r} takes no direction")
            return self
        spec = self.group.schema[self.field]
        for crm_value, canonical in self.values.items():
            _check_value(spec, canonical, f"values.{crm_value}")
        return self


class CompanyField(FieldRule):
    """A CRM company field (``[mapping.company.fields."<CRM name>"]``)."""

    group = MappedEntity.COMPANY
    field: CompanyTarget


class ContactField(FieldRule):
    """A CRM contact field (``[mapping.contact.fields."<CRM name>"]``)."""

    group = MappedEntity.CONTACT
    field: ContactTarget


class NoteField(FieldRule):
    """A CRM note field (``[mapping.note.fields."<CRM name>"]``)."""

    group = MappedEntity.NOTE
    field: NoteTarget


class EntityMappingConfig(_Strict):
    """The mapping of one table: CRM fields, constants (a canonical field set to a fixed
    value on read) and defaults (the value when the CRM's is empty)."""

    group: ClassVar[MappedEntity]

    @abc.abstractmethod
    def rules(self) -> Mapping[str, FieldRule]:
        """CRM field name -> rule."""

    @abc.abstractmethod
    def constant_values(self) -> Mapping[str, TomlValue]:
        """Canonical field -> constant."""

    @abc.abstractmethod
    def default_values(self) -> Mapping[str, TomlValue]:
        """Canonical field -> default."""

    @model_validator(mode="after")
    def _consistent(self) -> EntityMappingConfig:
        schema = self.group.schema
        targets: dict[str, str] = {}
        folded: dict[str, str] = {}
        for crm_name, rule in self.rules().items():
            key = crm_name.strip().lower()
            if key in folded:
                raise ValueError(
                    f"fields {folded[key]!r} and {crm_name!r} name the same CRM field "
                    "(names are compared ignoring case)"
                )
            folded[key] = crm_name
            if rule.field in targets:
                raise ValueError(
                    f"fields {targets[rule.field]!r} and {crm_name!r} both map to {rule.field!r}"
                )
            targets[rule.field] = crm_name
        for table, values in (
            ("constants", self.constant_values()),
            ("defaults", self.default_values()),
        ):
            for name, value in values.items():
                _check_value(schema[name], value, f"{table}.{name}")
        for name in self.constant_values():
            if name in targets:
                raise ValueError(
                    f"constants.{name}: {name!r} is also mapped from CRM field {targets[name]!r}"
                )
            if name in self.default_values():
                raise ValueError(f"constants.{name}: {name!r} also has a default")
        return self


class CompanyMapping(EntityMappingConfig):
    """``[mapping.company]``; ``kinds`` maps CRM kind values to client or supplier."""

    group = MappedEntity.COMPANY
    fields: dict[str, CompanyField] = Field(default_factory=dict)
    constants: dict[CompanyName, TomlValue] = Field(default_factory=dict)
    defaults: dict[CompanyName, TomlValue] = Field(default_factory=dict)
    kinds: dict[str, CrmKind] = Field(default_factory=dict)

    def rules(self) -> Mapping[str, FieldRule]:
        return self.fields

    def constant_values(self) -> Mapping[str, TomlValue]:
        return self.constants

    def default_values(self) -> Mapping[str, TomlValue]:
        return self.defaults


class ContactMapping(EntityMappingConfig):
    """``[mapping.contact]``."""

    group = MappedEntity.CONTACT
    fields: dict[str, ContactField] = Field(default_factory=dict)
    constants: dict[ContactName, TomlValue] = Field(default_factory=dict)
    defaults: dict[ContactName, TomlValue] = Field(default_factory=dict)

    def rules(self) -> Mapping[str, FieldRule]:
        return self.fields

    def constant_values(self) -> Mapping[str, TomlValue]:
        return self.constants

    def default_values(self) -> Mapping[str, TomlValue]:
        return self.defaults


class NoteMapping(EntityMappingConfig):
    """``[mapping.note]``."""

    group = MappedEntity.NOTE
    fields: dict[str, NoteField] = Field(default_factory=dict)
    constants: dict[NoteName, TomlValue] = Field(default_factory=dict)
    defaults: dict[NoteName, TomlValue] = Field(default_factory=dict)

    def rules(self) -> Mapping[str, FieldRule]:
        return self.fields

    def constant_values(self) -> Mapping[str, TomlValue]:
        return self.constants

    def default_values(self) -> Mapping[str, TomlValue]:
        return self.defaults


class MappingConfig(_Strict):
    """``[mapping]``: how CRM fields and values translate to canonical ones. Empty (the
    default), CRM fields carry canonical names and values."""

    company: CompanyMapping = CompanyMapping()
    contact: ContactMapping = ContactMapping()
    note: NoteMapping = NoteMapping()

    def tables(self) -> Mapping[MappedEntity, EntityMappingConfig]:
        """Every table by what it maps."""
        return {
            MappedEntity.COMPANY: self.company,
            MappedEntity.CONTACT: self.contact,
            MappedEntity.NOTE: self.note,
        }

    @model_validator(mode="after")
    def _directions_agree(self) -> MappingConfig:
        seen: dict[str, tuple[Direction, str]] = {}
        for group, table in self.tables().items():
            for crm_name, rule in table.rules().items():
                _agree(seen, rule.field, rule.direction, f"{group}.fields.{crm_name}")
            for name in table.constant_values():
                _agree(seen, name, Direction.CRM_TO_FLOWTLY, f"{group}.constants.{name}")
        return self


def _agree(seen: dict[str, tuple[Direction, str]], name: str, way: Direction, key: str) -> None:
    # The engine's directions are per field name, whatever the entity.
    if way is Direction.BOTH:
        return
    if name in seen and seen[name][0] is not way:
        other_way, other_key = seen[name]
        raise ValueError(
            f"{key} flows {way} but {other_key} flows {other_way}; "
            f"directions apply to the field {name!r} of every entity"
        )
    seen.setdefault(name, (way, key))
