"""structlog set-up and secret redaction, in one place.

JSON lines when stderr is not a terminal (containers, cron), readable lines on a terminal.
Every configured secret (and any bearer credential) is scrubbed from every event value,
whatever key it hides under, before anything is rendered (`sync.privacy.redact.Scrubber`); values
of sensitive fields (tax ids and configured ones) are masked (`mask_sensitive`).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO, cast

import structlog

from sync.privacy.masking import mask_sensitive
from sync.privacy.redact import NO_SECRETS, REDACTED, Scrubber, is_secret_key

__all__ = [
    "REDACTED",
    "configure_logging",
    "mask_sensitive",
    "redact_secrets",
    "scrub_message",
]

_configured = NO_SECRETS
"""The scrubber of the last `configure_logging`: the process's secrets."""


def scrub_message(text: str) -> str:
    """``text`` without the secrets logging was configured with, for messages printed
    outside the log (the CLI's last word on a failure)."""
    return _configured(text)


def redact_secrets(secrets: Iterable[str] | Scrubber) -> structlog.types.Processor:
    """A processor removing each of ``secrets`` (and secret-named keys) from events."""
    scrub = secrets if isinstance(secrets, Scrubber) else Scrubber(secrets)

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return scrub(value)
        if isinstance(value, dict):
            return {k: REDACTED if is_secret_key(k) else clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(clean(v) for v in value)
        if isinstance(value, BaseException):
            return scrub(repr(value))
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            # A RecordError's reason is a side's words: scrubbed like any text.
            texts = {
                f.name: clean(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if f.init and isinstance(getattr(value, f.name), str)
            }
            return dataclasses.replace(value, **texts)
        return value

    def processor(
        _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event):
            event[key] = REDACTED if is_secret_key(key) else clean(event[key])
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
    global _configured  # logging is process-wide state by nature
    _configured = Scrubber(secrets)
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
            redact_secrets(_configured),
            mask_sensitive(sensitive),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=False,
    )
