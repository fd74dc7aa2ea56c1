"""An httpcore network backend on asyncio's own transports, and the httpx transport using it.

httpcore runs on asyncio through anyio. Each socket operation there opens a cancel scope
with a timer, maps exceptions through a context manager and yields a checkpoint, and each
reuse of a pooled connection builds anyio's socket attribute table to ask whether the
socket is readable. Profiles of a sync put that at a fifth of the client's CPU per request
(see tests/benchmarks/README.md). This backend does the same work with one protocol object
per connection: reads return buffered bytes at once, writes wait only under back-pressure,
and whether an idle connection was closed by the server is known from the protocol's
state plus one ``poll``.

httpcore documents network backends as its extension point (``network_backend=``);
:class:`AsyncioTransport` is httpx's own transport with that one argument set. Proxies
taken from the environment keep httpx's default transports.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["AsyncioBackend", "AsyncioTransport"]

_HIGH_WATER = 256 * 1024
"""Stop reading from the socket while this much is buffered and not yet consumed."""
_LOW_WATER = 64 * 1024
_CORK_LIMIT = 64 * 1024
"""Writes are held back until a read, or until this much is waiting."""

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class _Protocol(asyncio.Protocol):
    """Buffers what the socket delivers; wakes the one reader or writer waiting on it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self._closed = False
        self._reading_paused = False
        self._writing_paused = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None

    # -- asyncio callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # close the transport: HTTP/1.1 never half-closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.eof = True
        self.error = exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_writer()

    # -- used by the stream ------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def take(self, max_bytes: int) -> bytes:
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if self._reading_paused and len(self.buffer) < _LOW_WATER and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    async def readable(self, timeout: float | None) -> None:
        """Wait until bytes, EOF or an error are there; ``TimeoutError`` after ``timeout``."""
        waiter = asyncio.get_running_loop().create_future()
        self._read_waiter = waiter
        try:
            await _wait(waiter, timeout)
        finally:
            self._read_waiter = None

    async def drained(self, timeout: float | None) -> None:
        """Wait until the transport accepts writes again (or the connection is lost)."""
        while self._writing_paused and not self._closed:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiter = waiter
            try:
                await _wait(waiter, timeout)
            finally:
                self._drain_waiter = None

    def _wake_reader(self) -> None:
        if self._read_waiter is not None and not self._read_waiter.done():
            self._read_waiter.set_result(None)

    def _wake_writer(self) -> None:
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)


async def _wait(waiter: asyncio.Future[None], timeout: float | None) -> None:
    if timeout is None:
        await waiter
        return
    # A bare timer on the future costs far less than a task or a cancel scope per read.
    handle = asyncio.get_running_loop().call_later(timeout, _expire, waiter)
    try:
        await waiter
    finally:
        handle.cancel()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Stream(httpcore.AsyncNetworkStream):
    """One TCP (or TLS) connection as httpcore sees it."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._corked: list[bytes] = []
        self._corked_size = 0

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if self._corked:
            try:
                await self._flush(timeout)
            except httpcore.WriteTimeout:
                raise httpcore.ReadTimeout("timed out sending the request") from None
        if not protocol.buffer and not protocol.eof:
            try:
                await protocol.readable(timeout)
            except TimeoutError:
                raise httpcore.ReadTimeout("timed out reading from the server") from None
        if protocol.buffer:
            return protocol.take(max_bytes)
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Queue ``buffer``; it is sent with the rest of the request, before the next read.

        httpcore writes a request's head and body separately. On loopback each ``send``
        costs the receiver's whole TCP path in this process, so a request goes out in
        one ``send`` (large bodies in slices of ``_CORK_LIMIT``).
        """
        if not buffer:
            return
        protocol = self._protocol
        if protocol.closed or self._transport.is_closing():
            raise httpcore.WriteError(str(protocol.error or "the connection is closed"))
        self._corked.append(buffer)
        self._corked_size += len(buffer)
        if self._corked_size >= _CORK_LIMIT:
            await self._flush(timeout)

    async def _flush(self, timeout: float | None) -> None:
        protocol = self._protocol
        data = b"".join(self._corked)
        self._corked.clear()
        self._corked_size = 0
        if protocol.closed or self._transport.is_closing():
            raise httpcore.WriteError(str(protocol.error or "the connection is closed"))
        self._transport.write(data)
        try:
            await protocol.drained(timeout)
        except TimeoutError:
            raise httpcore.WriteTimeout("timed out writing to the server") from None
        if protocol.closed and protocol.error is not None:
            raise httpcore.WriteError(str(protocol.error))

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self._corked:  # a proxy's CONNECT goes out before the handshake
            await self._flush(timeout)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                tls = await loop.start_tls(
                    self._transport, self._protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout("timed out during the TLS handshake") from None
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        if tls is None:  # the connection closed during the handshake
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        assert isinstance(tls, asyncio.Transport)
        self._protocol.transport = tls
        return _Stream(tls, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":
            return self._is_readable()
        return None

    def _is_readable(self) -> bool:
        """Whether an idle connection has something to say: then it cannot be reused.

        Bytes or EOF the protocol already holds say so at once; bytes the loop has not
        read yet are still in the socket, which one ``poll`` shows.
        """
        protocol = self._protocol
        if protocol.buffer or protocol.eof or self._transport.is_closing():
            return True
        sock = self._transport.get_extra_info("socket")
        if sock is None or sock.fileno() < 0:
            return True
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on plain asyncio transports."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _Protocol, host, port, local_addr=local
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        return _configured(transport, protocol, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_unix_connection(_Protocol, path)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {path}") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        return _configured(transport, protocol, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _configured(
    transport: asyncio.BaseTransport,
    protocol: _Protocol,
    socket_options: Iterable[SocketOption] | None,
) -> _Stream:
    assert isinstance(transport, asyncio.Transport)
    sock: socket.socket | None = transport.get_extra_info("socket")
    for option in socket_options or ():
        if sock is not None:
            sock.setsockopt(*option)  # asyncio already sets TCP_NODELAY on TCP sockets
    return _Stream(transport, protocol)


class AsyncioTransport(httpx.AsyncHTTPTransport):
    """httpx's HTTP transport, with connections made by :class:`AsyncioBackend`."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits()
        # Not super().__init__(): it would build a second pool and load the CA bundle
        # again, only for both to be replaced here.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=AsyncioBackend(),
        )
