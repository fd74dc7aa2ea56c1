"""``[flowtly]``: where Flowtly is, how hard we may use it, and the values sent for fields
Flowtly requires; the settings model of the Flowtly connector (`sync.flowtly.side`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from connectors.base import ConnectorSettings
from sync.flowtly.assumptions import FREE_ENUMS
from sync.settings_base import DEFAULT_CONCURRENCY, Concurrency, Seconds, Section

__all__ = ["SANDBOX_SCHEME", "FlowtlyConfig", "FlowtlyDefaults", "anchored_url", "sandbox_file"]

SANDBOX_SCHEME = "sandbox://"
"""``base_url = "sandbox://PATH"`` runs the Flowtly sandbox in-process, persisted at PATH
(``sandbox://:memory:`` keeps it in memory)."""


class FlowtlyDefaults(Section):
    """Values sent for fields Flowtly requires when a record has none."""

    currency: str = "EUR"
    status: str = FREE_ENUMS["Client.status"]
    tin_type: str = FREE_ENUMS["Client.tinType"]
    documents_language: str = FREE_ENUMS["Client.documentsLanguage"]
    contact_type: str = FREE_ENUMS["ClientContact.type"]
    counterparty_type: str = FREE_ENUMS["Counterparty.type"]
    employee: str | None = None


class FlowtlyConfig(ConnectorSettings):
    """``[flowtly]``: where Flowtly is and how hard we may use it; the settings model of
    the Flowtly connector (`sync.flowtly.side.FlowtlySide`)."""

    base_url: str = "https://api.flowtly.eu"
    token: SecretStr | None = None
    concurrency: Concurrency = DEFAULT_CONCURRENCY
    rate_limit: float = Field(10.0, ge=0)
    timeout: float = Field(30.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20)
    request_timeout: Seconds = 45.0
    """One attempt as a whole, connect to last byte (``timeout`` bounds each read)."""
    request_deadline: Seconds = 90.0
    """One request with its retries and backoff; waits Flowtly asks for are not counted."""
    max_retry_after: Seconds = 300.0
    """The longest Retry-After honoured; a longer one stops the run."""
    max_response_bytes: int = Field(50_000_000, ge=1024)
    incremental: bool = False
    """Read contacts and notes changed since the last run (``updatedAt[after]``) instead of
    listing them whole. A record deleted in Flowtly then shows only at the next complete
    listing (``[sync] full_scan``), so it is off unless asked for."""
    incremental_overlap: Seconds = 300.0
    """How far before its cursor an incremental read starts (``"5m"``, or seconds): a
    write Flowtly stamps before another one may become visible after it."""
    defaults: FlowtlyDefaults = FlowtlyDefaults()

    @property
    def incremental_overlap_delta(self) -> timedelta:
        return timedelta(seconds=self.incremental_overlap)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith((SANDBOX_SCHEME, "http://", "https://")):
            raise ValueError("must start with https://, http:// (loopback only) or sandbox://")
        return value.rstrip("/")


def sandbox_file(base_url: str) -> Path | None:
    """The database file of a ``sandbox://PATH`` URL; None when it is kept in memory.

    Raises ValueError when ``base_url`` is not a sandbox URL.
    """
    if not base_url.startswith(SANDBOX_SCHEME):
        raise ValueError(f"not a {SANDBOX_SCHEME} URL: {base_url!r}")
    target = base_url[len(SANDBOX_SCHEME) :]
    return None if target in ("", ":memory:") else Path(target)


def anchored_url(base_url: str, base: Path) -> str:
    """``base_url`` with a relative sandbox file taken relative to ``base`` (the folder of
    the configuration file); any other URL as it is."""
    if not base_url.startswith(SANDBOX_SCHEME):
        return base_url
    db = sandbox_file(base_url)
    if db is None or db.is_absolute():
        return base_url
    return SANDBOX_SCHEME + str(base / db)
