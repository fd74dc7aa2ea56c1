"""The state of the Pipedrive fake: organizations, persons, notes, field definitions, the
change log ``/v1/recents`` reads, and a logical clock that ticks one second per write
(Pipedrive's timestamps have whole seconds, so each write is told apart).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["Change", "FakeState", "v1_stamp", "v2_stamp"]

START = datetime(2025, 1, 1, tzinfo=UTC)


def v2_stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def v1_stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True, slots=True)
class Change:
    """One write, as ``/v1/recents`` reports it."""

    at: datetime
    item: str
    id: int


def _system_field(code: str, name: str, kind: str) -> dict[str, Any]:
    return {
        "field_code": code,
        "field_name": name,
        "field_type": kind,
        "options": None,
        "subfields": None,
        "is_custom_field": False,
        "is_optional_response_field": False,
    }


@dataclass
class FakeState:
    """Everything the fake holds (items keyed by id, in Pipedrive's v2 / v1 shapes)."""

    organizations: dict[int, dict[str, Any]] = field(default_factory=dict)
    persons: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: dict[int, dict[str, Any]] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    now: datetime = START
    next_id: int = 1
    fields: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {
            "organization": [
                _system_field("name", "Name", "varchar"),
                _system_field("address", "Address", "address"),
                _system_field("website", "Website", "varchar"),
            ],
            "person": [
                _system_field("name", "Name", "varchar"),
                _system_field("emails", "Email", "varchar"),
                _system_field("phones", "Phone", "phone"),
                _system_field("job_title", "Job title", "varchar"),
            ],
        }
    )

    elapsed: Callable[[], float] = lambda: 0.0
    """Seconds the fake has been up: its clock runs on between writes, like a server's."""

    writes: int = 0

    def current(self) -> datetime:
        """The fake's time now: a second on per write, and on with ``elapsed``."""
        self.now = START + timedelta(seconds=self.writes + self.elapsed())
        return self.now

    def tick(self) -> datetime:
        """The time of a new write: a second after the last one at least."""
        self.writes += 1
        return self.current()

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def collection(self, item: str) -> dict[int, dict[str, Any]]:
        return {"organization": self.organizations, "person": self.persons, "note": self.notes}[
            item
        ]

    def record(self, item: str, record_id: int) -> None:
        self.changes.append(Change(self.now, item, record_id))

    def put(self, item: str, **values: Any) -> int:
        """An item put straight into the account, as a user of Pipedrive's UI makes one."""
        record_id = self.new_id()
        moment = self.tick()
        base: dict[str, Any] = {"id": record_id}
        if item == "note":
            stamp = v1_stamp(moment)
            base.update(add_time=stamp, update_time=stamp, active_flag=True)
        else:
            stamp = v2_stamp(moment)
            base.update(add_time=stamp, update_time=stamp, is_deleted=False)
            base["custom_fields"] = dict.fromkeys(self.custom_codes(item))
            base["custom_fields"].update(values.pop("custom_fields", {}))
        self.collection(item)[record_id] = {**base, **values}
        self.record(item, record_id)
        return record_id

    def add_field(self, entity: str, name: str, kind: str, options: list[str]) -> dict[str, Any]:
        code = hashlib.sha1(f"{entity}:{name}".encode()).hexdigest()  # noqa: S324 - an id, not a secret
        definition = {
            **_system_field(code, name, kind),
            "is_custom_field": True,
            "options": [{"id": n, "label": label} for n, label in enumerate(options, 1)]
            if options
            else None,
        }
        self.fields[entity].append(definition)
        for item in self.collection(entity).values():
            item.setdefault("custom_fields", {})[code] = None
        return definition

    def custom_codes(self, entity: str) -> list[str]:
        return [f["field_code"] for f in self.fields[entity] if f["is_custom_field"]]

    def field_code(self, entity: str, name: str) -> str | None:
        for definition in self.fields[entity]:
            if definition["field_name"] == name:
                return str(definition["field_code"])
        return None

    def option_id(self, entity: str, name: str, label: str) -> int | None:
        for definition in self.fields[entity]:
            if definition["field_name"] == name:
                for option in definition["options"] or ():
                    if option["label"] == label:
                        return int(option["id"])
        return None


def without_nulls(item: Mapping[str, Any], nullable: frozenset[str]) -> dict[str, Any]:
    """``item`` as the spec allows it: properties that are not nullable are left out when
    empty (the spec documents them as strings or integers, never null)."""
    return {k: v for k, v in item.items() if v is not None or k in nullable}
