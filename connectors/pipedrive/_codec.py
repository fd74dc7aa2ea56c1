"""One Pipedrive item <-> one canonical record, under a `Binding` and a `FieldLayout`.

Reading never raises for a bad value: the record is rejected with its id, field and
reason (`RecordError`), and its id still counts as present. Writing builds the request
body the spec describes, refusing (`ValidationFailed`, the field named) what Pipedrive
cannot hold: a clear of a non-nullable property, an enum label it has no option for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.pipedrive._slots import Binding, Group, Slot, Where
from connectors.pipedrive._values import (
    ADDRESS_PARTS,
    address_value,
    canonical,
    html_of,
    raw_value,
    with_primary,
    write_text,
)
from sync.errors import RecordError, ValidationFailed, Violation
from sync.mapping.layout import FieldLayout
from sync.model import SCHEMAS, EntityKind, FieldSpec, Record, Scalar
from sync.normalize import NormalizationError

__all__ = ["Codec", "item_id"]

SIDE = "pipedrive"


def item_id(item: Mapping[str, Any]) -> str | None:
    """A Pipedrive item's id as the engine holds it (text); None when it has none."""
    value = item.get("id")
    if isinstance(value, bool) or not isinstance(value, int | str) or value in ("", 0):
        return None
    return str(value)


def _refuse(entity: EntityKind, violations: list[Violation]) -> ValidationFailed:
    return ValidationFailed(
        f"{entity} refused by pipedrive: " + "; ".join(str(v) for v in violations),
        violations=tuple(violations),
        side=SIDE,
    )


