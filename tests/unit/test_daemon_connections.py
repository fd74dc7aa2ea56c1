"""The daemon's HTTP endpoint against slow and numerous clients, over real loopback sockets.

Deadlines are a few tenths of a second; clients that drip do so every few hundredths.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import uvicorn
from structlog.testing import capture_logs

from sync.config import Settings, load_settings
from sync.daemon import Daemon, HttpLimits, http_server
from sync.engine.run import RunResult
from sync.store import Store

LIMITS = HttpLimits(header_timeout=0.3, body_timeout=0.3, max_connections=40)
DRIP_S = 0.03
SECRET = "whsec-connections-0123456789"
WEBHOOK_HEAD = (
    b"POST /webhooks/crm HTTP/1.1\r\nHost: daemon\r\nContent-Length: 1000\r\n"
    b"X-Flowtly-Sync-Timestamp: 1\r\nX-Flowtly-Sync-Signature: sha256=00\r\n\r\n"
)


async def _runner(settings: Settings, _store: Store, _stopping: Callable[[], bool]) -> RunResult:
    return RunResult(settings.sync.name, False)


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[store]
url = "sqlite:///state.db"
[flowtly]
base_url = "sandbox://:memory:"
[daemon]
webhook_secret = "{SECRET}"
""",
        encoding="utf-8",
    )
    store = Store.open(f"sqlite:///{tmp_path}/state.db")
    yield Daemon(load_settings(config), store, runner=_runner)
    store.close()


@dataclass
class Endpoint:
    host: str
    port: int
    server: uvicorn.Server

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def open(self, data: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        if data:
            writer.write(data)
            await writer.drain()
        return reader, writer


async def _serve(daemon: Daemon, limits: HttpLimits) -> AsyncIterator[Endpoint]:
    sock = socket.create_server(("127.0.0.1", 0))
    server = http_server(daemon, limits)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # uvicorn offers only this flag to wait on
        assert not task.done(), "the endpoint did not start"
        await asyncio.sleep(0.01)
    try:
        yield Endpoint("127.0.0.1", sock.getsockname()[1], server)
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def endpoint(daemon: Daemon) -> AsyncIterator[Endpoint]:
    async for served in _serve(daemon, LIMITS):
        yield served


async def _drip(writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    """One byte every `DRIP_S`, far more often than any deadline, until the server hangs up."""
    while not stop.is_set() and not writer.is_closing():
        try:
            writer.write(b"x")
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(DRIP_S)


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bytes:
    """What the server sent before closing the connection (fails if it stays open).

    Read chunk by chunk: a drip byte written after the server closed draws a reset, and a
    reset makes the reader drop what it buffered but was not asked for yet.
    """
    received = bytearray()
    async with asyncio.timeout(within):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    return bytes(received)


async def _probe(endpoint: Endpoint) -> float:
    """Seconds a fresh client waits for /healthz."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=endpoint.url, timeout=5) as http:
        response = await http.get("/healthz")
    assert response.status_code in (200, 503)  # answered; 503 = the scheduler is not started
    assert "status" in response.json()
    return time.monotonic() - started


def _no_tracebacks(records: list[logging.LogRecord], events: list[dict[str, Any]]) -> None:
    assert [r.getMessage() for r in records if r.exc_info or r.levelno >= logging.ERROR] == []
    assert [e for e in events if "exc_info" in e or "exception" in e] == []


async def test_slow_clients_neither_block_healthz_nor_stay_open(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    stop = asyncio.Event()
    with capture_logs() as events:
        silent = [await endpoint.open() for _ in range(8)]
        slow_headers = [await endpoint.open(b"GET /healthz HTTP/1.1\r\nX-Slow: ") for _ in range(8)]
        slow_bodies = [await endpoint.open(WEBHOOK_HEAD + b"{") for _ in range(8)]
        drips = [
            asyncio.create_task(_drip(writer, stop)) for _, writer in slow_headers + slow_bodies
        ]
        try:
            assert await _probe(endpoint) < 2.0
            started = time.monotonic()
            closed = await asyncio.gather(
                *(_closed_by_server(reader, 5) for reader, _ in silent + slow_headers + slow_bodies)
            )
            took = time.monotonic() - started
        finally:
            stop.set()
            await asyncio.gather(*drips)
            for _, writer in silent + slow_headers + slow_bodies:
                writer.close()
    assert took < LIMITS.body_timeout + 2
    assert all(answer == b"" for answer in closed[:16])
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in closed[16:]), closed[16:]
    reasons = [e["reason"] for e in events if e["event"] == "http_connection_closed"]
    assert sorted(reasons) == ["header_timeout"] * 16
    assert [e["event"] for e in events if e["event"].startswith("webhook_")] == [
        "webhook_too_slow"
    ] * 8
    _no_tracebacks(caplog.records, events)
    assert await _probe(endpoint) < 2.0


async def test_a_keep_alive_connection_dripping_its_next_request_is_closed(
    endpoint: Endpoint,
) -> None:
    reader, writer = await endpoint.open(b"GET /healthz HTTP/1.1\r\nHost: daemon\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ")  # answered: the scheduler is not started
    length = int(next(line for line in head.split(b"\r\n") if line.startswith(b"content-length"))
                 .split(b":")[1])  # fmt: skip
    await reader.readexactly(length)
    stop = asyncio.Event()
    drip = asyncio.create_task(_drip(writer, stop))
    try:
        # Each byte restarts uvicorn's keep-alive timer; the header deadline is not restarted.
        assert await _closed_by_server(reader, 3) == b""
    finally:
        stop.set()
        await drip
        writer.close()


async def test_connections_beyond_the_bound_make_room_and_probes_get_through(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    limits = HttpLimits(header_timeout=30, body_timeout=30, max_connections=10)
    async for endpoint in _serve(daemon, limits):
        with capture_logs() as events:
            idle = [await endpoint.open() for _ in range(30)]
            # Let the server accept them all before counting.
            for _ in range(100):
                if sum(e["event"] == "http_connection_closed" for e in events) >= 20:
                    break
                await asyncio.sleep(0.01)
            assert len(endpoint.server.server_state.connections) <= limits.max_connections
            assert await _probe(endpoint) < 2.0
            oldest = await asyncio.gather(*(_closed_by_server(r, 2) for r, _ in idle[:20]))
            for _, writer in idle:
                writer.close()
        assert oldest == [b""] * 20
        reasons = {e["reason"] for e in events if e["event"] == "http_connection_closed"}
        assert reasons == {"too_many_connections"}
        _no_tracebacks(caplog.records, events)


async def test_a_webhook_sender_that_hangs_up_is_logged_once_without_a_traceback(
    endpoint: Endpoint, daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    with capture_logs() as events:
        _, writer = await endpoint.open(WEBHOOK_HEAD + b'{"event"')
        await asyncio.sleep(0.05)  # the handler is reading the body
        writer.transport.abort()
        for _ in range(100):
            if any(e["event"] == "webhook_disconnected" for e in events):
                break
            await asyncio.sleep(0.01)
        assert await _probe(endpoint) < 2.0
    assert [e for e in events if e["event"].startswith("webhook_")] == [
        {"event": "webhook_disconnected", "source": "crm", "log_level": "info"}
    ]
    labels = {"outcome": "disconnected"}
    assert daemon.metrics.registry.get_sample_value("flowtly_sync_webhooks_total", labels) == 1
    _no_tracebacks(caplog.records, events)
