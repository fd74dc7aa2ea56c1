"""FlowtlyClient limits: Retry-After cap, whole-attempt and whole-request deadlines, body cap,
deeply nested JSON.

Sleeps are skipped (recorded, and added to the clock); attempt deadlines are real loop timers
of a few hundredths of a second, against answers that never complete.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from sync.errors import DeadlineExceeded, FlowtlyError, TransientError, ValidationFailed
from sync.flowtly.client import FlowtlyClient

TOKEN = "tok-SECRET-limits"
BASE = "https://api.flowtly.test"


class SkippedTime:
    """Real time plus every sleep, skipped: sleeps return at once and move the clock on."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self._skipped = 0.0

    def clock(self) -> float:
        return time.monotonic() + self._skipped

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._skipped += seconds
        await asyncio.sleep(0)


class TopRandom(random.Random):
    """Backoff always draws its upper bound: delays are exactly 0.5, 1, 2, ..."""

    def uniform(self, a: float, b: float) -> float:
        return b


class ZeroRandom(random.Random):
    """No backoff at all: only attempts spend the request's time."""

    def uniform(self, a: float, b: float) -> float:
        return a


class Endless(httpx.AsyncByteStream):
    """A body that never ends: ``chunk`` after ``chunk``, yielding to the loop in between."""

    def __init__(self, chunk: bytes, first: bytes = b"") -> None:
        self.chunk = chunk
        self.first = first
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.first:
            yield self.first
        while True:
            await asyncio.sleep(0)
            yield self.chunk

    async def aclose(self) -> None:
        self.closed = True


def client(
    handler: Callable[[httpx.Request], httpx.Response],
    time_: SkippedTime,
    **kwargs: Any,
) -> FlowtlyClient:
    kwargs.setdefault("rate_limit", 0)
    kwargs.setdefault("random", TopRandom())
    return FlowtlyClient(
        BASE,
        TOKEN,
        transport=httpx.MockTransport(handler),
        sleep=time_.sleep,
        clock=time_.clock,
        **kwargs,
    )


@pytest.fixture
def skipped() -> SkippedTime:
    return SkippedTime()


