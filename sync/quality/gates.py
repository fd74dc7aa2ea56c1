"""Data-quality gates: what every record must satisfy before it is written to either side.

`Gates` is the engine's ``gate`` (see `sync.engine.inputs.Gate`): called with the entity,
the canonical values a write would leave on the target side, and the target, it returns
one `QualityProblem` per finding. A problem that ``rejects`` keeps the record from being
written (the run reports it, ``status`` lists it, the run exits 3, and the record is tried
again once its source changes); the others are warnings.

The gates, configured under ``[quality]`` with a `GateLevel` each:

========  ==============================================================  =========
gate      checks                                                          default
========  ==============================================================  =========
vat       ``vat_number``: format and checksum by country (python-stdnum)  reject
tin       ``tin`` by ``tin_country``, else ``country`` (python-stdnum)    reject
country   every country field is an ISO 3166-1 alpha-2 code (pycountry)   reject
currency  ``currency`` is an ISO 4217 code (pycountry)                    reject
email     e-mail fields are syntactically valid (no DNS)                  reject
phone     ``phone``: allowed characters and 7..15 digits (E.164)          warn
required  fields Flowtly requires are not empty (writes to Flowtly only)  reject
========  ==============================================================  =========

Which stdnum modules validate tax ids is documented in `sync.quality.checks`. Values are
canonical: connectors already turned country names and alpha-3 codes into alpha-2 codes
(`sync.normalize`), so the country and currency gates catch what is left (a connector
that does not normalize, or a code pycountry does not know).

The required gate judges the fields the sync carries: an empty required field fails
unless ``[flowtly.defaults]`` provides it; a field the sync does not carry at all is left
to Flowtly (a create missing it is refused by Flowtly and reported as such).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from sync.model import SCHEMA_SENSITIVE, SCHEMAS, EntityKind, FieldType, Scalar, Side
from sync.quality.checks import (
    country_problem,
    currency_problem,
    email_problem,
    phone_problem,
    tin_problem,
    vat_problem,
)
from sync.quality.settings import GateLevel, QualityConfig

__all__ = [
    "DEFAULT_LEVELS",
    "REQUIRED_FIELDS",
    "SCHEMA_SENSITIVE",
    "GateLevel",
    "GateName",
    "Gates",
    "QualityProblem",
    "sensitive_fields",
]


REQUIRED_FIELDS: Mapping[EntityKind, tuple[str, ...]] = MappingProxyType(
    {
        EntityKind.CLIENT: ("name", "country", "currency"),
        EntityKind.COUNTERPARTY: ("name",),
        EntityKind.CONTACT: ("name", "email"),
        EntityKind.NOTE: ("body",),
    }
)
"""Canonical fields Flowtly requires that have no built-in default (the enum-like ones,
``status``, ``tin_type``, contact and counterparty ``type``, always get one on create)."""


class GateName(StrEnum):
    """The configurable gates (the keys of ``[quality]``)."""

    VAT = "vat"
    TIN = "tin"
    COUNTRY = "country"
    CURRENCY = "currency"
    EMAIL = "email"
    PHONE = "phone"
    REQUIRED = "required"


DEFAULT_LEVELS: Mapping[GateName, GateLevel] = MappingProxyType(
    {
        GateName.VAT: GateLevel.REJECT,
        GateName.TIN: GateLevel.REJECT,
        GateName.COUNTRY: GateLevel.REJECT,
        GateName.CURRENCY: GateLevel.REJECT,
        GateName.EMAIL: GateLevel.REJECT,
        GateName.PHONE: GateLevel.WARN,
        GateName.REQUIRED: GateLevel.REJECT,
    }
)


@dataclass(frozen=True, slots=True)
class QualityProblem:
    """One finding: ``field`` holds ``value``, which fails for ``reason``.

    ``rejects`` is true when the gate's level is reject (the record is not written).
    """

    field: str
    value: Scalar
    reason: str
    rejects: bool


def sensitive_fields(config: QualityConfig | None = None) -> frozenset[str]:
    """The fields masked in logs and reports: the model's plus ``[quality] sensitive_fields``."""
    extra = config.sensitive_fields if config is not None else ()
    return SCHEMA_SENSITIVE | frozenset(extra)


def _fields_of(kind: FieldType) -> Mapping[EntityKind, tuple[str, ...]]:
    return MappingProxyType(
        {
            entity: tuple(name for name, spec in schema.items() if spec.type is kind)
            for entity, schema in SCHEMAS.items()
        }
    )


_COUNTRY_FIELDS = _fields_of(FieldType.COUNTRY)
_CURRENCY_FIELDS = _fields_of(FieldType.CURRENCY)
_EMAIL_FIELDS = _fields_of(FieldType.EMAIL)

