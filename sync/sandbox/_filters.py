"""API Platform's OrderFilter and DateFilter, as the sandbox applies them to listings.

``order[id]=asc|desc`` sorts a collection by id (any other direction is ignored, as API
Platform ignores it); ``updatedAt[after]=`` keeps the records modified at or after a
moment (``strictly_after`` excludes the moment itself). Both are assumptions about Flowtly
(`sync.flowtly.assumptions`) that ``flowtly-sync check`` probes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final, Literal

from sync.flowtly import assumptions as a
from sync.sandbox._query import QueryTree
from sync.sandbox._store import Where

__all__ = ["id_order", "updated_since"]

_DIRECTIONS: Final = ("asc", "desc")


def id_order(query: QueryTree) -> Literal["asc", "desc"] | None:
    """The direction ``order[id]`` asks for; None when absent or not a direction."""
    order = query.get(a.ORDER_PARAM)
    if not isinstance(order, dict):
        return None
    direction = order.get(a.ORDER_FIELD)
    if not isinstance(direction, str) or direction.lower() not in _DIRECTIONS:
        return None
    return "asc" if direction.lower() == "asc" else "desc"


def _moment(text: str) -> str | None:
    """``text`` as the stored form of a timestamp (UTC, seconds), None when unreadable."""
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "+"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def updated_since(query: QueryTree) -> list[Where]:
    """The conditions ``updatedAt[after]`` / ``updatedAt[strictly_after]`` ask for.

    An unreadable date is ignored, as API Platform's DateFilter ignores it. Stored
    timestamps are all UTC ISO strings to the second, so they compare as text.
    """
    dates = query.get(a.UPDATED_FIELD)
    if not isinstance(dates, dict):
        return []
    wheres: list[Where] = []
    for strategy, operator in ((a.UPDATED_AFTER, ">="), ("strictly_after", ">")):
        raw = dates.get(strategy)
        moment = _moment(raw) if isinstance(raw, str) else None
        if moment is not None:
            sql = f"json_extract(body, '$.{a.UPDATED_FIELD}') {operator} ?"
            wheres.append(Where(sql, (moment,)))
    return wheres
