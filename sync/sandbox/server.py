"""Serving the sandbox over HTTP with uvicorn (``flowtly-sync sandbox``)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn

from sync.sandbox.app import create_app
from sync.sandbox.settings import SandboxSettings

__all__ = ["run_server", "serve"]

_POLL_SECONDS = 0.01


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def _wait_started(server: uvicorn.Server, running: asyncio.Task[None]) -> None:
    # uvicorn exposes readiness only as the ``started`` flag, so poll it with short awaits.
    while not server.started and not running.done():  # noqa: ASYNC110
        await asyncio.sleep(_POLL_SECONDS)
    if running.done():
        await running


async def serve(
    settings: SandboxSettings,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    log_level: str = "warning",
) -> None:
    """Serve a sandbox until SIGINT/SIGTERM (handled by uvicorn) or until ``stop`` is set.

    Once listening, prints ``Flowtly sandbox serving at http://HOST:PORT`` (the real port
    when ``port`` is 0) and hands the URL to ``ready``.
    """
    # Bind first, ourselves: uvicorn turns a bind failure into sys.exit inside its task.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
        # Accepted sockets inherit this on Linux: without it a response written in two
        # parts waits for the client's delayed ACK, about 40 ms per request on loopback.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:
        raise OSError(
            exc.errno, f"the sandbox could not listen on {_url(host, port)}: {exc.strerror}"
        ) from exc
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        # A C parser: with h11's pure-Python one, parsing and writing HTTP took about half
        # the sandbox's time per request, and a sync against it measured the sandbox.
        http="httptools",
    )
    server = uvicorn.Server(config)
    running = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await _wait_started(server, running)
    except BaseException:
        sock.close()
        raise
    if not server.started:
        sock.close()
        return
    bound = int(sock.getsockname()[1])
    url = _url(host, bound)
    print(f"Flowtly sandbox serving at {url}", flush=True)
    if ready is not None:
        ready(url)
    watcher = None
    if stop is not None:

        async def watch(event: asyncio.Event) -> None:
            await event.wait()
            server.should_exit = True

        watcher = asyncio.create_task(watch(stop))
    try:
        await running
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


def run_server(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    db: Path | str | None = None,
    token: str | None = None,
    latency_ms: float = 0.0,
    rate_limit: float = 0.0,
    fail_rate: float = 0.0,
    seed: int | None = None,
) -> int:
    """Blocking entry point for the CLI: build settings from options, serve, return 0."""
    settings = SandboxSettings(
        token=token,
        latency_ms=latency_ms,
        rate_limit=rate_limit,
        fail_rate=fail_rate,
        seed=seed,
        db=db,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, host, port))
    return 0
