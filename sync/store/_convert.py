"""Table rows to the frozen row values `Store` returns."""

from __future__ import annotations

from sqlalchemy.engine import Row

from sync.errors import StoreError
from sync.model import EntityKind, Scalar, Side
from sync.store._json import decode_object, decode_scalar, decode_value
from sync.store.rows import (
    ConflictResolution,
    ConflictRow,
    EventOutcome,
    IntentRow,
    JSONValue,
    RecordedChange,
    RejectionRow,
    RunEventRow,
    RunOutcome,
    RunRow,
)

__all__ = ["to_conflict", "to_event", "to_intent", "to_rejection", "to_run"]


def to_intent(row: Row[tuple[object, ...]]) -> IntentRow:
    m = row._mapping
    return IntentRow(
        id=m["id"],
        sync=m["sync"],
        entity=EntityKind(m["entity"]),
        target=Side(m["target"]),
        source_id=m["source_id"],
        natural_key=m["natural_key"],
        payload_fp=m["payload_fp"],
        run_id=m["run_id"],
        created_at=m["created_at"],
    )


def to_conflict(row: Row[tuple[object, ...]]) -> ConflictRow:
    m = row._mapping
    resolution = m["resolution"]
    resolved_value = m["resolved_value"]
    return ConflictRow(
        id=m["id"],
        sync=m["sync"],
        entity=EntityKind(m["entity"]),
        crm_id=m["crm_id"],
        flowtly_id=m["flowtly_id"],
        field=m["field"],
        base_value=decode_scalar(m["base_value"]),
        crm_value=decode_scalar(m["crm_value"]),
        flowtly_value=decode_scalar(m["flowtly_value"]),
        detected_at=m["detected_at"],
        resolved_at=m["resolved_at"],
        resolution=ConflictResolution(resolution) if resolution is not None else None,
        resolved_value=decode_scalar(resolved_value) if resolved_value is not None else None,
        resolved_by=m["resolved_by"],
    )


def to_rejection(row: Row[tuple[object, ...]]) -> RejectionRow:
    m = row._mapping
    return RejectionRow(
        id=m["id"],
        sync=m["sync"],
        entity=EntityKind(m["entity"]),
        side=Side(m["side"]),
        record_id=m["record_id"],
        field=m["field"],
        value=m["value"],
        reason=m["reason"],
        source_fp=m["source_fp"],
        detected_at=m["detected_at"],
    )


def to_run(row: Row[tuple[object, ...]]) -> RunRow:
    m = row._mapping
    return RunRow(
        id=m["id"],
        sync=m["sync"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        dry_run=bool(m["dry_run"]),
        outcome=RunOutcome(m["outcome"]),
        summary=decode_object(m["summary"]),
        error=m["error"],
        host=m["host"],
        pid=m["pid"],
    )


def _scalar(value: JSONValue) -> Scalar:
    if value is None or isinstance(value, str | int | bool):
        return value
    raise StoreError(f"stored change value is not a scalar: {value!r}"[:120])


def _changes(text: str) -> tuple[RecordedChange, ...]:
    raw = decode_value(text)
    if not isinstance(raw, list):
        raise StoreError(f"stored changes are not a list: {text[:80]!r}")
    changes = []
    for item in raw:
        field = item.get("field") if isinstance(item, dict) else None
        if not isinstance(item, dict) or not isinstance(field, str):
            raise StoreError(f"stored change is malformed: {item!r}"[:120])
        changes.append(RecordedChange(field, _scalar(item.get("old")), _scalar(item.get("new"))))
    return tuple(changes)


def to_event(row: Row[tuple[object, ...]]) -> RunEventRow:
    m = row._mapping
    target = m["target"]
    return RunEventRow(
        id=m["id"],
        run_id=m["run_id"],
        at=m["at"],
        entity=EntityKind(m["entity"]),
        action=m["action"],
        target=Side(target) if target is not None else None,
        crm_id=m["crm_id"],
        flowtly_id=m["flowtly_id"],
        outcome=EventOutcome(m["outcome"]),
        changes=_changes(m["changes"]),
        message=m["message"],
    )
