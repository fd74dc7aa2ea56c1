"""Everything we assume about Flowtly that its published reference does not establish.

Flowtly publishes the shape of Client, ClientContact, ClientNote and Counterparty and runs
API Platform, but not enum values, auth details, the reference collections, or the
payloads of its custom operations. The sandbox serves exactly these assumptions, the
client and the resource mappers rely on them, and ``flowtly-sync check`` probes each one
(read-only) against the configured API. When the real API disagrees, correct it here.

See ``flowtly-wire.md`` (sections 1.9 and 5) for the evidence behind each entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = [
    "ARCHIVED_CLIENT_STATUS",
    "ASSUMPTIONS",
    "AUTH_HEADER",
    "CLIENT_REQUIRED",
    "CLIENT_SEARCH_PARAM",
    "CONTACT_REQUIRED",
    "COUNTERPARTY_CREATE_PATH",
    "COUNTERPARTY_EXTRA_FIELDS",
    "COUNTERPARTY_REQUIRED",
    "COUNTERPARTY_TYPES",
    "DEFAULT_ITEMS_PER_PAGE",
    "DOCUMENT_FIELDS",
    "EMPLOYEE_FIELDS",
    "EMPLOYEE_ORGANIZATION_FIELD",
    "ENRICH_BATCH_KEY",
    "FREE_ENUMS",
    "ID_ORDER_PARAM",
    "MAX_ITEMS_PER_PAGE",
    "MERGE_SOURCES_KEY",
    "NOTE_REQUIRED",
    "ORDERED_COLLECTIONS",
    "ORDER_PARAM",
    "ORGANIZATION_FIELDS",
    "REFERENCE_CODE_FIELD",
    "UPDATED_AFTER_PARAM",
    "UPDATED_AT",
    "UPDATED_AT_COLLECTIONS",
    "WEBHOOK_FIELDS",
    "Assumption",
    "Probe",
]

AUTH_HEADER: Final = "Authorization"
"""Tokens travel as ``Authorization: Bearer <token>``; 401 without one."""

DEFAULT_ITEMS_PER_PAGE: Final = 30
MAX_ITEMS_PER_PAGE: Final = 30
"""``itemsPerPage`` is honoured and silently clamped to 30 (API Platform >= 4.2.10)."""

ORDER_PARAM: Final = "order"
ID_ORDER_PARAM: Final = f"{ORDER_PARAM}[id]"
ORDERED_COLLECTIONS: Final = ("/clients", "/client-contacts", "/counterparties")
"""Collections take API Platform's OrderFilter on ``id`` (``order[id]=asc|desc``, any
case; other values ignored). Complete listings send ``asc`` so that pages read
concurrently all slice one stable order; ``check`` probes the collections listed here,
whose numeric ids show the order (notes have UUIDs)."""

REFERENCE_CODE_FIELD: Final = "code"
"""``/countries`` and ``/currencies`` items have numeric ids and an ISO ``code`` field
(alpha-2 for countries, ISO 4217 for currencies): clients resolve codes to IRIs."""

EMPLOYEE_ORGANIZATION_FIELD: Final = "organization"
EMPLOYEE_FIELDS: Final = ("id", "firstName", "lastName", "email", EMPLOYEE_ORGANIZATION_FIELD)
"""``/employees`` items and ``/employees/me`` (the employee behind the token)."""

ORGANIZATION_FIELDS: Final = ("id", "name")
"""An employee's ``organization`` is the IRI of the Flowtly account (organization) it
belongs to, ``/organizations/{id}`` (``GET /organizations/{id}`` is published; the id's
format is not, so it is kept as opaque text). It tells one account from another, which
binds a store to the account its links were made in."""

CLIENT_REQUIRED: Final = ("country", "currency", "status", "name", "tinType")
CONTACT_REQUIRED: Final = ("type", "email", "name")
NOTE_REQUIRED: Final = ("client", "employee", "note")
COUNTERPARTY_REQUIRED: Final = ("type", "displayName")
"""Required properties in API Platform's declaration order (violations come in this order)."""

FREE_ENUMS: Final = MappingProxyType(
    {
        "Client.status": "active",
        "Client.tinType": "vat",
        "Client.documentsLanguage": "en",
        "ClientContact.type": "main",
        "Counterparty.type": "supplier",
    }
)
"""Enums Flowtly has not published: any non-blank string is accepted. Values are the
defaults we send when a record has none and the configuration names none."""

ARCHIVED_CLIENT_STATUS: Final = "archived"
"""Clients cannot be deleted (no DELETE route); setting this status archives one."""

COUNTERPARTY_CREATE_PATH: Final = "/counterparty"
COUNTERPARTY_TYPES: Final = ("supplier", "counterparty")
"""``POST /counterparty`` creates a supplier or a counterparty by ``type`` and answers 201
with the Counterparty item; ``PATCH /counterparty/{id}`` is merge-patch on the same item."""

COUNTERPARTY_EXTRA_FIELDS: Final = ("name", "vatNumber", "tin", "country")
"""Counterparty properties beyond the published ones that we assume exist (``country`` an
IRI), so suppliers can be matched by tax id and country like clients."""

CLIENT_SEARCH_PARAM: Final = "query"
"""``GET /clients/search?query=X`` returns clients whose name contains X (case-insensitive)
or whose vatNumber or tin equals X (compact form); at least 3 characters, else 400."""

DOCUMENT_FIELDS: Final = ("id", "type", "number", "issueDate", "currency", "totalGross", "status")
"""``GET /clients/{id}/documents`` is a Hydra collection of ClientDocument items."""

MERGE_SOURCES_KEY: Final = "counterparties"
"""``POST /counterparties/{id}/merge`` with ``{"counterparties": [IRI, ...]}`` merges the
listed counterparties into ``{id}``, deletes them, and answers 200 with the kept item."""

