"""Every exception flowtly-sync raises on purpose, in one place.

The hierarchy::

    SyncError                         base of everything below
    ├── ConfigError                   bad configuration; names the key (exit 2)
    ├── StoreError                    the state store cannot be opened or migrated (exit 1)
    │   └── LockHeld                  another run holds this sync's lock (exit 1)
    ├── ConnectorError                a side (CRM connector or Flowtly) failed
    │   ├── InputError                a malformed source (file, line, column) (exit 1)
    │   ├── CursorExpired             a side no longer reads from a stored cursor
    │   └── FlowtlyError              Flowtly answered something we cannot use
    │       ├── TransportSecurityError plain http:// to a non-loopback host
    │       ├── AuthenticationError   401/403: token missing, wrong or lacking rights
    │       ├── NotFound              404
    │       ├── ValidationFailed      400/422: the request was understood and refused
    │       ├── MethodNotAllowed      405, 406, 409, 415: a protocol mismatch on our side
    │       └── RetryableError        worth trying again later
    │           ├── RateLimited       429, with the server's Retry-After
    │           └── TransientError    5xx, timeouts, dropped connections
    └── SafetyError                   a guard refused to act (e.g. the mass-delete guard)

`RecordError` is not an exception: it is the value that describes one rejected record
(entity, id, field, reason) in reports and in the store; a run goes on past it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "ConnectorError",
    "CursorExpired",
    "FlowtlyError",
    "InputError",
    "LockHeld",
    "MethodNotAllowed",
    "NotFound",
    "RateLimited",
    "RecordError",
    "RetryableError",
    "SafetyError",
    "StoreError",
    "SyncError",
    "TransientError",
    "TransportSecurityError",
    "ValidationFailed",
    "Violation",
]


class SyncError(Exception):
    """Base class of all errors raised by flowtly-sync."""


class ConfigError(SyncError):
    """The configuration is invalid. ``key`` is the dotted key at fault, e.g. ``flowtly.token``."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"config key {key!r}: {reason}")


class StoreError(SyncError):
    """The state store cannot be opened, migrated or written."""


class LockHeld(StoreError):
    """Another process runs the same sync; ``holder`` says who (host, pid, since)."""

    def __init__(self, sync_name: str, holder: str) -> None:
        self.sync_name = sync_name
        self.holder = holder
        super().__init__(f"sync {sync_name!r} is already running ({holder})")


class ConnectorError(SyncError):
    """A side of the sync failed as a whole (not one record)."""


class InputError(ConnectorError):
    """A source is malformed in a way that stops reading it (e.g. a missing header column)."""

    def __init__(
        self, source: str, reason: str, *, line: int | None = None, column: str | None = None
    ) -> None:
        self.source = source
        self.line = line
        self.column = column
        self.reason = reason
        where = source
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {reason}")


class CursorExpired(ConnectorError):
    """A side cannot read changes since the cursor it was given (its change feed keeps
    only so much history, or the cursor's format changed). The engine forgets the stored
    cursor and reads that entity completely in the same run."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One API Platform constraint violation."""

    property_path: str
    message: str
    code: str | None = None

    def __str__(self) -> str:
        return f"{self.property_path}: {self.message}" if self.property_path else self.message


class FlowtlyError(ConnectorError):
    """Flowtly answered with an error. ``status`` is None when no response arrived.

    Messages name the method and path requested and what Flowtly said; they never contain
    the token or the request headers.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: str = "",
        status: int | None = None,
        detail: str | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.detail = detail
        super().__init__(message)


class TransportSecurityError(FlowtlyError):
    """Refused to send a token over plain HTTP to a host that is not loopback."""


class AuthenticationError(FlowtlyError):
    """Flowtly refused the credentials (401) or their rights (403)."""


class NotFound(FlowtlyError):
    """The requested resource does not exist (404)."""


class ValidationFailed(FlowtlyError):
    """Flowtly refused the payload: 422 with violations, or 400 (bad IRI, wrong type)."""

    def __init__(
        self, message: str, *, violations: tuple[Violation, ...] = (), **kwargs: object
    ) -> None:
        self.violations = violations
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class MethodNotAllowed(FlowtlyError):
    """405/406/409/415: the request's method, format or state does not fit the resource."""


class RetryableError(FlowtlyError):
    """A failure that may pass if the same request is sent again later."""


class RateLimited(RetryableError):
    """429 Too Many Requests; ``retry_after`` in seconds when the server said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class TransientError(RetryableError):
    """5xx answers, timeouts and broken connections."""


class SafetyError(SyncError):
    """A safety guard refused an action; the message says which guard and why."""


@dataclass(frozen=True, slots=True)
class RecordError:
    """One record that could not be read or written; the run goes on without it.

    ``record_id`` is the id on ``side`` (or a line reference for unreadable input).
    """

    entity: str
    side: str
    record_id: str
    reason: str
    field: str | None = None
    value: str | None = None

    def __str__(self) -> str:
        where = f"{self.entity} {self.record_id} ({self.side})"
        if self.field:
            where += f", field {self.field}"
        return f"{where}: {self.reason}"
