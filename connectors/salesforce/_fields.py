"""Which Salesforce field carries which canonical field, and how values cross over.

The default mapping is keyed by API field names: standard fields where Salesforce has one
(``Name``, ``BillingCity``, ``Email``...), and a custom field ``Flowtly_<canonical>__c``
for everything else (``Flowtly_vat_number__c``; ``Flowtly_kind__c`` tells clients from
suppliers). The user's ``[mapping.*]`` renames (a `FieldLayout`) replace those names. What
the org really has is known from ``describe`` at open: a field it lacks is left out of
what the connector carries (`ObjectLayout.carried`) and listed by ``crm setup``, never
an error per record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pycountry

from connectors.setup import CustomField
from sync.mapping.layout import FieldLayout, fold
from sync.model import SCHEMAS, EntityKind, FieldSpec, FieldType, Scalar
from sync.normalize import NormalizationError, normalize_value

__all__ = [
    "KIND",
    "Codec",
    "Described",
    "FieldPlan",
    "ObjectLayout",
    "account_layout",
    "contact_layout",
    "custom_name",
    "from_api",
    "split_name",
    "to_api",
]

KIND = "kind"
"""The pseudo-field of a company's kind (client or supplier)."""

_ACCOUNT_STANDARD = {
    "name": "Name",
    "street_line": "BillingStreet",
    "city": "BillingCity",
    "post_code": "BillingPostalCode",
    "country": "BillingCountry",
    "phone": "Phone",
    "website": "Website",
}
_CONTACT_STANDARD = {
    "email": "Email",
    "phone": "Phone",
    "title": "Title",
    "company_id": "AccountId",
}
_COMPANY_FIELDS = tuple(
    dict.fromkeys([*SCHEMAS[EntityKind.CLIENT], *SCHEMAS[EntityKind.COUNTERPARTY]])
)
_CUSTOM_TYPES = {
    FieldType.INTEGER: "Number(18, 0)",
    FieldType.DECIMAL: "Number(16, 4)",
    FieldType.BOOLEAN: "Checkbox",
}


def custom_name(canonical: str) -> str:
    """``Flowtly_vat_number__c`` for ``vat_number``."""
    return f"Flowtly_{canonical}__c"


class Codec(Enum):
    """How a value crosses between the API and canonical form."""

    PLAIN = "plain"
    """Normalized by the canonical field's type."""
    COUNTRY_NAME = "country_name"
    """A country's English name in Salesforce, its ISO code in canonical form."""
    VERBATIM = "verbatim"
    """Plain text both ways; the user's value map translates it."""


@dataclass(frozen=True, slots=True)
class Described:
    """One field of an sObject's describe."""

    name: str
    type: str
    updateable: bool = True


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """One canonical field (or the kind) on one sObject."""

    canonical: str
    api: str
    custom: bool
    present: bool
    codec: Codec = Codec.PLAIN


@dataclass(frozen=True, slots=True)
class ObjectLayout:
    """The fields of one sObject the connector reads and writes."""

    sobject: str
    entities: tuple[EntityKind, ...]
    plans: Mapping[str, FieldPlan]
    kind: FieldPlan | None = None
    split_name: bool = False
    """Contact: ``name`` is FirstName + LastName."""
    layout: FieldLayout = field(default_factory=FieldLayout)

    def carried(self, entity: EntityKind) -> frozenset[str]:
        schema = SCHEMAS[entity]
        names = {name for name, plan in self.plans.items() if plan.present and name in schema}
        if self.split_name:
            names.add("name")
        return frozenset(names)

    def select(self) -> list[str]:
        """The API fields a query selects."""
        names = ["Id", "SystemModstamp"]
        if self.split_name:
            names += ["FirstName", "LastName"]
        names += [plan.api for plan in self.plans.values() if plan.present]
        if self.kind is not None and self.kind.present:
            names.append(self.kind.api)
        return list(dict.fromkeys(names))

    def entity_of(self, raw: Mapping[str, Any]) -> EntityKind | None:
        """The entity a record is (its kind); None when its kind value is unknown."""
        if self.kind is None or not self.kind.present:
            return self.entities[0]
        value = raw.get(self.kind.api)
        return self.layout.kind_of("" if value is None else str(value))

    def custom_fields(self) -> list[CustomField]:
        entity = self.entities[0]
        found = []
        for plan in self.plans.values():
            if plan.custom:
                spec = _spec(entity, plan.canonical)
                kind = _CUSTOM_TYPES.get(spec.type, "Text(255)")
                found.append(CustomField(entity, plan.api, plan.canonical, kind, plan.present))
        if self.kind is not None and self.kind.custom:
            labels = tuple(self.layout.kind_label(e) for e in self.entities)
            found.append(
                CustomField(entity, self.kind.api, KIND, "Picklist", self.kind.present, labels)
            )
        return found


