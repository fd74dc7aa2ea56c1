"""Running the daemon as a process: HTTP endpoint, scheduler, and the signals that end it.

The first SIGTERM or SIGINT stops scheduling and lets each run in flight finish the
operation it is on and commit (``run_sync`` polls ``stopping``), for at most
``[daemon] shutdown_timeout`` seconds; the process then exits 0. A second signal cancels
the runs at once (each records itself as failed; the store commits per operation, so it
stays consistent) and the process exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Iterator

import structlog
import uvicorn

from sync.config import Settings
from sync.daemon._daemon import Daemon
from sync.daemon._guard import DEFAULT_LIMITS, HttpLimits, guarded_protocol
from sync.daemon._http import create_app
from sync.daemon._runner import secrets_of
from sync.errors import ConfigError, SyncError
from sync.exit_codes import ExitCode
from sync.report.logs import configure_logging
from sync.wiring import open_store

__all__ = [
    "EXIT_FORCED",
    "EXIT_OK",
    "READY_PREFIX",
    "cmd_daemon",
    "http_server",
    "run_daemon",
    "serve_daemon",
]

EXIT_OK = ExitCode.OK
EXIT_FORCED = ExitCode.FAILED
"""A second signal cut the operations in flight short."""
"""A second signal, or runs that outlived the shutdown timeout, cut runs short."""

READY_PREFIX = "flowtly-sync daemon listening at "
_POLL_SECONDS = 0.01
_CANCEL_GRACE = 5.0
_SIGNALS = (signal.SIGTERM, signal.SIGINT)

log = structlog.get_logger("sync.daemon")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _Shutdown:
    """Counts signals: the first asks for a graceful stop, the second forces it."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.requested = asyncio.Event()
        self.forced = False

    def on_signal(self, sig: signal.Signals) -> None:
        if not self.requested.is_set():
            log.info("signal_received", signal=sig.name, action="finish operations in flight")
            self.daemon.stop()
            self.requested.set()
            return
        log.warning("signal_received", signal=sig.name, action="cancel runs now")
        self.forced = True
        self.daemon.cancel()


def http_server(daemon: Daemon, limits: HttpLimits) -> uvicorn.Server:
    """The uvicorn server of ``daemon``'s endpoint, guarded by ``limits`` (`sync.daemon._guard`).

    Plain h11 without WebSocket upgrades: the guard reads h11's state, and no route
    upgrades. Signals are left to the daemon.
    """
    config = uvicorn.Config(
        create_app(daemon, limits),
        http=guarded_protocol(limits),
        ws="none",
        h11_max_incomplete_event_size=limits.max_header_bytes,
        log_level="warning",
        lifespan="off",
        access_log=False,
        log_config=None,
    )
    return _Server(config)


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _bind(host: str, port: int) -> socket.socket:
    # Bound here, not by uvicorn, which turns a bind failure into sys.exit in its task.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigError(
            "daemon.listen", f"cannot listen on {_url(host, port)}: {exc.strerror}"
        ) from None


async def _started(server: uvicorn.Server, running: asyncio.Task[None]) -> bool:
    # uvicorn exposes readiness only as the ``started`` flag, so poll it with short awaits.
    while not server.started and not running.done():  # noqa: ASYNC110
        await asyncio.sleep(_POLL_SECONDS)
    return server.started and not running.done()


def _schedules(daemon: Daemon) -> dict[str, str]:
    return {name: str(daemon.state(name).trigger or "webhooks only") for name in daemon.names}


async def _wind_down(daemon: Daemon, shutdown: _Shutdown) -> int:
    daemon.stop()
    log.info("daemon_stopping", runs_in_flight=len(daemon.tasks))
    timeout = daemon.settings.daemon.shutdown_timeout
    if not await daemon.drain(timeout):
        log.warning("shutdown_timeout", seconds=timeout, runs_in_flight=len(daemon.tasks))
        shutdown.forced = True
        daemon.cancel()
        await daemon.drain(_CANCEL_GRACE)
    return EXIT_FORCED if shutdown.forced else EXIT_OK


async def serve_daemon(
    daemon: Daemon,
    *,
    ready: Callable[[str], None] | None = None,
    limits: HttpLimits = DEFAULT_LIMITS,
) -> int:
    """Serve ``daemon`` until SIGTERM or SIGINT; returns the process exit code.

    Once listening it prints ``flowtly-sync daemon listening at URL`` (the real port when
    ``listen`` asks for port 0) and hands the URL to ``ready``.
    """
    host, port = daemon.settings.daemon.address()
    sock = _bind(host, port)
    server = http_server(daemon, limits)
    loop = asyncio.get_running_loop()
    shutdown = _Shutdown(daemon)
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, shutdown.on_signal, sig)
    running = loop.create_task(server.serve(sockets=[sock]))
    try:
        if not await _started(server, running):
            raise SyncError(f"the HTTP endpoint on {_url(host, port)} did not start")
        for name in daemon.names:
            daemon.refresh_gauges(name)
        daemon.start_scheduler()
        url = _url(host, int(sock.getsockname()[1]))
        log.info("daemon_started", url=url, syncs=_schedules(daemon))
        print(READY_PREFIX + url, flush=True)
        if ready is not None:
            ready(url)
        stop_wait = loop.create_task(shutdown.requested.wait())
        await asyncio.wait({stop_wait, running}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if running.done() and not shutdown.requested.is_set():
            log.error("http_endpoint_died")
            shutdown.forced = True
        code = await _wind_down(daemon, shutdown)
    finally:
        daemon.stop()
        server.should_exit = True
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await running
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
        sock.close()
    log.info("daemon_stopped", exit_code=code)
    return code


async def _main(settings: Settings) -> int:
    store = open_store(settings)
    try:
        return await serve_daemon(Daemon(settings, store))
    finally:
        store.close()


def run_daemon(settings: Settings) -> int:
    """Run the daemon for ``settings`` until a signal ends it; the exit code."""
    return asyncio.run(_main(settings))


def cmd_daemon(_args: argparse.Namespace, settings: Settings) -> int:
    """``flowtly-sync daemon``: log redaction learns every secret first (named syncs'
    tokens and the webhook secret included)."""
    configure_logging(
        settings.logging.level,
        settings.logging.format,
        secrets_of(settings),
        sensitive=settings.quality.sensitive_fields,
    )
    return run_daemon(settings)
