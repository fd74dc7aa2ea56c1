"""A company's notes: enhanced notes (``ContentNote``) or classic ``Note`` records.

A ``ContentNote`` holds a ``Title`` and its ``Content`` (base64 of escaped text when
written; read back through the content URL its ``Content`` field names) and belongs to
an Account through a ``ContentDocumentLink``. A classic ``Note`` has ``ParentId``,
``Title`` and ``Body``. Either way the canonical note carries ``company_id`` and
``body``; the title is the body's first line. Neither object lets a note move to another
company, so such a change is refused per record.
"""

from __future__ import annotations

import asyncio
import base64
import html
from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from typing import Any

from connectors.salesforce._api import COLLECTION_SIZE, SalesforceApi
from connectors.salesforce._soql import select
from sync.errors import ValidationFailed, Violation
from sync.model import EntityKind, Record

__all__ = ["ACCOUNT_PREFIX", "NoteObject"]

ACCOUNT_PREFIX = "001"
"""The key prefix of Account ids."""

_TITLE_LENGTH = {"ContentNote": 255, "Note": 80}
NOTE = EntityKind.NOTE


class _Text(HTMLParser):
    """The text of a note's HTML (paragraphs and breaks as new lines)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("p", "div", "li"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def note_text(content: bytes) -> str:
    """A ContentNote's content as plain text."""
    parser = _Text()
    parser.feed(content.decode("utf-8", errors="replace"))
    parser.close()
    return "".join(parser.parts).strip()


def title_of(body: str, sobject: str) -> str:
    first = body.strip().splitlines()[0] if body.strip() else "Note"
    return first[: _TITLE_LENGTH[sobject]].strip() or "Note"


class NoteObject:
    """Reads and writes notes of one kind (``ContentNote`` or ``Note``)."""

    def __init__(self, api: SalesforceApi, sobject: str) -> None:
        self.api = api
        self.sobject = sobject
        self.content = sobject == "ContentNote"

    def select(self) -> list[str]:
        if self.content:
            return ["Id", "Title", "Content", "SystemModstamp"]
        return ["Id", "ParentId", "Title", "Body", "SystemModstamp"]

    async def records(self, raws: Sequence[Mapping[str, Any]]) -> list[Record]:
        """The canonical notes of one page of query rows (notes of no Account left out)."""
        if not self.content:
            return [
                Record(NOTE, str(r["Id"]), {"company_id": r.get("ParentId"), "body": _body(r)})
                for r in raws
                if str(r.get("ParentId") or "").startswith(ACCOUNT_PREFIX)
            ]
        ids = [str(r["Id"]) for r in raws]
        owners = await self._accounts(ids)
        linked = [r for r in raws if str(r["Id"]) in owners]
        bodies = await asyncio.gather(*(self._content(r) for r in linked))
        return [
            Record(NOTE, str(r["Id"]), {"company_id": owners[str(r["Id"])], "body": body or None})
            for r, body in zip(linked, bodies, strict=True)
        ]

    async def _accounts(self, ids: Sequence[str]) -> dict[str, str]:
        """Note id -> the Account it is linked to."""
        found: dict[str, str] = {}
        for start in range(0, len(ids), COLLECTION_SIZE):
            soql = select(
                ["ContentDocumentId", "LinkedEntityId"],
                "ContentDocumentLink",
                ids=ids[start : start + COLLECTION_SIZE],
                id_field="ContentDocumentId",
                ordered=False,
            )
            async for link in self.api.query_all(soql):
                entity = str(link.get("LinkedEntityId") or "")
                if entity.startswith(ACCOUNT_PREFIX):
                    found.setdefault(str(link.get("ContentDocumentId")), entity)
        return found

    async def _content(self, raw: Mapping[str, Any]) -> str:
        url = raw.get("Content")
        if not isinstance(url, str) or not url:
            return ""
        return note_text(await self.api.content(url))

    def fields_for(self, values: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
        """The API fields of a note's ``body`` (and, classic, its parent on create)."""
        body = str(values.get("body") or "")
        out: dict[str, Any] = {"Title": title_of(body, self.sobject)}
        if self.content:
            out["Content"] = base64.b64encode(html.escape(body).encode("utf-8")).decode("ascii")
        else:
            out["Body"] = body
        if creating and not self.content:
            out["ParentId"] = values.get("company_id")
        return out

    def check_move(self, current: Record | None, values: Mapping[str, Any]) -> None:
        """Refuse a change of ``company_id``: Salesforce notes cannot move."""
        if "company_id" not in values or current is None:
            return
        if values["company_id"] != current.get("company_id"):
            raise ValidationFailed(
                f"note {current.id}: a Salesforce {self.sobject} cannot move to another company",
                violations=(Violation("company_id", "cannot move to another company"),),
                side="salesforce",
            )

    def link(self, note_id: str, company_id: str) -> dict[str, Any]:
        """The ContentDocumentLink that puts a ContentNote under an Account."""
        return {
            "attributes": {"type": "ContentDocumentLink"},
            "ContentDocumentId": note_id,
            "LinkedEntityId": company_id,
            "ShareType": "V",
            "Visibility": "AllUsers",
        }


def _body(raw: Mapping[str, Any]) -> str | None:
    body = raw.get("Body")
    return str(body).strip() or None if body is not None else None
