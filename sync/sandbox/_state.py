"""The sandbox's state: records, IRIs, writes with validation, and the seeding API."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC
from urllib.parse import urlsplit

import pycountry

from sync.flowtly import assumptions as a
from sync.sandbox._errors import Problem
from sync.sandbox._json import JsonObject, JsonValue
from sync.sandbox._rate_limit import FaultInjector, TokenBucket
from sync.sandbox._resources import (
    SPECS,
    Field,
    Resource,
    ResourceSpec,
    denormalize,
    validate,
)
from sync.sandbox._store import Page, SandboxDb, Where
from sync.sandbox.settings import SandboxSettings

__all__ = ["Sandbox"]

_ITEM_PATH = re.compile(r"^/([A-Za-z0-9_-]+)/([^/]+)$")
_ROUTABLE = frozenset(r.value for r in Resource if r is not Resource.DOCUMENTS)
_ORGANIZATION_META = "organization"
_EMPLOYEES = (
    ("Ada", "Lovelace", "ada.lovelace@example.com"),
    ("Grace", "Hopper", "grace.hopper@example.com"),
    ("Alan", "Turing", "alan.turing@example.com"),
)


class Sandbox:
    """Everything a running sandbox knows. Tests reach it as ``app.state.sandbox``."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.store = SandboxDb(settings.db)
        self.faults = FaultInjector(settings.fail_rate, settings.seed)
        self.bucket = (
            TokenBucket(settings.rate_limit, settings.monotonic) if settings.rate_limit else None
        )
        self._token_employees: dict[str, int] = {}
        self._seed_organization()
        self._seed_reference_data()

    # -- identifiers -------------------------------------------------------------------------

    def iri(self, resource: Resource, key: str | int) -> str:
        """The item IRI, e.g. ``/clients/42`` (with the base path, if any)."""
        return f"{self.settings.base_path}/{resource.value}/{key}"

    def collection_iri(self, resource: Resource) -> str:
        """The collection IRI, e.g. ``/clients``."""
        return f"{self.settings.base_path}/{resource.value}"

    def context(self, short_name: str) -> str:
        """The ``@context`` IRI of a resource."""
        return f"{self.settings.base_path}/contexts/{short_name}"

    @staticmethod
    def normal_key(spec: ResourceSpec, raw: str) -> str | None:
        """The stored key for an id taken from a URL, or None if it cannot be an id."""
        if spec.string_id:
            return raw
        if raw.isascii() and raw.isdigit():
            return str(int(raw))
        return None

    def resolve(self, spec_field: Field, value: str) -> str:
        """Check an IRI written to ``spec_field``; return it in canonical form."""
        path = urlsplit(value).path if "://" in value else value.partition("?")[0]
        base = self.settings.base_path
        match = _ITEM_PATH.match(path[len(base) :]) if path.startswith(base) else None
        if match is None or (spec_field.target is not None and match[1] not in _ROUTABLE):
            raise Problem(400, f'Invalid IRI "{value}".')
        if spec_field.target is None:
            return path
        if match[1] != spec_field.target.value:
            raise Problem(400, f'Invalid IRI "{value}".')
        key = self.normal_key(SPECS[spec_field.target], match[2])
        if key is None or self.store.get(spec_field.target.value, key) is None:
            raise Problem(400, f'Item not found for "{value}".')
        return self.iri(spec_field.target, key)

    def _now(self) -> str:
        moment = self.settings.clock()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).replace(microsecond=0).isoformat()

    def _new_key(self, spec: ResourceSpec, seq: int) -> str:
        if not spec.string_id:
            return str(seq)
        if self.settings.seed is None:
            return str(uuid.uuid4())
        # Derived from (seed, sequence) so ids are reproducible and never repeat after a restart.
        draw = random.Random(f"{spec.resource.value}:{self.settings.seed}:{seq}")  # noqa: S311
        return str(uuid.UUID(int=draw.getrandbits(128), version=4))

    def _parent(self, spec: ResourceSpec, record: Mapping[str, JsonValue]) -> int | None:
        if spec.parent is None:
            return None
        value = record.get(spec.parent)
        if not isinstance(value, str):
            return None
        tail = value.rsplit("/", 1)[-1]
        return int(tail) if tail.isdigit() else None

    # -- reads -------------------------------------------------------------------------------

    def find(self, resource: Resource, raw_key: str) -> JsonObject | None:
        """The stored record with this id, or None."""
        key = self.normal_key(SPECS[resource], raw_key)
        found = None if key is None else self.store.get(resource.value, key)
        return None if found is None else found[1]

    def require(self, resource: Resource, raw_key: str) -> tuple[int, str, JsonObject]:
        """``(seq, key, record)`` or a 404 Problem worded as API Platform words it."""
        key = self.normal_key(SPECS[resource], raw_key)
        if key is None:
            raise Problem(404, "Invalid identifier value or configuration.")
        found = self.store.get(resource.value, key)
        if found is None:
            raise Problem(404, "Not Found")
        return found[0], key, found[1]

    def page(
        self,
        resource: Resource,
        offset: int,
        limit: int | None,
        wheres: Sequence[Where] = (),
        *,
        descending: bool = False,
    ) -> Page:
        """A page of stored records, ordered by id (highest first if ``descending``)."""
        return self.store.page(resource.value, offset, limit, wheres, descending=descending)

    def records(self, resource: Resource) -> list[JsonObject]:
        """Every stored record of ``resource`` (raw, nulls absent), for tests and tools."""
        return self.store.page(resource.value, 0, None).items

    def render(
        self, resource: Resource, record: Mapping[str, JsonValue], *, context: bool = False
    ) -> JsonObject:
        """The JSON-LD form of one record (``@context`` only for a top-level item)."""
        return self.render_many(resource, [record], context=context)[0]

    def render_many(
        self,
        resource: Resource,
        records: Sequence[Mapping[str, JsonValue]],
        *,
        context: bool = False,
    ) -> list[JsonObject]:
        """JSON-LD forms of records; clients embed their contacts (one query per page)."""
        spec = SPECS[resource]
        contacts: dict[int, list[JsonObject]] = {}
        if resource is Resource.CLIENTS:
            ids = [i for r in records if isinstance(i := r.get("id"), int)]
            contacts = self.store.children(Resource.CONTACTS.value, ids)
        out: list[JsonObject] = []
        for record in records:
            doc: JsonObject = {"@context": self.context(spec.short_name)} if context else {}
            ident = record.get("id")
            doc["@id"] = self.iri(resource, str(ident))
            doc["@type"] = spec.short_name
            for spec_field in spec.fields:
                if spec_field.name == "clientContacts":
                    owned = contacts.get(ident, []) if isinstance(ident, int) else []
                    embedded: list[JsonValue] = list(self.render_many(Resource.CONTACTS, owned))
                    doc["clientContacts"] = embedded
                    continue
                value = record.get(spec_field.name)
                if spec_field.readable and value is not None:
                    doc[spec_field.name] = value
            out.append(doc)
        return out

    # -- writes ------------------------------------------------------------------------------

    def create(self, resource: Resource, body: JsonObject) -> JsonObject:
        """Validate and store a new record from a POST body; return the stored record."""
        spec = SPECS[resource]
        changes = denormalize(spec, body, self.resolve)
        record: JsonObject = {k: _copy(v) for k, v in spec.defaults.items()}
        record.update({k: v for k, v in changes.items() if v is not None})
        validate(spec, record)
        return self.insert(resource, record)

    def insert(self, resource: Resource, fields: Mapping[str, JsonValue]) -> JsonObject:
        """Store a new record as given (no validation): the seeding path."""
        spec = SPECS[resource]
        seq = self.store.next_seq(resource.value)
        key = self._new_key(spec, seq)
        record: JsonObject = {"id": key if spec.string_id else seq}
        record.update({k: v for k, v in fields.items() if v is not None and k != "id"})
        if spec.timestamps:
            record["createdAt"] = record["updatedAt"] = self._now()
        self.store.put(resource.value, seq, key, self._parent(spec, record), record)
        return record

    def update(self, resource: Resource, raw_key: str, body: JsonObject) -> JsonObject:
        """Apply a merge-patch body (RFC 7386: null clears) and validate the result."""
        spec = SPECS[resource]
        seq, key, record = self.require(resource, raw_key)
        for name, value in denormalize(spec, body, self.resolve).items():
            if value is None:
                record.pop(name, None)
            else:
                record[name] = value
        validate(spec, record)
        return self.replace(resource, seq, key, record)

    def replace(self, resource: Resource, seq: int, key: str, record: JsonObject) -> JsonObject:
        """Store ``record`` over the existing one, touching ``updatedAt``."""
        spec = SPECS[resource]
        if spec.timestamps:
            record["updatedAt"] = self._now()
        self.store.put(resource.value, seq, key, self._parent(spec, record), record)
        return record

    def remove(self, resource: Resource, raw_key: str) -> None:
        """Delete a record or raise a 404 Problem."""
        _seq, key, _record = self.require(resource, raw_key)
        self.store.delete(resource.value, key)

    # -- seeding and identity (Python API) ----------------------------------------------------

    def add_document(self, client_id: int, fields: Mapping[str, JsonValue]) -> JsonObject:
        """Seed a document of a client (there is no public POST for documents)."""
        if self.find(Resource.CLIENTS, str(client_id)) is None:
            raise KeyError(f"no client {client_id}")
        known = {k: v for k, v in fields.items() if k in a.DOCUMENT_FIELDS}
        return self.insert(
            Resource.DOCUMENTS, {**known, "client": self.iri(Resource.CLIENTS, client_id)}
        )

    def add_employee(self, first_name: str, last_name: str, email: str) -> JsonObject:
        """Seed an employee of this sandbox's organization."""
        return self.insert(
            Resource.EMPLOYEES,
            {
                "firstName": first_name,
                "lastName": last_name,
                "email": email,
                a.EMPLOYEE_ORGANIZATION_FIELD: self.organization_iri(),
            },
        )

    def organization_iri(self) -> str:
        """The IRI of the organization (the Flowtly account) this sandbox is.

        Each database is one account with an id of its own, so two sandboxes never look
        like the same account to a store bound to one of them.
        """
        key = self.store.meta(_ORGANIZATION_META)
        if key is None:
            raise RuntimeError("the sandbox organization is not seeded")
        return self.iri(Resource.ORGANIZATIONS, key)

    def add_webhook_log(self, fields: Mapping[str, JsonValue]) -> JsonObject:
        """Seed a webhook delivery log entry (url, event, statusCode, responseTime, response)."""
        return self.insert(Resource.WEBHOOK_LOGS, fields)

    def bind_token(self, token: str, employee_id: int) -> None:
        """Make ``/employees/me`` answer ``employee_id`` for requests bearing ``token``."""
        self._token_employees[token] = employee_id

    def me(self, token: str) -> JsonObject | None:
        """The employee behind ``token``: the bound one, else the first employee."""
        bound = self._token_employees.get(token)
        if bound is not None:
            return self.find(Resource.EMPLOYEES, str(bound))
        first = self.store.page(Resource.EMPLOYEES.value, 0, 1).items
        return first[0] if first else None

    def close(self) -> None:
        """Release the database."""
        self.store.close()

    def _seed_organization(self) -> None:
        # Databases seeded before organizations existed get theirs now, employees included.
        if self.store.meta(_ORGANIZATION_META) is not None:
            return
        organization = self.insert(Resource.ORGANIZATIONS, {"name": "Sandbox organization"})
        self.store.set_meta(_ORGANIZATION_META, str(organization["id"]))
        iri = self.organization_iri()
        for employee in self.records(Resource.EMPLOYEES):
            if a.EMPLOYEE_ORGANIZATION_FIELD not in employee:
                seq, key, record = self.require(Resource.EMPLOYEES, str(employee["id"]))
                record[a.EMPLOYEE_ORGANIZATION_FIELD] = iri
                self.replace(Resource.EMPLOYEES, seq, key, record)

    def _seed_reference_data(self) -> None:
        if self.store.meta("seeded") == "1":
            return
        code = a.REFERENCE_CODE_FIELD
        countries = sorted(pycountry.countries, key=lambda c: str(c.alpha_2))
        currencies = sorted(pycountry.currencies, key=lambda c: str(c.alpha_3))
        self.store.put_many(
            Resource.COUNTRIES.value,
            (
                (i, str(i), {"id": i, code: str(c.alpha_2), "name": str(c.name)})
                for i, c in enumerate(countries, 1)
            ),
        )
        self.store.put_many(
            Resource.CURRENCIES.value,
            (
                (i, str(i), {"id": i, code: str(c.alpha_3), "name": str(c.name)})
                for i, c in enumerate(currencies, 1)
            ),
        )
        for first, last, email in _EMPLOYEES:
            self.add_employee(first, last, email)
        self.store.set_meta("seeded", "1")


def _copy(value: JsonValue) -> JsonValue:
    return list(value) if isinstance(value, list) else value
