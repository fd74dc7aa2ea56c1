"""Webhook authentication: HMAC-SHA256 over ``"{timestamp}." + body`` under a shared secret.

A sender puts the Unix time in ``X-Flowtly-Sync-Timestamp`` and ``sha256=<hex digest>`` in
``X-Flowtly-Sync-Signature``. The timestamp bounds replays to the tolerance window, and a
signature seen once inside that window is refused the second time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from enum import StrEnum

from pydantic import SecretStr

__all__ = [
    "SIGNATURE_HEADER",
    "SIGNATURE_PREFIX",
    "TIMESTAMP_HEADER",
    "WebhookRejection",
    "WebhookVerifier",
    "sign",
]

TIMESTAMP_HEADER = "X-Flowtly-Sync-Timestamp"
SIGNATURE_HEADER = "X-Flowtly-Sync-Signature"
SIGNATURE_PREFIX = "sha256="
_MAX_TIMESTAMP_DIGITS = 12


class WebhookRejection(StrEnum):
    """Why a webhook request was refused (logged and counted, never told to the caller)."""

    DISABLED = "disabled"
    MISSING_HEADER = "missing_header"
    BAD_TIMESTAMP = "bad_timestamp"
    STALE = "stale"
    BAD_SIGNATURE = "bad_signature"
    REPLAYED = "replayed"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Flowtly-Sync-Signature`` value for ``body`` sent at ``timestamp``."""
    message = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


class WebhookVerifier:
    """Checks signed webhook requests; ``secret`` None refuses every request."""

    def __init__(
        self, secret: SecretStr | None, tolerance: float, clock: Callable[[], float]
    ) -> None:
        self._secret = secret
        self._tolerance = tolerance
        self._clock = clock
        # signature -> its timestamp, kept while the timestamp is inside the window
        self._seen: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        """Whether a secret is configured."""
        return self._secret is not None

    def verify(
        self, timestamp: str | None, signature: str | None, body: bytes
    ) -> WebhookRejection | None:
        """None when the request is authentic and fresh, else why it is not."""
        if self._secret is None:
            return WebhookRejection.DISABLED
        if not timestamp or not signature:
            return WebhookRejection.MISSING_HEADER
        stamp = timestamp.strip()
        if not stamp.isdigit() or len(stamp) > _MAX_TIMESTAMP_DIGITS:
            return WebhookRejection.BAD_TIMESTAMP
        sent_at = int(stamp)
        now = self._clock()
        if abs(now - sent_at) > self._tolerance:
            return WebhookRejection.STALE
        expected = sign(self._secret.get_secret_value(), sent_at, body)
        # Compared as bytes: compare_digest refuses non-ASCII str, and headers may carry any.
        if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
            return WebhookRejection.BAD_SIGNATURE
        self._forget_expired(now)
        if expected in self._seen:
            return WebhookRejection.REPLAYED
        self._seen[expected] = sent_at
        return None

    def _forget_expired(self, now: float) -> None:
        expired = [sig for sig, at in self._seen.items() if abs(now - at) > self._tolerance]
        for sig in expired:
            del self._seen[sig]
