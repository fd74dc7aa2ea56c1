"""Client documents as Flowtly lists them (``GET /clients/{id}/documents``).

Flowtly has not published the shape of a client document; we assume the fields in
`sync.flowtly.assumptions.DOCUMENT_FIELDS`. `parse_document` turns one raw item into a
`ClientDocument`, tolerantly: a value it cannot read becomes None rather than failing the
caller (the documents summary of `sync.extras.documents`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sync.flowtly.refs import Refs, UnknownReference, id_of

__all__ = ["ClientDocument", "parse_document"]


@dataclass(frozen=True, slots=True)
class ClientDocument:
    """One document (invoice, correction, ...) issued to a client."""

    id: str
    type: str | None = None
    number: str | None = None
    issue_date: date | None = None
    currency: str | None = None
    """ISO 4217 code when Flowtly's value could be resolved, else its raw text."""
    total_gross: Decimal | None = None
    status: str | None = None


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        pass
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _amount(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _currency(value: Any, refs: Refs | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and len(value.strip()) == 3 and value.strip().isalpha():
        return value.strip().upper()
    if refs is not None and refs.loaded:
        try:
            return refs.currency_code(value, "currency")
        except UnknownReference:
            pass
    try:
        return id_of(value)
    except ValueError:
        return None


def parse_document(item: Mapping[str, Any], refs: Refs | None = None) -> ClientDocument:
    """A document from one raw Flowtly item; unreadable values become None.

    ``currency`` may be an ISO code, a ``/currencies/N`` IRI or an embedded object; IRIs
    are resolved through ``refs`` when their tables are loaded.
    """
    try:
        ident = id_of(item.get("id")) or id_of(item.get("@id")) or "?"
    except ValueError:
        ident = "?"
    return ClientDocument(
        id=ident,
        type=_text(item.get("type")),
        number=_text(item.get("number")),
        issue_date=_date(item.get("issueDate")),
        currency=_currency(item.get("currency"), refs),
        total_gross=_amount(item.get("totalGross")),
        status=_text(item.get("status")),
    )