@dataclass(frozen=True, slots=True)
class Codec:
    """Converts the items of one group (organizations, persons or notes)."""

    binding: Binding
    layout: FieldLayout

    # -- reading -----------------------------------------------------------------------

    def entity_of(self, item: Mapping[str, Any]) -> tuple[EntityKind | None, str | None]:
        """The entity of an item and, when its kind is unreadable, the kind's text."""
        group = self.binding.group
        if group is Group.PERSON:
            return EntityKind.CONTACT, None
        if group is Group.NOTE:
            return EntityKind.NOTE, None
        kind = self.binding.kind
        if kind is None:
            return EntityKind.CLIENT, None
        raw = raw_value(kind, item)
        text = "" if raw is None else str(raw)
        entity = self.layout.kind_of(text)
        return entity, (None if entity is not None else text)

    def record(
        self, entity: EntityKind, item: Mapping[str, Any]
    ) -> tuple[Record | None, list[RecordError]]:
        """The canonical record of ``item`` as ``entity``, or why it cannot be read."""
        record_id = item_id(item) or ""
        schema = SCHEMAS[entity]
        values: dict[str, Scalar] = {}
        errors: list[RecordError] = []
        for name, slot in self.binding.slots.items():
            spec = schema.get(name)
            if spec is None:
                continue
            raw = raw_value(slot, item)
            try:
                values[name] = canonical(spec, raw, verbatim=self.layout.is_verbatim(entity, name))
            except NormalizationError as error:
                errors.append(
                    RecordError(
                        str(entity), SIDE, record_id, error.reason, field=name, value=str(raw)
                    )
                )
        if errors:
            return None, errors
        return Record(entity, record_id, values), []

    # -- writing -----------------------------------------------------------------------

    def needs_current(self, changes: Mapping[str, Scalar]) -> bool:
        """Whether writing ``changes`` needs the item as it is (a whole-replaced part)."""
        slots = self.binding.slots
        return any(
            name in slots and slots[name].where in (Where.ADDRESS, Where.EMAIL, Where.PHONE)
            for name in changes
        )

    def body(
        self,
        entity: EntityKind,
        values: Mapping[str, Scalar],
        *,
        current: Mapping[str, Any] | None = None,
        creating: bool = False,
    ) -> dict[str, Any]:
        """The request body that sets ``values`` (``current``: the item as it is, for the
        address and the emails / phones lists, which are replaced whole)."""
        schema = SCHEMAS[entity]
        body: dict[str, Any] = {}
        violations: list[Violation] = []
        address: dict[str, str] | None = None
        for name, value in values.items():
            slot = self.binding.slots.get(name)
            if slot is None or name not in schema:
                continue  # not carried here: the engine only compares carried fields
            spec = schema[name]
            if not self.layout.is_verbatim(entity, name):
                try:
                    value = canonical(spec, value, verbatim=False)
                except NormalizationError as error:
                    violations.append(Violation(name, error.reason))
                    continue
            if slot.where is Where.ADDRESS:
                if address is None:
                    address = _address_of(current)
                address[slot.key] = self._text(entity, spec, value) or ""
                continue
            problem = self._put(body, entity, spec, slot, value, current)
            if problem is not None:
                violations.append(Violation(name, problem))
        if address is not None:
            address["value"] = address_value(address)
            body["address"] = address
        if creating:
            self._creating(entity, body, violations)
        if violations:
            raise _refuse(entity, violations)
        return body

    def _text(self, entity: EntityKind, spec: FieldSpec, value: Scalar) -> str | None:
        if self.layout.is_verbatim(entity, spec.name):
            return None if value is None else str(value)
        return write_text(spec, value)

    def _put(
        self,
        body: dict[str, Any],
        entity: EntityKind,
        spec: FieldSpec,
        slot: Slot,
        value: Scalar,
        current: Mapping[str, Any] | None,
    ) -> str | None:
        """Set one slot's value in ``body``; the reason when Pipedrive cannot hold it."""
        text = self._text(entity, spec, value)
        where = slot.where
        if where is Where.CUSTOM:
            stored = self._custom(slot, text)
            if text is not None and stored is None:
                label = slot.field.name if slot.field is not None else slot.key
                return f"Pipedrive field {label!r} has no option {text!r}"
            body.setdefault("custom_fields", {})[slot.key] = stored
            return None
        if where in (Where.EMAIL, Where.PHONE):
            body[slot.key] = with_primary((current or {}).get(slot.key), text)
            return None
        if where is Where.ORG:
            if text is None:
                return "Pipedrive cannot detach it from its organization (org_id is not nullable)"
            if not text.isdigit():
                return f"{text!r} is not a Pipedrive organization id"
            body[slot.key] = int(text)
            return None
        if where is Where.HTML:
            if text is None:
                return "Pipedrive needs a note's content"
            body[slot.key] = html_of(text)
            return None
        if where is Where.TIME:
            if text is not None:
                body[slot.key] = text
            return None
        if slot.key == "name" and text is None:
            return "Pipedrive needs a name"
        # website and linkedin are nullable; every other plain property is a string.
        body[slot.key] = text if text is not None or slot.key in ("website", "linkedin") else ""
        return None

    @staticmethod
    def _custom(slot: Slot, text: str | None) -> object:
        field = slot.field
        if text is None or field is None:
            return text
        if field.is_enum:
            return field.option_id(text)
        if field.type in ("double", "int", "monetary"):
            try:
                number = float(text)
            except ValueError:
                return text
            return int(number) if number.is_integer() else number
        return text

    def _creating(
        self, entity: EntityKind, body: dict[str, Any], problems: list[Violation]
    ) -> None:
        group = self.binding.group
        if group is not Group.NOTE and "name" not in body:
            problems.append(Violation("name", "Pipedrive needs a name"))
        if group is Group.NOTE:
            if "content" not in body:
                problems.append(Violation("body", "Pipedrive needs a note's content"))
            if "org_id" not in body:
                problems.append(Violation("company_id", "a note needs its organization"))
        kind = self.binding.kind
        if group is Group.ORGANIZATION and kind is not None:
            label = self.layout.kind_label(entity)
            option = Codec._custom(kind, label)
            if option is None:
                problems.append(
                    Violation("kind", f"Pipedrive field {kind.key!r} has no option {label!r}")
                )
            else:
                body.setdefault("custom_fields", {})[kind.key] = option
        elif group is Group.ORGANIZATION and entity is not EntityKind.CLIENT:
            problems.append(
                Violation("kind", "the account has no kind field to mark a supplier with")
            )


def _address_of(current: Mapping[str, Any] | None) -> dict[str, str]:
    """Every part of the current address (empty strings where it has none)."""
    held = (current or {}).get("address")
    held = held if isinstance(held, Mapping) else {}
    return {part: str(held.get(part) or "") for part in ADDRESS_PARTS}
