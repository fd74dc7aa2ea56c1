"""structlog set-up and secret redaction, in one place.

JSON lines when stderr is not a terminal (containers, cron), readable lines on a terminal.
Every configured secret is replaced by ``[redacted]`` in every event value, whatever key
it hides under, before anything is rendered.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

__all__ = ["REDACTED", "configure_logging", "redact_secrets"]

REDACTED = "[redacted]"
_SECRET_KEYS = frozenset({"token", "authorization", "secret", "password", "api_key"})


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
            return {
                k: REDACTED if str(k).lower() in _SECRET_KEYS else clean(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(clean(v) for v in value)
        return value

    def processor(
        _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event):
            event[key] = REDACTED if key.lower() in _SECRET_KEYS else clean(event[key])
        return event

    return processor


def configure_logging(level: str = "info", fmt: str = "auto", secrets: Iterable[str] = ()) -> None:
    """Configure structlog for the process; ``fmt`` is auto, json or console."""
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
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
