"""Pipedrive's two APIs over one kit client: v2 (organizations, persons, fields) with
cursor paging and v1 (notes, recents) with offset paging, both answering in the
``{"success": ..., "data": ..., "additional_data": ...}`` envelope.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

from connectors.http import ApiClient, Page, Paginator, QueryParams, Side, next_offset
from connectors.http.statuses import ErrorReader
from connectors.pipedrive._codec import item_id
from sync.errors import ApiError

__all__ = ["PIPEDRIVE", "PIPEDRIVE_ERRORS", "Listing", "PipedriveApi"]

PIPEDRIVE: Final = Side("pipedrive", "Pipedrive", "crm")


def _message(body: object) -> str | None:
    """What a Pipedrive error document says (``error``, then ``error_info``)."""
    if not isinstance(body, Mapping):
        return None
    said = [str(body[key]) for key in ("error", "error_info") if body.get(key)]
    return ": ".join(said) or None


PIPEDRIVE_ERRORS: Final = ErrorReader(message=_message)


def _id_of(member: Mapping[str, Any]) -> str | None:
    return item_id(member)


class Listing:
    """One paged listing as it is read: its members, then whether it was complete."""

    def __init__(self, paginator: Paginator[Any]) -> None:
        self._paginator = paginator

    def members(self) -> AsyncIterator[Mapping[str, Any]]:
        return self._paginator.members()

    @property
    def verdict(self) -> str | None:
        return self._paginator.verdict


class PipedriveApi:
    """The calls the connector makes (paths are under the company domain)."""

    def __init__(self, client: ApiClient, page_size: int) -> None:
        self.client = client
        self.page_size = page_size

    async def call(
        self, method: str, path: str, *, params: QueryParams | None = None, body: Any = None
    ) -> Any:
        """One call; its ``data`` (``success: false`` in a 2xx answer is an error)."""
        answer = await self.client.send(method, path, params=params, body=body)
        if not isinstance(answer, Mapping) or answer.get("success") is False:
            raise ApiError(
                f"{method} {path}: Pipedrive answered without success: "
                f"{_message(answer) or 'no detail'}",
                method=method,
                url=path,
                side=PIPEDRIVE.name,
            )
        return answer.get("data")

    def cursor_listing(self, path: str, params: QueryParams) -> Listing:
        """A v2 listing: ``cursor`` paging, the last page without ``next_cursor``."""

        async def fetch(cursor: str | None) -> Page[str]:
            query = {**params, "limit": self.page_size}
            if cursor is not None:
                query["cursor"] = cursor
            answer = await self.client.send("GET", path, params=query)
            data = answer.get("data") if isinstance(answer, Mapping) else None
            if not isinstance(data, list):
                return Page((), broken="is not a listing page (no data array)")
            extra = answer.get("additional_data")
            token = extra.get("next_cursor") if isinstance(extra, Mapping) else None
            members = [member for member in data if isinstance(member, Mapping)]
            return Page(members, next=token if isinstance(token, str) and token else None)

        return Listing(Paginator(PIPEDRIVE, path, fetch, _id_of))

    def offset_listing(self, path: str, params: QueryParams) -> Listing:
        """A v1 listing: ``start`` paging while ``more_items_in_collection`` says so."""

        async def fetch(start: int | None) -> Page[int]:
            first = start or 0
            query = {**params, "start": first, "limit": self.page_size}
            answer = await self.client.send("GET", path, params=query)
            data = answer.get("data") if isinstance(answer, Mapping) else None
            if data is None and isinstance(answer, Mapping) and answer.get("success"):
                data = []  # v1 answers an empty listing with "data": null
            if not isinstance(data, list):
                return Page((), broken="is not a listing page (no data array)")
            extra = answer.get("additional_data")
            paging = extra.get("pagination") if isinstance(extra, Mapping) else None
            more = paging.get("more_items_in_collection") if isinstance(paging, Mapping) else None
            members = [member for member in data if isinstance(member, Mapping)]
            following = next_offset(first, members, self.page_size, more is True)
            return Page(members, next=following)

        return Listing(Paginator(PIPEDRIVE, path, fetch, _id_of))
