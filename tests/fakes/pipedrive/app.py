"""A stateful Pipedrive fake: organizations and persons (API v2), notes and recents
(API v1), organization / person fields, the token check, the 2-second burst window and
the daily token budget, each as Pipedrive documents them. `PipedriveFake.asgi` wraps the
app in `SpecCheck`, so everything sent and answered is validated against Pipedrive's
OpenAPI documents.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.pipedrive._spec import SpecCheck, token_costs
from tests.fakes.pipedrive._state import FakeState, v1_stamp, v2_stamp, without_nulls

__all__ = ["TOKEN", "PipedriveFake"]

TOKEN = "pd-test-token-5d1c9a"
_V2_NULLABLE = frozenset({"website", "linkedin", "industry", "annual_revenue", "employee_count"})
_COLLECTIONS = {"organizations": "organization", "persons": "person"}
_BLOCK_AFTER = 20  # requests over the burst limit in one window before a 403 block


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    body = {"success": False, "error": message, "errorCode": status}
    return JSONResponse(body, status_code=status, headers=headers)


def _time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _template(path: str) -> str:
    parts = ["{id}" if part.isdigit() else part for part in path.split("/")]
    return "/".join(parts)


class PipedriveFake:
    """The fake's state, its limits and its app (see the module docstring)."""

    def __init__(
        self,
        *,
        token: str = TOKEN,
        burst_limit: int = 80,
        daily_tokens: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        started = clock()
        self.state = FakeState(elapsed=lambda: clock() - started)
        self.token = token
        self.burst_limit = burst_limit
        self.daily_tokens = daily_tokens
        self.clock = clock
        self.costs = token_costs()
        self.calls: Counter[tuple[str, str]] = Counter()
        self.tokens_spent = 0
        self.rate_limited = 0
        self.queries: list[tuple[str, str, dict[str, str]]] = []
        self.faults: list[tuple[str, int]] = []
        self.after_answer: Callable[[str, str], None] | None = None
        """Called after each answer is made: a user's edit between two pages."""
        self._window_start = float("-inf")
        self._window_count = 0
        self.app = Starlette(routes=self._routes())
        self.asgi = SpecCheck(self._guarded)

    @property
    def unchecked(self) -> Any:
        """The app without the spec judge (for benchmarks, which measure, not judge)."""
        return self._guarded

    @property
    def violations(self) -> list[str]:
        return self.asgi.violations

    def writes(self) -> int:
        return sum(n for (method, _), n in self.calls.items() if method != "GET")

    def fail_next(self, path: str, status: int) -> None:
        """Answer the next request for ``path`` (a template) with ``status``."""
        self.faults.append((path, status))

    # -- limits ------------------------------------------------------------------------

    async def _guarded(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        response = self._limit(request)
        if response is None:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    def _window(self) -> tuple[int, int]:
        now = self.clock()
        if now - self._window_start >= 2.0:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        reset = max(1, round(2.0 - (now - self._window_start)))
        return max(self.burst_limit - self._window_count, 0), reset

    def _limit(self, request: Request) -> Response | None:
        path = _template(request.url.path)
        if request.headers.get("x-api-token") != self.token:
            return _error(401, "unauthorized access")
        remaining, reset = self._window()
        headers = {
            "x-ratelimit-limit": str(self.burst_limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(reset),
        }
        if self._window_count > self.burst_limit + _BLOCK_AFTER:
            return _error(403, "blocked: too many requests over the rate limit")
        if self._window_count > self.burst_limit:
            self.rate_limited += 1
            return _error(429, "Request over limit", **headers)
        cost = self.costs.get((request.method, path), 0)
        if self.daily_tokens is not None:
            if self.daily_tokens < cost:
                headers["x-daily-ratelimit-token-remaining"] = "0"
                self.rate_limited += 1
                return _error(429, "Daily token budget exceeded", **headers)
            self.daily_tokens -= cost
            headers["x-daily-ratelimit-token-remaining"] = str(self.daily_tokens)
        for index, (fault_path, status) in enumerate(self.faults):
            if fault_path == path:
                del self.faults[index]
                return _error(status, "injected failure", **headers)
        self.calls[(request.method, path)] += 1
        self.tokens_spent += cost
        self.queries.append((request.method, path, dict(request.query_params)))
        request.scope.setdefault("state", {})["limit_headers"] = headers
        return None

    # -- routes ------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route("/api/v2/organizationFields", self._fields, methods=["GET", "POST"]),
            Route("/api/v2/personFields", self._fields, methods=["GET", "POST"]),
            Route("/api/v2/{collection:str}", self._v2_list, methods=["GET", "POST"]),
            Route(
                "/api/v2/{collection:str}/{id:int}",
                self._v2_one,
                methods=["GET", "PATCH", "DELETE"],
            ),
            Route("/api/v1/notes", self._notes, methods=["GET", "POST"]),
            Route("/api/v1/notes/{id:int}", self._note, methods=["GET", "PUT", "DELETE"]),
            Route("/api/v1/recents", self._recents, methods=["GET"]),
        ]

    def _answer(self, request: Request, body: Mapping[str, Any], status: int = 200) -> Response:
        headers = dict(request.scope.get("state", {}).get("limit_headers", {}))
        headers["Date"] = format_datetime(self.state.current(), usegmt=True)
        if self.after_answer is not None:
            self.after_answer(request.method, request.url.path)
        return JSONResponse(dict(body), status_code=status, headers=headers)

    async def _fields(self, request: Request) -> Response:
        entity = "organization" if "organization" in request.url.path else "person"
        if request.method == "POST":
            body = await request.json()
            labels = [option["label"] for option in body.get("options") or ()]
            made = self.state.add_field(entity, body["field_name"], body["field_type"], labels)
            return self._answer(request, {"success": True, "data": made})
        return self._answer(
            request, {"success": True, "data": self.state.fields[entity], "additional_data": {}}
        )

    # -- organizations and persons (v2) ------------------------------------------------

    def _v2_view(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return without_nulls(item, _V2_NULLABLE)

    async def _v2_list(self, request: Request) -> Response:
        collection = request.path_params["collection"]
        if collection not in _COLLECTIONS:
            return _error(404, "unknown collection")
        entity = _COLLECTIONS[collection]
        items = self.state.collection(entity)
        if request.method == "POST":
            return self._answer(request, self._v2_write(entity, None, await request.json()))
        query = request.query_params
        limit = int(query.get("limit", 100))
        if limit > 500:
            return _error(400, "limit must be 500 or less")
        key = query.get("sort_by", "id")
        listed = [item for item in items.values() if not item["is_deleted"]]
        since = query.get("updated_since")
        if since is not None:
            moment = _time(since)
            if moment is None:
                return _error(400, "updated_since is not RFC 3339")
            listed = [i for i in listed if _time(i["update_time"]) >= moment]  # type: ignore[operator]

        def position(item: Mapping[str, Any]) -> tuple[Any, int]:
            return (item[key] if key != "id" else item["id"], item["id"])

        listed.sort(key=position, reverse=query.get("sort_direction") == "desc")
        if "cursor" in query:
            after = json.loads(base64.urlsafe_b64decode(query["cursor"]))
            listed = [i for i in listed if list(position(i)) > after]
        page = listed[:limit]
        extra: dict[str, Any] = {}
        if len(listed) > limit:
            cursor = json.dumps(list(position(page[-1]))).encode()
            extra["next_cursor"] = base64.urlsafe_b64encode(cursor).decode()
        data = [self._v2_view(item) for item in page]
        return self._answer(request, {"success": True, "data": data, "additional_data": extra})

    async def _v2_one(self, request: Request) -> Response:
        collection = request.path_params["collection"]
        if collection not in _COLLECTIONS:
            return _error(404, "unknown collection")
        entity = _COLLECTIONS[collection]
        record_id = request.path_params["id"]
        item = self.state.collection(entity).get(record_id)
        if item is None or item["is_deleted"]:
            return _error(404, f"{entity} not found")
        if request.method == "GET":
            return self._answer(request, {"success": True, "data": self._v2_view(item)})
        if request.method == "DELETE":
            item["is_deleted"] = True
            item["update_time"] = v2_stamp(self.state.tick())
            self.state.record(entity, record_id)
            return self._answer(request, {"success": True, "data": {"id": record_id}})
        return self._answer(request, self._v2_write(entity, item, await request.json()))

    def _v2_write(
        self, entity: str, item: dict[str, Any] | None, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        state = self.state
        moment = v2_stamp(state.tick())
        if item is None:
            record_id = state.new_id()
            item = {
                "id": record_id,
                "owner_id": 1,
                "add_time": moment,
                "is_deleted": False,
                "visible_to": 3,
                "label_ids": [],
                "custom_fields": dict.fromkeys(state.custom_codes(entity)),
            }
            if entity == "organization":
                item.update(website=None, address=None)
            else:
                item.update(emails=[], phones=[])
            state.collection(entity)[record_id] = item
        for key, value in body.items():
            if key == "custom_fields":
                item["custom_fields"].update(value)
            elif key == "address":
                item["address"] = dict(value)  # replaced whole, as Pipedrive does
            else:
                item[key] = value
        if entity == "person":
            first, _, last = str(item.get("name") or "").partition(" ")
            item.update(first_name=first, last_name=last)
        item["update_time"] = moment
        state.record(entity, item["id"])
        return {"success": True, "data": self._v2_view(item)}

    # -- notes and recents (v1) --------------------------------------------------------

    def _note_view(self, note: Mapping[str, Any]) -> dict[str, Any]:
        view = without_nulls(note, frozenset())
        org = self.state.organizations.get(note.get("org_id") or 0)
        if org is not None:
            view["organization"] = {"name": org.get("name") or ""}
        return view

    async def _notes(self, request: Request) -> Response:
        if request.method == "POST":
            return self._answer(request, self._note_write(None, await request.json()))
        query = request.query_params
        start, limit = int(query.get("start", 0)), int(query.get("limit", 100))
        if limit > 500:
            return _error(400, "limit must be 500 or less")
        listed = [note for note in self.state.notes.values() if note["active_flag"]]
        since = query.get("updated_since")
        if since is not None:
            moment = _time(since)
            if moment is None:
                return _error(400, "updated_since is not a date-time")
            listed = [n for n in listed if _time(n["update_time"]) >= moment]  # type: ignore[operator]
        field, _, _ = query.get("sort", "id ASC").partition(" ")
        listed.sort(key=lambda note: (note[field], note["id"]))
        page = listed[start : start + limit]
        more = start + limit < len(listed)
        pagination: dict[str, Any] = {"start": start, "limit": limit}
        pagination["more_items_in_collection"] = more
        if more:
            pagination["next_start"] = start + limit
        data = [self._note_view(note) for note in page]
        body = {"success": True, "data": data, "additional_data": {"pagination": pagination}}
        return self._answer(request, body)

    async def _note(self, request: Request) -> Response:
        note = self.state.notes.get(request.path_params["id"])
        if note is None or not note["active_flag"]:
            return _error(404, "Note not found")
        if request.method == "GET":
            return self._answer(request, {"success": True, "data": self._note_view(note)})
        if request.method == "DELETE":
            note["active_flag"] = False
            note["update_time"] = v1_stamp(self.state.tick())
            self.state.record("note", note["id"])
            return self._answer(request, {"success": True, "data": True})
        return self._answer(request, self._note_write(note, await request.json()))

    def _note_write(self, note: dict[str, Any] | None, body: Mapping[str, Any]) -> dict[str, Any]:
        state = self.state
        moment = v1_stamp(state.tick())
        if note is None:
            note = {"id": state.new_id(), "active_flag": True, "user_id": 1, "add_time": moment}
            note["pinned_to_organization_flag"] = False
            state.notes[note["id"]] = note
        note.update(body)
        note["update_time"] = moment
        state.record("note", note["id"])
        return {"success": True, "data": self._note_view(note)}

    async def _recents(self, request: Request) -> Response:
        query = request.query_params
        since = _time(query["since_timestamp"])
        item = query.get("items")
        if since is None or item is None or "," in item:
            return _error(400, "since_timestamp and one items value are required")
        start, limit = int(query.get("start", 0)), int(query.get("limit", 100))
        latest: dict[int, datetime] = {}
        for change in self.state.changes:
            if change.item == item and change.at >= since:
                latest[change.id] = change.at
        entries: list[dict[str, Any]] = []
        for record_id in sorted(latest, key=lambda rid: (latest[rid], rid)):
            stored = self.state.collection(item)[record_id]
            active = stored.get("active_flag", not stored.get("is_deleted", False))
            data: dict[str, Any] = {"id": record_id, "active_flag": active}
            data["update_time"] = v1_stamp(latest[record_id])
            entries.append({"item": item, "id": record_id, "data": data})
        page = entries[start : start + limit]
        more = start + limit < len(entries)
        extra = {
            "since_timestamp": v1_stamp(since),
            "last_timestamp_on_page": v1_stamp(latest[page[-1]["id"]]) if page else v1_stamp(since),
            "pagination": {"start": start, "limit": limit, "more_items_in_collection": more},
        }
        return self._answer(request, {"success": True, "data": page, "additional_data": extra})
