"""The state of the fake Salesforce org: objects, records, the recycle bin and delete log,
sessions, the daily API allowance, and faults a test can inject."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["CUSTOM_FIELDS", "Org", "SaveError"]

_STANDARD: dict[str, dict[str, str]] = {
    "Account": {
        "Id": "id",
        "Name": "string",
        "BillingStreet": "textarea",
        "BillingCity": "string",
        "BillingPostalCode": "string",
        "BillingCountry": "string",
        "Phone": "phone",
        "Website": "url",
        "Type": "picklist",
        "AccountNumber": "string",
        "SystemModstamp": "datetime",
        "IsDeleted": "boolean",
    },
    "Contact": {
        "Id": "id",
        "FirstName": "string",
        "LastName": "string",
        "Email": "email",
        "Phone": "phone",
        "Title": "string",
        "AccountId": "reference",
        "SystemModstamp": "datetime",
        "IsDeleted": "boolean",
    },
    "ContentNote": {
        "Id": "id",
        "Title": "string",
        "Content": "base64",
        "SystemModstamp": "datetime",
    },
    "ContentDocumentLink": {
        "Id": "id",
        "ContentDocumentId": "reference",
        "LinkedEntityId": "reference",
        "ShareType": "picklist",
        "Visibility": "picklist",
        "SystemModstamp": "datetime",
    },
    "Note": {
        "Id": "id",
        "ParentId": "reference",
        "Title": "string",
        "Body": "textarea",
        "SystemModstamp": "datetime",
        "IsDeleted": "boolean",
    },
}
_PREFIX = {"Account": "001", "Contact": "003", "ContentNote": "069", "Note": "002"}
_PREFIX["ContentDocumentLink"] = "06A"
_REQUIRED: dict[str, tuple[str, ...]] = {
    "Account": ("Name",),
    "Contact": ("LastName",),
    "ContentNote": ("Title",),
}
_REQUIRED |= {"Note": ("Title", "ParentId"), "ContentDocumentLink": ("ContentDocumentId",)}
_READ_ONLY = {"Id", "SystemModstamp", "IsDeleted"}

CUSTOM_FIELDS: dict[str, dict[str, str]] = {
    "Account": {
        f"Flowtly_{name}__c": kind
        for name, kind in {
            "kind": "picklist",
            "currency": "string",
            "status": "string",
            "tin_type": "string",
            "tin": "string",
            "tin_country": "string",
            "vat_number": "string",
            "due_days": "double",
            "documents_language": "string",
            "invoice_comment": "string",
            "default_tax_rate": "double",
            "external_payment_customer_id": "string",
            "building_number": "string",
            "locale_number": "string",
            "address_country": "string",
            "logo_url": "url",
            "counterparty_type": "string",
            "require_attachment": "boolean",
            "cyclic": "boolean",
            "budget_neutral": "boolean",
        }.items()
    },
    "Contact": {"Flowtly_type__c": "string", "Flowtly_position__c": "double"},
}
"""Every custom field the connector's default mapping names."""


class SaveError(Exception):
    """One record refused: Salesforce's statusCode, message and fields."""

    def __init__(self, code: str, message: str, fields: Iterable[str] = ()) -> None:
        self.code = code
        self.fields = list(fields)
        super().__init__(message)

    def result(self) -> dict[str, Any]:
        return {
            "success": False,
            "errors": [{"statusCode": self.code, "message": str(self), "fields": self.fields}],
        }


