"""Flowtly's ``updatedAt`` stamps, the times incremental reads go by.

Flowtly stamps records with its own clock, in RFC 3339 with an offset
(``2026-01-05T09:10:00+00:00``); a cursor is the latest stamp a read saw, never a time of
ours. The filter back (API Platform's DateFilter) takes any date PHP can parse: we send
UTC with its offset, at whole seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["aware", "filter_value", "later", "parse"]


def aware(moment: datetime) -> datetime:
    """``moment`` with a zone: one without is UTC, as Flowtly's clock is."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse(stamp: object) -> datetime | None:
    """An ISO 8601 stamp with its offset as a moment; None for anything else (no stamp,
    no date, a date without an offset: no cursor can be made of those)."""
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def later(latest: datetime | None, stamp: object) -> datetime | None:
    """The later of ``latest`` and ``stamp``; a stamp `parse` refuses changes nothing."""
    moment = parse(stamp)
    if moment is None:
        return latest
    return moment if latest is None or moment > latest else latest


def filter_value(moment: datetime) -> str:
    """``moment`` as a DateFilter value: UTC, whole seconds (rounded down, so an inclusive
    ``[after]`` loses nothing), with its offset (``+00:00``, percent-encoded on the wire)."""
    return aware(moment).astimezone(UTC).replace(microsecond=0).isoformat()
