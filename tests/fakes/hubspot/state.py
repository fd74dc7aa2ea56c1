"""The state of the HubSpot fake: objects, properties, associations, the clock and limits.

It behaves the way HubSpot's CRM v3 API is documented to: property values are strings,
every write moves ``hs_lastmodifieddate`` (contacts also ``lastmodifieddate``), archived
objects leave listings and search, search sees a write only after ``search_delay``
seconds, one search query pages through 10,000 results at most, and requests count in a
rolling 10-second window, a search window of 5 per second and a daily budget.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["ASSOCIATION_NAMES", "FakeHubSpot", "HubObject", "Limits", "iso"]

OBJECT_TYPES = ("companies", "contacts", "notes")

_STANDARD_PROPERTIES: dict[str, list[tuple[str, str, str]]] = {
    "companies": [
        ("name", "string", "text"),
        ("domain", "string", "text"),
        ("website", "string", "text"),
        ("phone", "string", "phonenumber"),
        ("address", "string", "text"),
        ("city", "string", "text"),
        ("zip", "string", "text"),
        ("country", "string", "text"),
        ("type", "enumeration", "select"),
    ],
    "contacts": [
        ("firstname", "string", "text"),
        ("lastname", "string", "text"),
        ("email", "string", "text"),
        ("phone", "string", "phonenumber"),
        ("jobtitle", "string", "text"),
        ("lastmodifieddate", "datetime", "date"),
    ],
    "notes": [
        ("hs_note_body", "string", "html"),
        ("hs_timestamp", "datetime", "date"),
    ],
}
_COMMON = [
    ("hs_object_id", "number", "number"),
    ("createdate", "datetime", "date"),
    ("hs_lastmodifieddate", "datetime", "date"),
]
COMPANY_TYPES = ("PROSPECT", "PARTNER", "RESELLER", "VENDOR", "OTHER")

ASSOCIATION_NAMES: dict[tuple[str, int], str] = {
    ("contacts", 1): "contact_to_company",
    ("contacts", 279): "contact_to_company_unlabeled",
    ("notes", 190): "note_to_company",
}
"""Association type ids from contacts and notes to companies, as listings name them."""


def iso(moment: float) -> str:
    stamp = datetime.fromtimestamp(moment, UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class HubObject:
    id: str
    properties: dict[str, str]
    created: float
    updated: float
    archived: bool = False
    archived_at: float | None = None

    def payload(self, wanted: list[str] | None) -> dict[str, Any]:
        keys = {"hs_object_id", "createdate", "hs_lastmodifieddate", "lastmodifieddate"}
        if wanted is not None:
            keys |= set(wanted)
        properties = {k: v for k, v in self.properties.items() if wanted is None or k in keys}
        body: dict[str, Any] = {
            "id": self.id,
            "properties": properties,
            "createdAt": iso(self.created),
            "updatedAt": iso(self.updated),
            "archived": self.archived,
        }
        if self.archived_at is not None:
            body["archivedAt"] = iso(self.archived_at)
        return body


@dataclass
class Limits:
    """HubSpot's request limits, as a private app on a free portal has them by default."""

    per_window: int = 100
    window_seconds: float = 10.0
    search_per_second: int = 5
    daily: int = 250_000
    send_headers: bool = True


