"""Connection limits of the daemon's HTTP endpoint, which uvicorn does not enforce itself.

uvicorn bounds the time between requests only (its keep-alive timer, restarted by every
byte received), never the time a request takes to arrive: a client sending one byte every
few seconds holds its connection, and a file descriptor, forever. A few hundred such
clients starve ``/healthz`` and leave the scheduled runs without file descriptors.

`guarded_protocol` is uvicorn's h11 protocol with two additions:

- while the server waits for the client (for a request's headers, or its body), a timer
  runs that is not restarted by the bytes that trickle in; when it fires the connection is
  closed;
- past ``max_connections``, a new connection makes room by closing the one that has waited
  longest for its client. Connections whose request is being answered are never closed,
  and a prompt client (``/healthz`` probes) always gets through. uvicorn's own
  ``limit_concurrency`` would instead answer 503 to every request, probes included.

Parsing stays h11's; only its state (``their_state``) is read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

import h11
import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["DEFAULT_LIMITS", "HttpLimits", "guarded_protocol"]

log = structlog.get_logger("sync.daemon")

_HANDLER_FIRST = 1.0
"""Seconds the body guard waits beyond ``body_timeout``: a handler that reads the body
(the webhook) answers 408 at ``body_timeout`` itself, which is kinder than a cut."""


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """How long and how many clients the endpoint waits for."""

    header_timeout: float = 10.0
    """Seconds from connecting (or from the previous answer) to the end of the headers."""
    body_timeout: float = 10.0
    """Seconds from the end of the headers to the end of the body."""
    max_connections: int = 64
    """Open connections at most; a probe needs one, a webhook sender a few."""
    max_header_bytes: int = 16 * 1024
    """Bytes of an incomplete request head buffered at most (h11 answers 400 beyond)."""


DEFAULT_LIMITS = HttpLimits()


class _Waiting(StrEnum):
    HEADERS = "headers"
    BODY = "body"


class _GuardedH11Protocol(H11Protocol):
    """`H11Protocol` that closes connections whose client is too slow (see the module)."""

    limits: ClassVar[HttpLimits] = DEFAULT_LIMITS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting: _Waiting | None = None
        self._waiting_since = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch()
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Arm the timer for what we now wait for; bytes of the same wait do not re-arm it."""
        state = self.conn.their_state
        waiting = (
            _Waiting.HEADERS
            if state is h11.IDLE
            else _Waiting.BODY
            if state is h11.SEND_BODY
            else None
        )
        if waiting is self._waiting:
            return
        self._disarm()
        self._waiting = waiting
        if waiting is None:
            return
        self._waiting_since = self.loop.time()
        seconds = (
            self.limits.header_timeout
            if waiting is _Waiting.HEADERS
            else self.limits.body_timeout + _HANDLER_FIRST
        )
        self._timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting = None

    def _expired(self) -> None:
        self._timer = None
        self._close("header_timeout" if self._waiting is _Waiting.HEADERS else "body_timeout")

    def _close(self, reason: str) -> None:
        if self.transport.is_closing():
            return
        waited = round(self.loop.time() - self._waiting_since, 3)
        log.info(
            "http_connection_closed",
            reason=reason,
            waiting_for=str(self._waiting),
            waited_s=waited,
            client=_client(self.client),
        )
        self._disarm()
        self.transport.close()

    def _make_room(self) -> None:
        """Close the connection that has waited longest for its client (this one if all
        others are being answered)."""
        waiting = [
            c
            for c in self.connections
            if isinstance(c, _GuardedH11Protocol)
            and c._waiting is not None
            and not c.transport.is_closing()
        ]
        victim = min(waiting, key=lambda c: c._waiting_since, default=self)
        victim._close("too_many_connections")


def _client(address: tuple[str, int] | None) -> str | None:
    return None if address is None else f"{address[0]}:{address[1]}"


def guarded_protocol(limits: HttpLimits) -> type[H11Protocol]:
    """The protocol class to give ``uvicorn.Config(http=...)`` for ``limits``."""
    return type("GuardedH11Protocol", (_GuardedH11Protocol,), {"limits": limits})