def calls_of(handler: Callable[[httpx.Request], httpx.Response]) -> tuple[list[str], Any]:
    seen: list[str] = []

    def counting(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        return handler(request)

    return seen, counting


# -- Retry-After ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "quoted"),
    [
        pytest.param("1000000000", "1000000000", id="seconds"),
        pytest.param("Fri, 01 Jan 2100 00:00:00 GMT", r"\d{10}", id="http-date"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_retry_after_beyond_the_cap_stops_at_once_quoting_the_wait(
    skipped: SkippedTime, retry_after: str, quoted: str, method: str
) -> None:
    seen, handler = calls_of(lambda _r: httpx.Response(429, headers={"Retry-After": retry_after}))
    async with client(handler, skipped) as flowtly:
        send = flowtly.get("/clients") if method == "GET" else flowtly.post("/clients", {"n": 1})
        with pytest.raises(DeadlineExceeded) as caught:
            await send
    message = str(caught.value)
    assert re.search(f"^Flowtly asked to wait {quoted} s \\(Retry-After\\)", message), message
    assert f"on {method} /clients; more than flowtly.max_retry_after (300 s)" in message
    assert caught.value.key == "flowtly.max_retry_after"
    assert seen == [f"{method} /clients"]
    assert skipped.sleeps == []  # not a second spent waiting


async def test_a_retry_after_under_the_cap_is_waited_and_not_charged_to_the_deadline(
    skipped: SkippedTime,
) -> None:
    answers = iter(
        [httpx.Response(429, headers={"Retry-After": "1000"}), httpx.Response(200, json={"id": 1})]
    )
    seen, handler = calls_of(lambda _r: next(answers))
    async with client(handler, skipped, max_retry_after=2000, request_deadline=90) as flowtly:
        assert await flowtly.get("/clients/1") == {"id": 1}
    assert skipped.sleeps == [1000.0]
    assert len(seen) == 2


def test_the_cap_is_a_setting_of_the_client() -> None:
    with pytest.raises(ValueError, match="limits must be > 0"):
        FlowtlyClient(BASE, TOKEN, max_retry_after=0)


# -- the whole request's deadline ----------------------------------------------------------


async def test_our_own_backoff_is_charged_to_the_request_deadline(skipped: SkippedTime) -> None:
    seen, handler = calls_of(lambda _r: httpx.Response(503, json={"detail": "busy"}))
    async with client(handler, skipped, max_retries=20, request_deadline=3) as flowtly:
        with pytest.raises(DeadlineExceeded) as caught:
            await flowtly.get("/clients")
    # 0.5 + 1 fit in 3 s; waiting 2 more would pass it, so the third failure is the last.
    assert skipped.sleeps == [0.5, 1.0]
    assert len(seen) == 3
    message = str(caught.value)
    assert message.startswith("GET /clients: no usable answer from Flowtly within 3 s")
    assert "(flowtly.request_deadline) over 3 attempt(s)" in message
    assert "HTTP 503: busy" in message
    assert caught.value.key == "flowtly.request_deadline"


async def test_a_dripping_answer_is_cut_by_the_attempt_and_request_deadlines(
    skipped: SkippedTime,
) -> None:
    bodies: list[Endless] = []

    def drip(_request: httpx.Request) -> httpx.Response:
        bodies.append(Endless(b" ", first=b'{"a"'))
        return httpx.Response(200, stream=bodies[-1])

    seen, handler = calls_of(drip)
    started = time.monotonic()
    async with client(
        handler,
        skipped,
        random=ZeroRandom(),
        request_timeout=0.05,
        request_deadline=0.2,
        max_response_bytes=10**12,
    ) as flowtly:
        with pytest.raises(DeadlineExceeded) as caught:
            await flowtly.get("/clients")
        assert flowtly.stats.transport_errors == len(seen)
    assert time.monotonic() - started < 2
    assert 3 <= len(seen) <= 5  # 0.05 s each, the last one cut to what was left of 0.2 s
    assert all(body.closed for body in bodies)
    message = str(caught.value)
    assert message.startswith(
        "GET /clients: no usable answer from Flowtly within 0.2 s (flowtly.request_deadline)"
    )
    assert "timed out: Flowtly's answer was not complete within" in message
    assert "the HTTP 200 headers and" in message
    assert "bytes of the body arrived" in message
    assert TOKEN not in message


async def test_an_attempt_cut_short_by_the_deadline_ends_the_request_even_with_retries_left(
    skipped: SkippedTime,
) -> None:
    seen, handler = calls_of(lambda _r: httpx.Response(200, stream=Endless(b" ")))
    async with client(
        handler, skipped, random=ZeroRandom(), request_timeout=0.05, request_deadline=0.08
    ) as flowtly:
        with pytest.raises(DeadlineExceeded, match=r"over 2 attempt\(s\)") as caught:
            await flowtly.get("/clients")
    assert len(seen) == 2  # 0.05 s, then what was left of 0.08 s
    assert "was not complete within 0.0" in str(caught.value)
    assert "(flowtly.request_deadline); the HTTP 200 headers" in str(caught.value)


async def test_a_plain_post_that_timed_out_is_not_sent_again(skipped: SkippedTime) -> None:
    seen, handler = calls_of(lambda _r: httpx.Response(201, stream=Endless(b" ")))
    async with client(handler, skipped, request_timeout=0.05) as flowtly:
        with pytest.raises(TransientError, match=r"\(flowtly\.request_timeout\)") as caught:
            await flowtly.post("/clients", {"name": "Acme"})
    assert not isinstance(caught.value, DeadlineExceeded)
    assert seen == ["POST /clients"]  # it may have landed: the engine reconciles it


class TcpServer:
    """A real server on 127.0.0.1 that writes ``head`` to each connection, then stays silent
    until the test ends."""

    def __init__(self, head: bytes) -> None:
        self.head = head
        self.connections = 0
        self.done = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(self.head)
        await writer.drain()
        await self.done.wait()
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *_exc: object) -> None:
        self.done.set()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.mark.parametrize(
    ("head", "arrived"),
    [
        pytest.param(b"HTTP/1.1 200 OK\r\n", "no response arrived", id="headers-never-end"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{",
            "the HTTP 200 headers and 1 bytes of the body arrived",
            id="body-never-ends",
        ),
    ],
)
async def test_a_stalled_server_over_tcp_ends_well_before_the_read_timeout(
    skipped: SkippedTime, head: bytes, arrived: str
) -> None:
    started = time.monotonic()
    async with TcpServer(head) as url:
        flowtly = FlowtlyClient(
            url,
            TOKEN,
            rate_limit=0,
            timeout=30,  # per read: never reached
            request_timeout=0.1,
            request_deadline=0.25,
            sleep=skipped.sleep,
            clock=skipped.clock,
            random=ZeroRandom(),
        )
        async with flowtly:
            with pytest.raises(DeadlineExceeded) as caught:
                await flowtly.get("/clients")
    assert time.monotonic() - started < 5
    assert arrived in str(caught.value)


# -- body size -----------------------------------------------------------------------------


async def test_an_endless_body_stops_at_the_size_cap(skipped: SkippedTime) -> None:
    body = Endless(b"x" * 65536)
    seen, handler = calls_of(lambda _r: httpx.Response(200, stream=body))
    async with client(handler, skipped, max_response_bytes=1_000_000) as flowtly:
        with pytest.raises(FlowtlyError) as caught:
            await flowtly.get("/clients")
    assert str(caught.value) == (
        "GET /clients: Flowtly's answer (HTTP 200) is larger than 1,000,000 bytes "
        "(flowtly.max_response_bytes); stopped reading it"
    )
    assert not isinstance(caught.value, DeadlineExceeded | TransientError)
    assert seen == ["GET /clients"]  # not retried
    assert body.closed


class Unread(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        raise AssertionError("a body declared too large must not be read")
        yield b""  # pragma: no cover - makes this an async generator

    async def aclose(self) -> None:
        pass


async def test_a_body_declared_too_large_is_refused_unread(skipped: SkippedTime) -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": "5000000"}, stream=Unread())

    async with client(handler, skipped, max_response_bytes=1_000_000) as flowtly:
        with pytest.raises(FlowtlyError, match=r"larger than 1,000,000 bytes"):
            await flowtly.get("/clients")


async def test_a_compressed_answer_is_read_decoded(skipped: SkippedTime) -> None:
    payload = json.dumps({"member": [{"@id": "/clients/1"}]}).encode()

    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"Content-Encoding": "gzip"}, content=gzip.compress(payload)
        )

    async with client(handler, skipped) as flowtly:
        assert await flowtly.get("/clients") == {"member": [{"@id": "/clients/1"}]}
        assert [m async for m in flowtly.iterate("/clients")] == [{"@id": "/clients/1"}]


# -- nesting -------------------------------------------------------------------------------


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


async def test_deeply_nested_json_is_an_error_naming_the_request(skipped: SkippedTime) -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_deep(200_000))

    async with client(handler, skipped) as flowtly:
        with pytest.raises(FlowtlyError) as caught:
            await flowtly.get("/clients/1")
        with pytest.raises(FlowtlyError, match="nested too deeply"):
            [m async for m in flowtly.iterate("/clients")]
    assert str(caught.value) == "GET /clients/1: HTTP 200 answer is JSON nested too deeply to read"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


async def test_a_deeply_nested_error_document_still_maps_to_its_status(
    skipped: SkippedTime,
) -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, content=_deep(200_000))

    async with client(handler, skipped) as flowtly:
        with pytest.raises(ValidationFailed) as caught:
            await flowtly.patch("/clients/1", {"name": "x"})
    assert caught.value.status == 422
    assert caught.value.violations == ()
