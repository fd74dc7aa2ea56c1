"""Every exception flowtly-sync raises on purpose, in one place.

The hierarchy::

    SyncError                         base of everything below
    ├── ConfigError                   bad configuration; names the key (exit 2)
    ├── StoreError                    the state store cannot be opened or migrated (exit 1)
    │   └── LockHeld                  another run holds this sync's lock (exit 1)
    ├── ConnectorError                a side (CRM connector or Flowtly) failed
    │   ├── InputError                a malformed source (file, line, column) (exit 1)
    │   ├── CursorExpired             a side no longer reads from a stored cursor
    │   └── ApiError                  an API side answered something we cannot use;
    │       │                         names the side and the method and path asked
    │       ├── TransportSecurityError plain http:// to a non-loopback host
    │       ├── AuthenticationError   401/403: token missing, wrong or lacking rights
    │       ├── NotFound              404
    │       ├── ValidationFailed      400/422: the request was understood and refused
    │       ├── MethodNotAllowed      405, 406, 409, 415: a protocol mismatch on our side
    │       ├── BudgetExhausted       the API's daily request budget is used up (exit 1)
    │       ├── RetryableError        worth trying again later
    │       │   ├── RateLimited       429, with the server's Retry-After
    │       │   └── TransientError    5xx, timeouts, dropped connections
    │       └── FlowtlyError          Flowtly broke API Platform's protocol (not JSON-LD,
    │                                 an off-origin link, a status it never documents)
    ├── DeadlineExceeded              a limit on waiting ran out; names its setting (exit 1)
    └── SafetyError                   a guard refused to act (e.g. the mass-delete guard)
        └── BindingMismatch           the store belongs to other sides than configured (exit 1)

`RecordError` is not an exception: it is the value that describes one rejected record
(entity, id, field, reason) in reports and in the store; a run goes on past it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ApiError",
    "AuthenticationError",
    "BindingMismatch",
    "BudgetExhausted",
    "ConfigError",
    "ConnectorError",
    "CursorExpired",
    "DeadlineExceeded",
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
    "described",
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


class ApiError(ConnectorError):
    """An API side answered with an error. ``status`` is None when no response arrived.

    ``side`` names the API (``flowtly``, ``hubspot``, ...). Messages name the method and
    path requested and what the API said; they never contain tokens or request headers.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: str = "",
        status: int | None = None,
        detail: str | None = None,
        side: str = "",
        hint: str = "",
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.detail = detail
        self.side = side
        self.hint = hint
        """What a person can do about it (the setting of a refused token), said after the
        message where people read it (`described`); the message itself is what the API said."""
        super().__init__(message)


class TransportSecurityError(ApiError):
    """Refused to send a token over plain HTTP to a host that is not loopback."""


class AuthenticationError(ApiError):
    """The API refused the credentials (401) or their rights (403)."""


class NotFound(ApiError):
    """The requested resource does not exist (404)."""


class ValidationFailed(ApiError):
    """The API refused the payload: 422 with violations, or 400 (bad reference, wrong type)."""

    def __init__(
        self, message: str, *, violations: tuple[Violation, ...] = (), **kwargs: object
    ) -> None:
        self.violations = violations
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class MethodNotAllowed(ApiError):
    """405/406/409/415: the request's method, format or state does not fit the resource."""


class BudgetExhausted(ApiError):
    """The API's request budget for the day is used up: every further request would fail
    until ``resets_at`` (when the API says), so the run stops instead of retrying."""

    def __init__(self, message: str, *, resets_at: str | None = None, **kwargs: object) -> None:
        self.resets_at = resets_at
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class RetryableError(ApiError):
    """A failure that may pass if the same request is sent again later."""


class RateLimited(RetryableError):
    """429 Too Many Requests; ``retry_after`` in seconds when the server said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class TransientError(RetryableError):
    """5xx answers, timeouts and broken connections."""


class FlowtlyError(ApiError):
    """Flowtly answered outside API Platform's protocol: a body that is not the JSON-LD
    asked for, a link off its origin, a pagination loop, a status it does not document."""

    def __init__(self, message: str, **kwargs: object) -> None:
        kwargs.setdefault("side", "flowtly")
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class DeadlineExceeded(SyncError):
    """Waiting any longer would pass a limit of ours; ``key`` names its setting.

    A Retry-After beyond ``flowtly.max_retry_after``, a request past
    ``flowtly.request_deadline``, a run past ``sync.run_timeout``. Not a `ConnectorError`:
    it stops the run instead of failing one record, since the next request would wait as long.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


class SafetyError(SyncError):
    """A safety guard refused an action; the message says which guard and why."""


class BindingMismatch(SafetyError):
    """The store was bound to other sides than the configuration names now.

    Its links pair records of the ``recorded`` sides; applied to the ``current`` ones they
    would pair unrelated records (and plan overwrites and deletes), so nothing is read.
    Both mappings go from side (``crm``, ``flowtly``) to identity text without secrets.
    """

    def __init__(
        self, sync_name: str, recorded: Mapping[str, str], current: Mapping[str, str]
    ) -> None:
        self.sync_name = sync_name
        self.recorded = dict(recorded)
        self.current = dict(current)

        changed = sorted(side for side in recorded if recorded[side] != current.get(side))
        kept = [f"{side} {recorded[side]!r}" for side in sorted(recorded) if side not in changed]

        def named(identities: Mapping[str, str]) -> str:
            return " and ".join(f"{side} {identities.get(side)!r}" for side in changed)

        unchanged = f" ({' and '.join(kept)} unchanged)" if kept else ""
        super().__init__(
            f"sync {sync_name!r} refused: its store is bound to {named(self.recorded)}, but "
            f"the configuration now points at {named(self.current)}{unchanged}; nothing was "
            "read from or written to either side, as the store's links pair records of the "
            "recorded sides. Either use a new store for these sides ([store] url), or, only "
            "if they hold the same records (e.g. a moved CRM folder), run "
            f"`flowtly-sync store rebind --sync {sync_name}`."
        )


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


def described(error: BaseException) -> str:
    """``error``'s message with its hint, if it has one: what the command line prints."""
    hint = getattr(error, "hint", "")
    return f"{error} - {hint}" if hint else str(error)
