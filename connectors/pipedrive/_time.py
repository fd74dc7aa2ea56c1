"""Pipedrive's two ways of writing a moment, read into aware UTC datetimes and written back.

API v2 writes RFC 3339 (``2025-01-01T10:20:00Z``); API v1 writes ``YYYY-MM-DD HH:MM:SS``
in UTC without a zone (``2019-12-09 13:59:21``), and ``/v1/recents`` takes its
``since_timestamp`` in that form too.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["parse_time", "rfc3339", "v1_time"]


def parse_time(text: object) -> datetime | None:
    """The moment ``text`` names, in either form; None when empty or unreadable."""
    if not isinstance(text, str) or not text.strip():
        return None
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    # v1 stamps carry no zone: Pipedrive documents them as UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def rfc3339(moment: datetime) -> str:
    """``2025-01-01T10:20:00Z``: the form v2's ``updated_since`` takes."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def v1_time(moment: datetime) -> str:
    """``2025-01-01 10:20:00``: the form v1 answers in and ``since_timestamp`` takes."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
