"""Pipedrive's own OpenAPI documents as a judge of traffic: every request sent to the
fake and every answer it gives is validated with openapi-core (`SpecCheck`).

The documents are large (1.7 MB and 1 MB of YAML), so each is parsed and built once per
session (`openapi_of`, cached) with the C YAML loader, and their own validation is
skipped: they are the reference here, not the thing tested.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import yaml
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.vendor_specs import vendor_spec

__all__ = ["SpecCheck", "check_request", "check_response", "openapi_of"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HOST = "https://acme.pipedrive.com"
_SERVERS = {"v1": f"{HOST}/api/v1", "v2": f"{HOST}/api/v2"}


@functools.cache
def _document(version: str) -> dict[str, Any]:
    path = vendor_spec("pipedrive", f"pipedrive-openapi-{version}.yaml")
    with path.open("rb") as stream:
        # CSafeLoader is the safe loader in C: a tenth of the pure-Python one's time.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        loaded: dict[str, Any] = yaml.load(stream, Loader=loader)  # noqa: S506 - a safe loader
    # The documents name api.pipedrive.com; the fake answers under a company domain.
    loaded["servers"] = [{"url": _SERVERS[version]}]
    return loaded


@functools.cache
def openapi_of(version: str) -> OpenAPI:
    """The validator of API ``version`` (``v1`` or ``v2``), built once per session."""
    return OpenAPI.from_dict(_document(version), config=Config(spec_validator_cls=None))


def token_costs() -> dict[tuple[str, str], int]:
    """``x-token-cost`` of every operation: (METHOD, /api/vN/path) -> tokens."""
    costs: dict[tuple[str, str], int] = {}
    for version in ("v1", "v2"):
        for path, operations in _document(version)["paths"].items():
            for method, operation in operations.items():
                if isinstance(operation, dict) and "x-token-cost" in operation:
                    costs[(method.upper(), f"/api/{version}{path}")] = operation["x-token-cost"]
    return costs


@dataclass
class _Request:
    path: str
    method: str
    parameters: RequestParameters
    content_type: str
    body: bytes | None
    host_url: str = HOST


@dataclass
class _Response:
    status_code: int
    data: bytes
    headers: Headers = field(default_factory=Headers)
    content_type: str = "application/json"


def _version(path: str) -> str | None:
    for version in ("v1", "v2"):
        if path.startswith(f"/api/{version}/"):
            return version
    return None


def _request(scope: Scope, body: bytes) -> _Request:
    headers = Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]])
    query = parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True)
    return _Request(
        path=scope["path"],
        method=scope["method"].lower(),
        parameters=RequestParameters(
            query=ImmutableMultiDict(query), header=headers, cookie=ImmutableMultiDict()
        ),
        content_type=headers.get("content-type", "application/json").lower(),
        body=body or None,
    )


def check_request(request: _Request) -> str | None:
    """Why ``request`` breaks the spec; None when it does not."""
    version = _version(request.path)
    if version is None:
        return f"{request.method.upper()} {request.path}: not under /api/v1 or /api/v2"
    try:
        openapi_of(version).validate_request(request)
    except Exception as error:  # every validation failure is a finding
        return f"request {request.method.upper()} {request.path}: {_explain(error)}"
    return None


def check_response(request: _Request, response: _Response) -> str | None:
    """Why the answer to ``request`` breaks the spec (only 200s are documented)."""
    version = _version(request.path)
    if version is None:
        return None
    if response.status_code != 200:
        body = json.loads(response.data or b"null")
        if not (isinstance(body, dict) and body.get("success") is False and body.get("error")):
            return f"error answer to {request.path} is not Pipedrive's error envelope"
        return None
    try:
        openapi_of(version).validate_response(request, response)
    except Exception as error:  # every validation failure is a finding
        return f"response to {request.method.upper()} {request.path}: {_explain(error)}"
    return None


def _explain(error: BaseException) -> str:
    causes = [str(error)]
    inner = error.__cause__ or error.__context__
    while inner is not None and len(causes) < 4:
        details = getattr(inner, "schema_errors", None)
        causes.append("; ".join(str(e.message) for e in details) if details else str(inner))
        inner = inner.__cause__
    return " <- ".join(causes)


class SpecCheck:
    """ASGI middleware: validates each request before the app sees it (a violation is
    answered 400 and recorded) and each answer before the client does (recorded)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.violations: list[str] = []
        self.checked = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = _request(scope, body)
        self.checked += 1
        problem = check_request(request)
        if problem is not None:
            self.violations.append(problem)
            payload = json.dumps({"success": False, "error": problem}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, replay, hold)
        start = next(m for m in held if m["type"] == "http.response.start")
        data = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        headers = Headers([(k.decode(), v.decode()) for k, v in start.get("headers", [])])
        answer = _Response(start["status"], data, headers, headers.get("content-type", ""))
        problem = check_response(request, answer)
        if problem is not None:
            self.violations.append(problem)
        for message in held:
            await send(message)
