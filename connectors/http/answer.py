"""One attempt at an API request, bounded as a whole: in time, from sending it to the
last byte of the answer, and in the size of the answer's body.

httpx's own timeouts bound each connect and each read separately, so a server that sends
a byte just before every read timeout holds an attempt open forever; and reading
``response.content`` buffers a body however large it grows. Here the answer is streamed
under one `asyncio.timeout` and reading stops at a byte cap.

The deadline is a loop timer, not the client's injectable clock: only a loop timer can
interrupt a read that is blocked inside the transport.

The request goes straight to the transport, not through `httpx.AsyncClient.send`: the
client's layers (auth flows, redirects, cookies, event hooks, its log line) do nothing
for an API client that follows no redirect and keeps no cookie, and cost a fifth of the
CPU of a request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from connectors.http.statuses import Side, error_timed_out, error_too_large
from sync.errors import ApiError

__all__ = ["AnswerLimits", "read_answer"]

# Headers that described the body as it travelled; the buffered copy is already decoded.
_WIRE_HEADERS = frozenset({b"content-encoding", b"content-length", b"transfer-encoding"})
# What error messages read from a response's extensions (the rest holds the connection).
_KEPT_EXTENSIONS = ("http_version", "reason_phrase")


@dataclass(frozen=True, slots=True)
class AnswerLimits:
    """The bounds of one attempt; ``key`` names the setting ``seconds`` comes from."""

    side: Side
    seconds: float
    key: str
    max_bytes: int


@dataclass(slots=True)
class _Progress:
    status: int | None = None
    received: int = 0


async def read_answer(
    transport: httpx.AsyncBaseTransport, request: httpx.Request, limits: AnswerLimits
) -> httpx.Response:
    """Send ``request`` and read its whole answer within ``limits``.

    Returns a response whose body is already read (``.content`` works). Raises what
    ``transport`` raises (`httpx.TransportError`, its own read timeouts included),
    `sync.errors.TransientError` once ``limits.seconds`` pass, and the side's protocol error
    once the decoded body passes ``limits.max_bytes``.
    """
    progress = _Progress()
    deadline = asyncio.timeout(limits.seconds)
    try:
        async with deadline:
            return await _read(transport, request, limits, progress)
    except TimeoutError:
        if not deadline.expired():
            raise  # raised inside the transport, not by our deadline
        raise error_timed_out(
            limits.side,
            request.method,
            request.url.path,
            seconds=limits.seconds,
            key=limits.key,
            status=progress.status,
            received=progress.received,
        ) from None


async def _read(
    transport: httpx.AsyncBaseTransport,
    request: httpx.Request,
    limits: AnswerLimits,
    progress: _Progress,
) -> httpx.Response:
    max_bytes = limits.max_bytes
    response = await transport.handle_async_request(request)
    response.request = request
    try:
        progress.status = response.status_code
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise _too_large(request, response.status_code, limits)
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            progress.received = len(body)
            if len(body) > max_bytes:
                raise _too_large(request, response.status_code, limits)
    finally:
        await response.aclose()
    return _buffered(response, bytes(body))


def _too_large(request: httpx.Request, status: int, limits: AnswerLimits) -> ApiError:
    side = limits.side
    return error_too_large(
        side,
        request.method,
        request.url.path,
        limit=limits.max_bytes,
        key=side.key("max_response_bytes"),
        status=status,
    )


def _buffered(response: httpx.Response, body: bytes) -> httpx.Response:
    """A closed copy of ``response`` holding ``body``, so callers read ``.content``."""
    # Raw bytes: filtering them skips decoding each header to text and back.
    headers = [
        (name, value) for name, value in response.headers.raw if name.lower() not in _WIRE_HEADERS
    ]
    extensions = {k: response.extensions[k] for k in _KEPT_EXTENSIONS if k in response.extensions}
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=body,
        request=response.request,
        extensions=extensions,
    )
