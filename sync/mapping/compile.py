"""Compiling ``[mapping]`` into what is applied: value maps both ways per field, constants
and defaults per entity, the `FieldLayout` for connectors, and the implied directions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sync.mapping.config import PSEUDO_FIELDS, EntityMappingConfig, MappingConfig
from sync.mapping.countries import country_from_name
from sync.mapping.layout import FieldLayout, fold
from sync.model import SCHEMAS, EntityKind, FieldSpec, FieldType, Record, Scalar
from sync.normalize import NormalizationError, normalize_value
from sync.policy import Direction

__all__ = ["CrmMapping", "EntityMapping", "FieldMap", "compile_mapping", "mapping_directions"]


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
