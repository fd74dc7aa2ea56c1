"""The network transport over real loopback sockets: what a failure says about a request.

A retry policy may re-send a POST only when the request provably never left, so the
transport must tell "could not connect" from "the server dropped the connection after
reading the request" (the adapter underneath reports both as connect errors).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from connectors.http import network_transport
from sync.errors import TransientError
from sync.flowtly.client import FlowtlyClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> str:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


def _client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, transport=network_transport(httpx.Limits()))


async def test_answers_and_reuses_the_connection(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):
            seen.append(await _read_request(reader))
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
            )
            await writer.drain()
        writer.close()

    url = await serve(handler)
    async with _client(url) as http:
        first = await http.get("/a")
        second = await http.get("/b")
    assert (first.status_code, first.json(), second.status_code) == (200, {}, 200)
    assert [request.split(b" ", 2)[1] for request in seen] == [b"/a", b"/b"]  # one connection


async def test_refused_connection_is_unsent() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        async with _client(f"http://127.0.0.1:{port}") as http:
            with pytest.raises(httpx.ConnectError):
                await http.get("/")


async def test_drop_after_request_is_a_read_error(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.close()  # the request arrived; the answer never comes

    url = await serve(handler)
    async with _client(url) as http:
        with pytest.raises(httpx.TransportError) as caught:
            await http.post("/clients", json={"name": "Acme"})
    assert not isinstance(caught.value, httpx.ConnectError | httpx.ConnectTimeout)


async def test_post_dropped_after_sending_is_not_sent_again(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    posts: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        posts.append(await _read_request(reader))
        writer.close()

    url = await serve(handler)

    async def no_sleep(_: float) -> None:
        return None

    async with FlowtlyClient(url, "token-0123456789", rate_limit=0, sleep=no_sleep) as flowtly:
        with pytest.raises(TransientError):
            await flowtly.post("/clients", {"name": "Acme"})
    assert len(posts) == 1  # a create that may have landed is never blindly repeated


async def test_a_get_dropped_on_a_pooled_connection_is_not_resent_silently(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await _read_request(reader))
        if len(seen) == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
            seen.append(await _read_request(reader))
        writer.close()  # the second request on the kept-alive connection gets no answer

    url = await serve(handler)
    async with _client(url) as http:
        assert (await http.get("/a")).status_code == 200
        with pytest.raises(httpx.TransportError):
            await http.get("/b")
    # The retry policy above the transport decides about resending, not aiohttp.
    assert [request.split(b" ", 2)[1] for request in seen] == [b"/a", b"/b"]


class _NoWorkerThreads(concurrent.futures.ThreadPoolExecutor):
    """A default executor that fails any request that hops through a worker thread."""

    def submit(self, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        raise AssertionError("a request went through a worker thread")


async def test_requests_stay_on_the_event_loop(
    serve: Callable[[Handler], Awaitable[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
        writer.close()

    url = await serve(handler)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    loop = asyncio.get_running_loop()
    async with _client(url) as http:
        await http.get("/warm")  # the pool's first connect may resolve names elsewhere
        loop.set_default_executor(_NoWorkerThreads())
        try:
            assert (await http.get("/again")).status_code == 200
        finally:
            loop.set_default_executor(concurrent.futures.ThreadPoolExecutor())


async def test_the_environment_proxy_is_used_and_no_proxy_is_honoured(
    serve: Callable[[Handler], Awaitable[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxied: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        proxied.append(await _read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    async def direct(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        writer.close()

    proxy_url, direct_url = await serve(proxy), await serve(direct)
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with _client("http://api.example.invalid") as http:
        assert (await http.get("/through")).status_code == 200
        assert (await http.get(f"{direct_url}/around")).status_code == 204
    assert [request.split(b" ", 2)[1] for request in proxied] == [
        b"http://api.example.invalid/through"
    ]
