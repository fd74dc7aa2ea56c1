"""The sandbox as a Starlette ASGI app: the request pipeline of an API Platform 4 install."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sync.sandbox._errors import Problem, problem_response
from sync.sandbox._handlers import Call
from sync.sandbox._json import JsonObject
from sync.sandbox._query import parse_query
from sync.sandbox._routing import Body, Endpoint, match
from sync.sandbox._state import Sandbox
from sync.sandbox.settings import SandboxSettings

__all__ = ["create_app"]

_LD = "application/ld+json"
_ACCEPTABLE = frozenset({_LD, "*/*", "application/*"})
_POST_TYPES = (_LD, "application/json")
_PATCH_TYPES = ("application/merge-patch+json",)
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_FORMAT_SUFFIX = re.compile(r"^(.*/[^/.]+)\.([A-Za-z0-9]+)$")


def _negotiate(accept: str | None) -> None:
    if accept is None or not accept.strip():
        return
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 1.0
        if quality > 0 and media.lower() in _ACCEPTABLE:
            return
    raise Problem(
        406, f'Requested format "{accept}" is not supported. Supported MIME types are "{_LD}".'
    )


def _token(request: Request, expected: str | None) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    accepted = scheme.lower() == "bearer" and bool(token)
    if accepted and expected is not None:
        accepted = hmac.compare_digest(token.encode(), expected.encode())
    if not accepted:
        raise Problem(401, "Unauthorized", headers={"WWW-Authenticate": "Bearer"})
    return token


def _parse_json(raw: bytes) -> JsonObject:
    def reject(constant: str) -> object:
        raise ValueError(constant)

    try:
        value = json.loads(raw, parse_constant=reject) if raw.strip() else None
        if b"\\u" in raw:
            # PHP's json_decode rejects unpaired UTF-16 surrogates; Python keeps them.
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError):
        value = None
    if value == []:
        return {}  # PHP decodes [] and {} alike: an empty array
    if not isinstance(value, dict):
        raise Problem(400, "Syntax error")
    return value


async def _read_body(request: Request, method: str, operation: Endpoint) -> JsonObject | None:
    if operation.body is Body.NONE:
        return None
    raw = await request.body()
    content_type = request.headers.get("content-type")
    if operation.body is Body.OPTIONAL and not raw.strip() and content_type is None:
        return None
    if content_type is None:
        raise Problem(415, 'The "Content-Type" header must exist.')
    allowed = _PATCH_TYPES if method == "PATCH" else _POST_TYPES
    if content_type.partition(";")[0].strip().lower() not in allowed:
        supported = '", "'.join(allowed)
        raise Problem(
            415,
            f'The content-type "{content_type}" is not supported. '
            f'Supported MIME types are "{supported}".',
        )
    return _parse_json(raw)


async def _handle(sandbox: Sandbox, request: Request) -> Response:
    settings = sandbox.settings
    if sandbox.bucket is not None:
        sandbox.bucket.take()
    sandbox.faults.check()

    method, path = request.method, request.url.path
    origin = f"{request.url.scheme}://{request.url.netloc}"
    not_found = Problem(404, f'No route found for "{method} {origin}{path}"')
    base = settings.base_path
    if not path.startswith(f"{base}/"):
        raise not_found
    route_path, fmt = path[len(base) :], None
    suffixed = _FORMAT_SUFFIX.match(route_path)
    if suffixed is not None:
        route_path, fmt = suffixed[1], suffixed[2]
    found = match(route_path, method)
    if found is None:
        raise not_found
    if found.operation is None:
        allow = ", ".join(found.allowed)
        raise Problem(
            405,
            f'No route found for "{method} {origin}{path}": Method Not Allowed (Allow: {allow})',
            headers={"Allow": allow},
        )
    if fmt is not None and fmt != "jsonld":
        raise Problem(404, f'Format "{fmt}" is not supported')
    token = _token(request, settings.token)
    _negotiate(request.headers.get("accept"))
    body = await _read_body(request, method, found.operation)
    call = Call(
        sandbox=sandbox,
        method=method,
        path=path,
        query=parse_query(request.url.query),
        params=found.params,
        body=body,
        token=token,
        docs_url=f"{origin}{base}/docs.jsonld",
    )
    return found.operation.handler(call)


def create_app(settings: SandboxSettings | None = None) -> Starlette:
    """Build a sandbox app. Its state is ``app.state.sandbox`` (a ``Sandbox``)."""
    sandbox = Sandbox(settings or SandboxSettings())

    async def endpoint(request: Request) -> Response:
        settings = sandbox.settings
        arrived = settings.monotonic()
        try:
            response = await _handle(sandbox, request)
        except Problem as problem:
            response = problem_response(problem, settings.base_path)
        if settings.latency_ms:
            # The latency is the whole time to an answer, as a distant API's is: the
            # sandbox's own work is done within it, not added on top of it. Otherwise
            # its one-at-a-time handling of concurrent requests would slow every answer
            # by the work of the requests queued before it, which a real API does not.
            spent = settings.monotonic() - arrived
            await settings.sleep(max(0.0, settings.latency_ms / 1000.0 - spent))
        return response

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        sandbox.close()

    route = Route("/{path:path}", endpoint, methods=_METHODS)
    app = Starlette(routes=[route], lifespan=lifespan)
    app.state.sandbox = sandbox
    return app
