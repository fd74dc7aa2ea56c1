"""The asyncio network backend under httpx: keep-alive, closed idle connections, large
bodies both ways, timeouts, refused connections and TLS, against small in-process servers."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
import trustme

from sync.flowtly._asyncio_net import AsyncioTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving(
    handler: Handler, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[int]]]:
    """A loopback server; yields its origin and the count of connections it accepted."""
    accepted: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if ssl_context else "http"
    async with server:
        yield (
            f"{scheme}://localhost:{port}" if ssl_context else f"{scheme}://127.0.0.1:{port}",
            (accepted),
        )


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's body (requests here always carry Content-Length or none)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return await reader.readexactly(length)


def response(body: bytes, *, close: bool = False) -> bytes:
    connection = b"close" if close else b"keep-alive"
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n%s" % (
        len(body),
        connection,
        body,
    )


async def echo_length(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer every request on the connection with the length of its body."""
    while True:
        try:
            body = await read_request(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        writer.write(response(str(len(body)).encode()))
        await writer.drain()


async def test_requests_reuse_one_connection() -> None:
    async with (
        serving(echo_length) as (origin, accepted),
        httpx.AsyncClient(transport=AsyncioTransport()) as http,
    ):
        answers = [(await http.post(origin, content=b"x" * n)).text for n in (0, 1, 10)]
    assert answers == ["0", "1", "10"]
    assert len(accepted) == 1


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    hang_up = asyncio.Event()

    async def one_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        # Says keep-alive, then closes while the client holds the connection idle.
        writer.write(response(b"ok"))
        await writer.drain()
        await hang_up.wait()

    async with (
        serving(one_then_close) as (origin, accepted),
        httpx.AsyncClient(transport=AsyncioTransport()) as http,
    ):
        first = await http.get(origin)
        assert _idle_connections(http) == [False]
        hang_up.set()
        for _ in range(10_000):  # let the loop deliver the server's FIN (no timer involved)
            if _idle_connections(http) == [True]:
                break
            await asyncio.sleep(0)
        assert _idle_connections(http) == [True]
        second = await http.get(origin)
    assert (first.text, second.text) == ("ok", "ok")
    assert len(accepted) == 2


def _idle_connections(http: httpx.AsyncClient) -> list[bool]:
    """Whether each pooled idle connection counts as expired (the state under test)."""
    transport = http._transport
    assert isinstance(transport, AsyncioTransport)
    return [c.has_expired() for c in transport._pool.connections if c.is_idle()]


async def test_large_bodies_travel_whole_in_both_directions() -> None:
    big = bytes(range(256)) * 16_384  # 4 MiB: past the read high-water mark and socket buffers

    async def mirror(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await read_request(reader)
        writer.write(response(body))
        await writer.drain()

    async with (
        serving(mirror) as (origin, _),
        httpx.AsyncClient(transport=AsyncioTransport()) as http,
    ):
        answer = await http.post(origin, content=big)
    assert answer.content == big


async def test_a_silent_server_times_out_the_read() -> None:
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await release.wait()

    async with (
        serving(silent) as (origin, _),
        httpx.AsyncClient(transport=AsyncioTransport(), timeout=0.05) as http,
    ):
        with pytest.raises(httpx.ReadTimeout):
            await http.get(origin)
        release.set()


async def test_a_refused_connection_is_a_connect_error() -> None:
    server = await asyncio.start_server(echo_length, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with httpx.AsyncClient(transport=AsyncioTransport()) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/")


async def test_a_server_that_hangs_up_mid_answer_is_a_protocol_error() -> None:
    async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()

    async with (
        serving(truncated) as (origin, _),
        httpx.AsyncClient(transport=AsyncioTransport()) as http,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(origin)


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


async def test_tls_with_a_trusted_certificate(authority: trustme.CA) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    async with (
        serving(echo_length, server_context) as (origin, _),
        httpx.AsyncClient(transport=AsyncioTransport(verify=client_context)) as http,
    ):
        answers = [(await http.post(origin, content=b"abc")).text for _ in range(3)]
    assert answers == ["3", "3", "3"]


async def test_tls_refuses_an_untrusted_certificate(authority: trustme.CA) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    async with (
        serving(echo_length, server_context) as (origin, _),
        httpx.AsyncClient(transport=AsyncioTransport()) as http,
    ):
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.get(origin)


class _RecordingTransport(asyncio.Transport):
    """Records what is written; answers nothing until told to."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent.append(bytes(data))

    def is_closing(self) -> bool:
        return False


async def test_a_request_goes_out_in_one_send_before_the_answer_is_read() -> None:
    from sync.flowtly._asyncio_net import _CORK_LIMIT, _Protocol, _Stream

    transport, protocol = _RecordingTransport(), _Protocol()
    protocol.connection_made(transport)
    stream = _Stream(transport, protocol)
    await stream.write(b"POST / HTTP/1.1\r\n\r\n")
    await stream.write(b'{"a": 1}')
    assert transport.sent == []
    protocol.data_received(b"HTTP/1.1 200 OK\r\n")
    assert await stream.read(1024) == b"HTTP/1.1 200 OK\r\n"
    assert transport.sent == [b'POST / HTTP/1.1\r\n\r\n{"a": 1}']
    # A body past the limit is not held back whole.
    await stream.write(b"x" * _CORK_LIMIT)
    assert transport.sent[-1] == b"x" * _CORK_LIMIT