_Finding = tuple[str, Scalar, str]
"""(field, value, reason)."""
_Missing = tuple[str, str]
"""(field, reason)."""


def _text(value: Scalar) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def _country_of(values: Mapping[str, Scalar], *names: str) -> str | None:
    for name in names:
        text = _text(values.get(name))
        if text is not None:
            return text
    return None


def _check_vat(entity: EntityKind, values: Mapping[str, Scalar]) -> Iterator[_Finding]:
    value = _text(values.get("vat_number"))
    if value is not None:
        reason = vat_problem(value, _country_of(values, "country", "tin_country"))
        if reason is not None:
            yield "vat_number", values["vat_number"], reason


def _check_tin(entity: EntityKind, values: Mapping[str, Scalar]) -> Iterator[_Finding]:
    value = _text(values.get("tin"))
    if value is not None:
        reason = tin_problem(value, _country_of(values, "tin_country", "country"))
        if reason is not None:
            yield "tin", values["tin"], reason


def _per_field(
    fields: Mapping[EntityKind, tuple[str, ...]], check: Callable[[str], str | None]
) -> Callable[[EntityKind, Mapping[str, Scalar]], Iterator[_Finding]]:
    def run(entity: EntityKind, values: Mapping[str, Scalar]) -> Iterator[_Finding]:
        for name in fields[entity]:
            raw = values.get(name)
            value = _text(raw)
            if value is not None:
                reason = check(value)
                if reason is not None:
                    yield name, raw, reason

    return run


def _check_phone(entity: EntityKind, values: Mapping[str, Scalar]) -> Iterator[_Finding]:
    raw = values.get("phone")
    value = _text(raw)
    if value is not None:
        reason = phone_problem(value)
        if reason is not None:
            yield "phone", raw, reason


_CHECKS: Mapping[GateName, Callable[[EntityKind, Mapping[str, Scalar]], Iterator[_Finding]]] = (
    MappingProxyType(
        {
            GateName.VAT: _check_vat,
            GateName.TIN: _check_tin,
            GateName.COUNTRY: _per_field(_COUNTRY_FIELDS, country_problem),
            GateName.CURRENCY: _per_field(_CURRENCY_FIELDS, currency_problem),
            GateName.EMAIL: _per_field(_EMAIL_FIELDS, email_problem),
            GateName.PHONE: _check_phone,
        }
    )
)


class Gates:
    """The configured data-quality gates, callable as the engine's ``gate``.

    ``defaults`` are the values the Flowtly side fills in on create, by entity and
    canonical field (``[flowtly.defaults]``): a required field they provide is not missing.
    """

    def __init__(
        self,
        config: QualityConfig | None = None,
        *,
        defaults: Mapping[EntityKind, Mapping[str, Scalar]] | None = None,
    ) -> None:
        levels = dict(DEFAULT_LEVELS)
        if config is not None:
            levels.update({gate: GateLevel(getattr(config, gate.value)) for gate in GateName})
        self.levels: Mapping[GateName, GateLevel] = MappingProxyType(levels)
        self.defaults: Mapping[EntityKind, Mapping[str, Scalar]] = MappingProxyType(
            {entity: MappingProxyType(dict(v)) for entity, v in (defaults or {}).items()}
        )
        self.sensitive = sensitive_fields(config)

    def __call__(
        self, entity: EntityKind, values: Mapping[str, Scalar], target: Side
    ) -> list[QualityProblem]:
        """The problems of ``values`` (canonical) as a record of ``entity`` to write to
        ``target``; empty when every enabled gate passes."""
        problems: list[QualityProblem] = []
        for gate, check in _CHECKS.items():
            level = self.levels[gate]
            if level is GateLevel.OFF:
                continue
            problems.extend(
                QualityProblem(name, value, reason, level is GateLevel.REJECT)
                for name, value, reason in check(entity, values)
            )
        level = self.levels[GateName.REQUIRED]
        if target is Side.FLOWTLY and level is not GateLevel.OFF:
            problems.extend(
                QualityProblem(name, None, reason, level is GateLevel.REJECT)
                for name, reason in self._missing(entity, values)
            )
        return problems

    def _missing(self, entity: EntityKind, values: Mapping[str, Scalar]) -> Iterable[_Missing]:
        defaults = self.defaults.get(entity, {})
        for name in REQUIRED_FIELDS[entity]:
            if name not in values:
                continue  # not carried by this sync: the write leaves Flowtly's value alone
            if _text(values[name]) is None and _text(defaults.get(name)) is None:
                yield name, f"Flowtly requires {name} and neither the record nor a default has one"