def _spec(entity: EntityKind, name: str) -> FieldSpec:
    spec = SCHEMAS[entity].get(name) or SCHEMAS[EntityKind.COUNTERPARTY].get(name)
    assert spec is not None, name
    return spec


def _plan(
    canonical: str,
    default: str | None,
    entity: EntityKind,
    renamed: Mapping[str, str],
    described: Mapping[str, Described],
    layout: FieldLayout,
) -> FieldPlan:
    chosen = renamed.get(canonical)
    name = chosen or default or custom_name(canonical)
    found = described.get(fold(name))
    codec = Codec.PLAIN
    if layout.is_verbatim(entity, canonical):
        codec = Codec.VERBATIM
    elif name == "BillingCountry":
        codec = Codec.COUNTRY_NAME
    custom = chosen is None and default is None
    return FieldPlan(canonical, found.name if found else name, custom, found is not None, codec)


def _renamed(layout: FieldLayout, entity: EntityKind) -> dict[str, str]:
    """Canonical name -> the CRM field the user named for it (folded)."""
    return {canonical: crm for crm, canonical in layout.aliases.get(entity, {}).items()}


def account_layout(described: Mapping[str, Described], layout: FieldLayout) -> ObjectLayout:
    """The Account fields, from its describe (folded name -> field) and the user's names."""
    entity = EntityKind.CLIENT
    renamed = _renamed(layout, entity)
    standard = dict(_ACCOUNT_STANDARD)
    if "billingcountrycode" in described and "country" not in renamed:
        # State and country picklists: the code field is the one to write.
        standard["country"] = "BillingCountryCode"
    plans = {
        name: _plan(name, standard.get(name), entity, renamed, described, layout)
        for name in _COMPANY_FIELDS
    }
    kind = _plan(KIND, None, entity, renamed, described, FieldLayout())
    return ObjectLayout(
        "Account", (EntityKind.CLIENT, EntityKind.COUNTERPARTY), plans, kind, layout=layout
    )


def contact_layout(described: Mapping[str, Described], layout: FieldLayout) -> ObjectLayout:
    """The Contact fields: FirstName + LastName carry ``name`` unless the user maps it."""
    entity = EntityKind.CONTACT
    renamed = _renamed(layout, entity)
    plans = {
        name: _plan(name, _CONTACT_STANDARD.get(name), entity, renamed, described, layout)
        for name in SCHEMAS[entity]
        if name != "name" or "name" in renamed
    }
    return ObjectLayout(
        "Contact", (entity,), plans, split_name="name" not in renamed, layout=layout
    )


# -- values ---------------------------------------------------------------------------------


def split_name(name: str | None) -> tuple[str | None, str]:
    """FirstName and LastName of a name: the last word is the last name (required, so a
    one-word name is all LastName)."""
    words = (name or "").split()
    if len(words) <= 1:
        return None, words[0] if words else ""
    return " ".join(words[:-1]), words[-1]


def from_api(entity: EntityKind, plan: FieldPlan, raw: object) -> Scalar:
    """The canonical value of ``raw``; raises `NormalizationError` when it has none."""
    spec = _spec(entity, plan.canonical)
    if plan.codec is Codec.VERBATIM:
        return None if raw is None else (str(raw).strip() or None)
    if spec.type is FieldType.DECIMAL and isinstance(raw, float):
        raw = repr(raw)
    return normalize_value(spec, raw)


def to_api(entity: EntityKind, plan: FieldPlan, value: Scalar) -> object:
    """The API value of the canonical ``value``; raises `NormalizationError` when refused."""
    spec = _spec(entity, plan.canonical)
    if plan.codec is Codec.VERBATIM:
        return value
    canonical = normalize_value(spec, value)
    if canonical is None:
        return None
    if plan.codec is Codec.COUNTRY_NAME:
        country = pycountry.countries.get(alpha_2=str(canonical))
        if country is None:
            raise NormalizationError(plan.canonical, value, "not an ISO 3166 country code")
        return str(getattr(country, "common_name", None) or country.name)
    if spec.type is FieldType.DECIMAL:
        return float(str(canonical))
    return canonical
