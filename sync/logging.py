"""structlog set-up and secret redaction, in one place.

JSON lines when stderr is not a terminal (containers, cron), readable lines on a terminal.
Every configured secret is replaced by ``[redacted]`` in every event value, whatever key
it hides under, before anything is rendered; values of sensitive fields (tax ids and
configured ones) are masked (`mask_sensitive`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO, cast

import structlog

from sync._quality_masking import mask_sensitive

__all__ = ["REDACTED", "configure_logging", "mask_sensitive", "redact_secrets"]

REDACTED = "[redacted]"
_SECRET_KEYS = frozenset({"token", "authorization", "secret", "password", "api_key"})
_SECRET_SUFFIXES = ("_token", "_secret", "_password")


def _secret_key(key: object) -> bool:
    name = str(key).lower()
    return name in _SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)


def redact_secrets(secrets: Iterable[str]) -> structlog.types.Processor:
    """A processor removing each of ``secrets`` (and secret-named keys) from events."""
    known = tuple(s for s in secrets if s and len(s) >= 4)

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            for secret in known:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: REDACTED if _secret_key(k) else clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(clean(v) for v in value)
        return value

    def processor(
        _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event):
            event[key] = REDACTED if _secret_key(key) else clean(event[key])
        return event

    return processor


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at write time, not at configuration time.

    Capturing tools (pytest, the daemon's tests) swap ``sys.stderr``; binding the stream
    once would leave the logger writing to a closed file afterwards.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    secrets: Iterable[str] = (),
    sensitive: Iterable[str] = (),
) -> None:
    """Configure structlog for the process; ``fmt`` is auto, json or console.

    Values of sensitive fields (tax ids, and ``sensitive``: ``[quality] sensitive_fields``)
    are masked in every event.
    """
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets(secrets),
            mask_sensitive(sensitive),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=False,
    )
