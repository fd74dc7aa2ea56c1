"""Salesforce records <-> canonical records, and SaveResults <-> per-record errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.salesforce._fields import ObjectLayout, from_api, split_name, to_api
from sync.errors import ConnectorError, NotFound, RecordError, ValidationFailed, Violation
from sync.model import SCHEMAS, EntityKind, Record, Scalar
from sync.normalize import NormalizationError

__all__ = ["NOT_FOUND_CODES", "joined_name", "parse", "payload", "refusal"]

NOT_FOUND_CODES = frozenset(
    {"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID", "INVALID_ID_FIELD"}
)
"""SaveResult codes that mean the record is not there (deleted, or never was)."""


def joined_name(raw: Mapping[str, Any]) -> str | None:
    parts = [str(raw.get(name) or "").strip() for name in ("FirstName", "LastName")]
    return " ".join(part for part in parts if part) or None


def parse(obj: ObjectLayout, entity: EntityKind, raw: Mapping[str, Any]) -> Record | RecordError:
    """The canonical record of ``raw``, or why one of its values has no canonical form."""
    record_id = str(raw["Id"])
    fields: dict[str, Scalar] = {}
    for name in obj.carried(entity):
        if name == "name" and obj.split_name:
            fields[name] = joined_name(raw)
            continue
        plan = obj.plans[name]
        value = raw.get(plan.api)
        try:
            fields[name] = from_api(entity, plan, value)
        except NormalizationError as error:
            return RecordError(
                str(entity),
                "crm",
                record_id,
                f"{obj.sobject}.{plan.api}: {error.reason}",
                field=name,
                value=None if value is None else str(value),
            )
    return Record(entity, record_id, fields)


def payload(
    obj: ObjectLayout, entity: EntityKind, values: Mapping[str, Scalar], *, creating: bool
) -> dict[str, Any]:
    """The API fields for canonical ``values`` (those the org does not carry are dropped).

    Raises `ValidationFailed` naming every field refused.
    """
    schema = SCHEMAS[entity]
    carried = obj.carried(entity)
    out: dict[str, Any] = {}
    violations: list[Violation] = []
    for name, value in values.items():
        if name not in schema:
            violations.append(Violation(name, f"not a field of {entity}"))
            continue
        if name not in carried:
            continue
        if name == "name" and obj.split_name:
            first, last = split_name(None if value is None else str(value))
            if not last:
                violations.append(Violation(name, "Salesforce requires a contact's last name"))
                continue
            out["FirstName"], out["LastName"] = first, last
            continue
        plan = obj.plans[name]
        try:
            out[plan.api] = to_api(entity, plan, value)
        except NormalizationError as error:
            violations.append(Violation(name, error.reason))
    if creating and obj.kind is not None and obj.kind.present:
        out[obj.kind.api] = obj.layout.kind_label(entity)
    if violations:
        raise ValidationFailed(
            f"{entity} refused before sending to Salesforce: "
            + "; ".join(str(violation) for violation in violations),
            violations=tuple(violations),
            side="salesforce",
        )
    return out


def refusal(entity: EntityKind, record_id: str | None, result: Mapping[str, Any]) -> ConnectorError:
    """The error of one failed SaveResult, with Salesforce's statusCode and message."""
    errors = [e for e in result.get("errors") or [] if isinstance(e, Mapping)]
    codes = [str(e.get("statusCode", "")) for e in errors]
    said = "; ".join(f"{e.get('statusCode')}: {e.get('message')}" for e in errors) or "no detail"
    which = f"{entity} {record_id}" if record_id else f"new {entity}"
    message = f"{which} refused by Salesforce: {said}"
    if codes and all(code in NOT_FOUND_CODES for code in codes):
        return NotFound(message, status=404, detail=said, side="salesforce")
    violations = tuple(
        Violation(str(name), str(e.get("message", "")), str(e.get("statusCode", "")))
        for e in errors
        for name in (e.get("fields") or [""])
    )
    return ValidationFailed(message, violations=violations, detail=said, side="salesforce")
