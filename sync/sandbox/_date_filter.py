"""API Platform's ``DateFilter`` on ``updatedAt``, on the collections whose items carry
it (`sync.flowtly.assumptions.UPDATED_AT_COLLECTIONS`).

``updatedAt[after]=X`` keeps records updated at or after X, ``[strictly_after]`` after
it, ``[before]`` at or before, ``[strictly_before]`` before; several combine (AND). As in
API Platform, a value PHP's ``new \\DateTime()`` cannot parse drops that one condition
(logged there, never an error), and so do unknown operators and array values. Of what
PHP parses, the sandbox understands ISO 8601 (``2024-05-01``, ``2024-05-01T10:00:00Z``,
``...+02:00``); a value without an offset is in the server's zone, UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from sync.flowtly import assumptions as a
from sync.sandbox._query import QueryTree
from sync.sandbox._resources import Resource
from sync.sandbox._store import Where, updated_since

__all__ = ["DATED", "updated_at_filters"]

DATED: Final = frozenset(
    resource for resource in Resource if f"/{resource.value}" in a.UPDATED_AT_COLLECTIONS
)
"""The collections that take the filter."""

_OPERATORS: Final[Mapping[str, str]] = {
    "after": ">=",
    "strictly_after": ">",
    "before": "<=",
    "strictly_before": "<",
}


def _moment(value: str) -> datetime | None:
    """``value`` as an aware UTC moment, or None when it is no date we can read."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def updated_at_filters(resource: Resource, query: QueryTree) -> list[Where]:
    """The conditions ``updatedAt[...]`` in ``query`` puts on a listing of ``resource``."""
    if resource not in DATED:
        return []
    given = query.get(a.UPDATED_AT)
    if not isinstance(given, dict):
        return []
    wheres: list[Where] = []
    for operator, value in given.items():
        comparison = _OPERATORS.get(operator)
        if comparison is None or not isinstance(value, str):
            continue
        moment = _moment(value)
        if moment is not None:
            wheres.append(updated_since(resource.value, comparison, moment))
    return wheres