ENRICH_BATCH_KEY: Final = "counterparties"
"""``POST /counterparties/enrich-branding-ai`` with ``{"counterparties": [IRI, ...]}`` and
``POST /counterparties/{id}/enrich-branding-ai`` (empty body) answer 202 and later fill
``logoUrl``/``corporateWebsiteUrl``."""

UPDATED_AT: Final = "updatedAt"
UPDATED_AFTER_PARAM: Final = f"{UPDATED_AT}[after]"
UPDATED_AT_COLLECTIONS: Final = ("/client-contacts", "/client-notes")
"""Collections whose items carry ``updatedAt`` (published for ClientContact and ClientNote;
Client and Counterparty publish no timestamps) and which take API Platform's DateFilter on
it: ``updatedAt[after]=<RFC 3339>`` (inclusive) lists only what changed since then."""

WEBHOOK_FIELDS: Final = ("url", "events", "secret", "active")
"""A webhook subscription: target URL, event names, a signing secret, an active flag."""


class Probe(StrEnum):
    """How ``flowtly-sync check`` verifies an assumption without writing anything."""

    AUTH = "auth"
    PAGINATION = "pagination"
    ID_ORDER = "id_order"
    REFERENCES = "references"
    EMPLOYEE_ME = "employee_me"
    EMPLOYEE_ORGANIZATION = "employee_organization"
    CLIENT_SHAPE = "client_shape"
    CLIENT_SEARCH = "client_search"
    COUNTERPARTY_SHAPE = "counterparty_shape"
    NOTE_ID = "note_id"
    DOCUMENTS = "documents"
    UPDATED_AT_FILTER = "updated_at_filter"
    WRITE_ONLY = "write_only"
    """Only a write could tell; ``check`` reports it as unverified rather than writing."""


@dataclass(frozen=True, slots=True)
class Assumption:
    """One statement about Flowtly we rely on but have not seen confirmed."""

    key: str
    statement: str
    probe: Probe


ASSUMPTIONS: Final[tuple[Assumption, ...]] = (
    Assumption("auth", "Bearer token in the Authorization header; 401 without it.", Probe.AUTH),
    Assumption(
        "pagination",
        "Hydra collections, unprefixed keys, 30 per page, itemsPerPage "
        "clamped to 30, next links in view.",
        Probe.PAGINATION,
    ),
    Assumption(
        "id_order",
        f"{', '.join(ORDERED_COLLECTIONS)} honour {ID_ORDER_PARAM}=asc|desc, so pages read "
        "at once hold one stable order.",
        Probe.ID_ORDER,
    ),
    Assumption(
        "references",
        "/countries and /currencies list numeric ids with an ISO 'code'.",
        Probe.REFERENCES,
    ),
    Assumption(
        "employee_me", "/employees/me returns the employee behind the token.", Probe.EMPLOYEE_ME
    ),
    Assumption(
        "employee_organization",
        f"/employees/me names the account as '{EMPLOYEE_ORGANIZATION_FIELD}', "
        "an /organizations/{id} IRI.",
        Probe.EMPLOYEE_ORGANIZATION,
    ),
    Assumption(
        "client_shape",
        "Client items carry country/currency as IRIs and embed clientContacts.",
        Probe.CLIENT_SHAPE,
    ),
    Assumption(
        "client_search",
        f"/clients/search takes '{CLIENT_SEARCH_PARAM}' (name substring, or exact VAT/TIN).",
        Probe.CLIENT_SEARCH,
    ),
    Assumption(
        "counterparty_shape",
        "Counterparty items carry displayName and type; "
        f"assumed extras: {', '.join(COUNTERPARTY_EXTRA_FIELDS)}.",
        Probe.COUNTERPARTY_SHAPE,
    ),
    Assumption("note_id", "ClientNote ids are strings (UUIDs).", Probe.NOTE_ID),
    Assumption(
        "documents",
        "/clients/{id}/documents is a Hydra collection of documents "
        f"({', '.join(DOCUMENT_FIELDS)}).",
        Probe.DOCUMENTS,
    ),
    Assumption(
        "updated_at_filter",
        f"{', '.join(UPDATED_AT_COLLECTIONS)} filter by '{UPDATED_AFTER_PARAM}' "
        "(API Platform's DateFilter, inclusive).",
        Probe.UPDATED_AT_FILTER,
    ),
    Assumption(
        "free_enums",
        "Unpublished enums accept any non-blank string; defaults "
        + ", ".join(f"{k}={v}" for k, v in FREE_ENUMS.items())
        + ".",
        Probe.WRITE_ONLY,
    ),
    Assumption(
        "archive", f"A client is archived by status '{ARCHIVED_CLIENT_STATUS}'.", Probe.WRITE_ONLY
    ),
    Assumption(
        "counterparty_create",
        f"POST {COUNTERPARTY_CREATE_PATH} creates by type ({'/'.join(COUNTERPARTY_TYPES)}).",
        Probe.WRITE_ONLY,
    ),
    Assumption(
        "merge",
        f"POST /counterparties/{{id}}/merge takes '{MERGE_SOURCES_KEY}' IRIs.",
        Probe.WRITE_ONLY,
    ),
    Assumption(
        "enrich", "enrich-branding-ai answers 202 and fills logoUrl later.", Probe.WRITE_ONLY
    ),
    Assumption(
        "webhooks", f"Webhook subscriptions have {', '.join(WEBHOOK_FIELDS)}.", Probe.WRITE_ONLY
    ),
    Assumption("rate_limit", "429 answers carry Retry-After in seconds.", Probe.WRITE_ONLY),
)