@dataclass
class Org:
    """One org. ``custom`` names the custom fields it has (all by default)."""

    client_id: str = "fake-client-id"
    client_secret: str = "fake-client-secret"
    api_limit: int = 100_000
    api_used: int = 0
    country_picklists: bool = False
    custom: dict[str, set[str]] | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    bin: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Deleted records (``IsDeleted`` true) by id, as ``queryAll`` still shows them."""
    delete_log: list[tuple[str, str, datetime]] = field(default_factory=list)
    """(sobject, id, deletedDate) of every delete."""
    log_purged_until: datetime | None = None
    tokens: set[str] = field(default_factory=set)
    fail_next: int = 0
    """Answer that many API calls 503 before serving again."""
    refuse: Callable[[str, dict[str, Any]], SaveError | None] | None = None
    """A hook that refuses some writes (sobject, fields) with a SaveError."""
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    """(method, path with query, JSON body) of every API call, for tests."""
    token_requests: int = 0
    content: dict[str, bytes] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _tokens: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        if self.custom is None:
            self.custom = {name: set(fields) for name, fields in CUSTOM_FIELDS.items()}
        for sobject in _STANDARD:
            self.records.setdefault(sobject, {})

    # -- schema ------------------------------------------------------------------------

    def fields(self, sobject: str) -> dict[str, str]:
        if sobject not in _STANDARD:
            raise KeyError(sobject)
        found = dict(_STANDARD[sobject])
        assert self.custom is not None
        for name in self.custom.get(sobject, set()):
            found[name] = CUSTOM_FIELDS[sobject][name]
        if sobject == "Account" and self.country_picklists:
            found["BillingCountryCode"] = "picklist"
        return found

    def field_name(self, sobject: str, name: str) -> str | None:
        """The field's own spelling (API names are case-insensitive)."""
        for known in self.fields(sobject):
            if known.lower() == name.lower():
                return known
        return None

    # -- sessions ----------------------------------------------------------------------

    def issue_token(self) -> str:
        token = f"00Dfake!session{next(self._tokens):04d}"
        self.tokens.add(token)
        return token

    def expire_sessions(self) -> None:
        self.tokens.clear()

    # -- records -----------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    def new_id(self, sobject: str) -> str:
        return f"{_PREFIX[sobject]}{next(self._ids):012d}AAA"

    def sobject_of(self, record_id: str) -> str | None:
        for sobject, prefix in _PREFIX.items():
            if record_id.startswith(prefix) and record_id in self.records[sobject]:
                return sobject
        return None

    def _clean(self, sobject: str, values: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in values.items():
            if name == "attributes" or name.lower() == "id":
                continue
            known = self.field_name(sobject, name)
            if known is None or known in _READ_ONLY:
                raise SaveError(
                    "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}"
                )
            kind = self.fields(sobject)[known]
            if isinstance(value, str) and kind in ("string", "phone", "url") and len(value) > 255:
                raise SaveError(
                    "STRING_TOO_LONG", f"{known}: data value too large: {value[:20]}...", [known]
                )
            if kind == "email" and value and "@" not in str(value):
                raise SaveError("INVALID_EMAIL_ADDRESS", f"Email: invalid email address: {value}")
            if known == "Flowtly_kind__c" and value not in (None, "client", "supplier"):
                raise SaveError(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{known}: bad value for restricted picklist field: {value}",
                    [known],
                )
            if kind == "reference" and value and self.sobject_of(str(value)) is None:
                raise SaveError(
                    "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {value}", [known]
                )
            out[known] = value
        return out

    def create(self, sobject: str, values: dict[str, Any]) -> str:
        fields = self._clean(sobject, values)
        if self.refuse is not None and (refused := self.refuse(sobject, fields)) is not None:
            raise refused
        for required in _REQUIRED.get(sobject, ()):
            if not fields.get(required):
                raise SaveError(
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{required}]",
                    [required],
                )
        record_id = self.new_id(sobject)
        row = dict.fromkeys(self.fields(sobject))
        if sobject == "ContentNote":
            self.content[record_id] = _base64(str(fields.pop("Content", "") or ""))
            fields["Content"] = None
        row.update(fields, Id=record_id, SystemModstamp=self.now(), IsDeleted=False)
        self.records[sobject][record_id] = row
        return record_id

    def _existing(self, record_id: str) -> str:
        """The sobject of a live record; a deleted or unknown one is refused as Salesforce does."""
        sobject = self.sobject_of(record_id)
        if sobject is not None:
            return sobject
        if record_id in self.bin:
            raise SaveError("ENTITY_IS_DELETED", "entity is deleted")
        raise SaveError("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {record_id}")

    def update(self, record_id: str, values: dict[str, Any]) -> None:
        sobject = self._existing(record_id)
        fields = self._clean(sobject, values)
        if self.refuse is not None and (refused := self.refuse(sobject, fields)) is not None:
            raise refused
        row = self.records[sobject][record_id]
        for required in _REQUIRED.get(sobject, ()):
            if required in fields and not fields[required]:
                raise SaveError(
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{required}]",
                    [required],
                )
        if sobject == "ContentNote" and "Content" in fields:
            self.content[record_id] = _base64(str(fields.pop("Content") or ""))
        row.update(fields, SystemModstamp=self.now())

    def delete(self, record_id: str) -> None:
        sobject = self._existing(record_id)
        row = self.records[sobject].pop(record_id)
        now = self.now()
        self.bin[record_id] = {**row, "IsDeleted": True, "SystemModstamp": now}
        self.delete_log.append((sobject, record_id, now))
        # Deleting an Account takes its Contacts, classic Notes and note links along.
        if sobject == "Account":
            for child, key in (("Contact", "AccountId"), ("Note", "ParentId")):
                for child_id in [
                    i for i, r in self.records[child].items() if r.get(key) == record_id
                ]:
                    self.delete(child_id)
            links = self.records["ContentDocumentLink"]
            for link_id in [i for i, r in links.items() if r["LinkedEntityId"] == record_id]:
                del links[link_id]

    def rows(self, sobject: str, *, deleted: bool = False) -> list[dict[str, Any]]:
        rows = list(self.records[sobject].values())
        if deleted:
            rows += [row for row in self.bin.values() if row["Id"].startswith(_PREFIX[sobject])]
        return rows

    def earliest_deleted(self) -> datetime:
        floor = self.now() - timedelta(days=15)
        return max(floor, self.log_purged_until) if self.log_purged_until else floor


def _base64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))