@dataclass
class FakeHubSpot:
    """One portal's data and counters (the app in `fakes.hubspot.app` serves it)."""

    token: str = "pat-fake-token"
    portal_id: int = 4242
    search_delay: float = 0.0
    validate: bool = True
    echo_trace_ids: bool = True
    """Whether batch/create results carry the input's ``objectWriteTraceId``."""
    """Check every answer against the official SDK's models (`fakes.hubspot.models`)."""
    clock: Callable[[], float] = time.time
    limits: Limits = field(default_factory=Limits)
    objects: dict[str, dict[str, HubObject]] = field(
        default_factory=lambda: {kind: {} for kind in OBJECT_TYPES}
    )
    properties: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    groups: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in OBJECT_TYPES})
    associations: dict[tuple[str, str], dict[str, set[int]]] = field(default_factory=dict)
    """(from type, from id) -> company id -> association type ids."""
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(method, path) of every request that was let through."""
    rejected_429: int = 0
    _next_id: int = 100
    _window: deque[float] = field(default_factory=deque)
    _search_window: deque[float] = field(default_factory=deque)
    _daily_used: int = 0

    def __post_init__(self) -> None:
        for kind in OBJECT_TYPES:
            defined = self.properties.setdefault(kind, {})
            for name, hs_type, field_type in _STANDARD_PROPERTIES[kind] + _COMMON:
                definition: dict[str, Any] = {
                    "name": name,
                    "label": name,
                    "type": hs_type,
                    "fieldType": field_type,
                    "groupName": f"{kind[:-1]}information",
                    "options": [],
                    "createdAt": iso(0),
                    "updatedAt": iso(0),
                    "hidden": False,
                    "formField": True,
                    "calculated": False,
                    "externalOptions": False,
                    "hasUniqueValue": False,
                    "displayOrder": 0,
                    "description": "",
                    "modificationMetadata": {
                        "archivable": True,
                        "readOnlyDefinition": True,
                        "readOnlyValue": name in ("hs_object_id", "createdate"),
                    },
                }
                if name == "type":
                    definition["options"] = [
                        {"label": v.title(), "value": v, "displayOrder": i, "hidden": False}
                        for i, v in enumerate(COMPANY_TYPES)
                    ]
                defined[name] = definition

    # -- limits ------------------------------------------------------------------------

    def admit(self, search: bool) -> dict[str, Any] | None:
        """Count a request; the 429 body when a limit refuses it."""
        now = self.clock()
        limits = self.limits
        if self._daily_used >= limits.daily:
            self.rejected_429 += 1
            return {
                "status": "error",
                "message": "You have reached your daily limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": "3c1f0e8e-0000-4000-8000-000000000001",
                "policyName": "DAILY",
            }
        while self._window and self._window[0] <= now - limits.window_seconds:
            self._window.popleft()
        while self._search_window and self._search_window[0] <= now - 1.0:
            self._search_window.popleft()
        if len(self._window) >= limits.per_window:
            self.rejected_429 += 1
            return {
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": "3c1f0e8e-0000-4000-8000-000000000002",
                "policyName": "TEN_SECONDLY_ROLLING",
            }
        if search and len(self._search_window) >= limits.search_per_second:
            self.rejected_429 += 1
            return {
                "status": "error",
                "message": "You have reached your secondly limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": "3c1f0e8e-0000-4000-8000-000000000003",
            }
        self._window.append(now)
        if search:
            self._search_window.append(now)
        self._daily_used += 1
        return None

    def limit_headers(self) -> dict[str, str]:
        limits = self.limits
        return {
            "X-HubSpot-RateLimit-Max": str(limits.per_window),
            "X-HubSpot-RateLimit-Remaining": str(max(0, limits.per_window - len(self._window))),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(limits.window_seconds * 1000)),
            "X-HubSpot-RateLimit-Daily": str(limits.daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, limits.daily - self._daily_used)),
        }

    # -- objects -----------------------------------------------------------------------

    def new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def stamp(self, kind: str, obj: HubObject) -> None:
        now = self.clock()
        obj.updated = now
        obj.properties["hs_lastmodifieddate"] = iso(now)
        if kind == "contacts":
            obj.properties["lastmodifieddate"] = iso(now)

    def create(self, kind: str, properties: dict[str, str]) -> HubObject:
        now = self.clock()
        object_id = self.new_id()
        values = {k: v for k, v in properties.items() if v != ""}
        values |= {"hs_object_id": object_id, "createdate": iso(now)}
        obj = HubObject(object_id, values, now, now)
        self.stamp(kind, obj)
        self.objects[kind][object_id] = obj
        return obj

    def taken_email(self, kind: str, inputs: list[dict[str, Any]]) -> str | None:
        """The id of a contact already holding an e-mail one of ``inputs`` asks for
        (HubSpot keeps contacts' e-mails unique and refuses the whole batch)."""
        if kind != "contacts":
            return None
        held = {
            o.properties["email"].lower(): o.id
            for o in self.objects[kind].values()
            if not o.archived and o.properties.get("email")
        }
        for item in inputs:
            email = str(item.get("properties", {}).get("email") or "").lower()
            if email and email in held:
                return held[email]
            if email:
                held[email] = "(this batch)"
        return None

    def live(self, kind: str, object_id: str) -> HubObject | None:
        obj = self.objects[kind].get(object_id)
        return obj if obj is not None and not obj.archived else None

    def invalid(self, kind: str, properties: dict[str, Any]) -> list[dict[str, Any]]:
        """HubSpot's complaints about property values, one error per bad property."""
        problems: list[dict[str, Any]] = []
        for name, value in properties.items():
            definition = self.properties[kind].get(name)
            if definition is None:
                problems.append(
                    {
                        "message": f'Property "{name}" does not exist',
                        "code": "PROPERTY_DOESNT_EXIST",
                        "context": {"propertyName": [name]},
                    }
                )
            elif not isinstance(value, str):
                problems.append(
                    {
                        "message": f"{value!r} is not a string",
                        "code": "INVALID_STRING",
                        "context": {"propertyName": [name]},
                    }
                )
            elif (
                definition["options"]
                and value
                and value not in {option["value"] for option in definition["options"]}
            ):
                problems.append(
                    {
                        "message": f"{value} was not one of the allowed options",
                        "code": "INVALID_OPTION",
                        "context": {"propertyName": [name]},
                    }
                )
            elif definition["type"] == "number" and value:
                try:
                    float(value)
                except ValueError:
                    problems.append(
                        {
                            "message": f"{value} is not a valid number",
                            "code": "INVALID_FLOAT",
                            "context": {"propertyName": [name]},
                        }
                    )
        return problems

    def associate(self, kind: str, object_id: str, company_id: str, type_id: int) -> None:
        types = self.associations.setdefault((kind, object_id), {}).setdefault(company_id, set())
        types.add(type_id)
        if kind == "contacts" and type_id == 1:
            types.add(279)  # a primary contact-company association comes with the unlabeled one

    def companies_of(self, kind: str, object_id: str) -> dict[str, list[int]]:
        found = self.associations.get((kind, object_id), {})
        return {
            company: sorted(types)
            for company, types in sorted(found.items())
            if self.live("companies", company)
        }

    def dissociate(self, kind: str, object_id: str, company_id: str) -> None:
        self.associations.get((kind, object_id), {}).pop(company_id, None)
