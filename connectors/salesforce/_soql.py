"""SOQL text and Salesforce datetimes: the few forms the connector sends and reads."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

__all__ = [
    "api_datetime",
    "is_record_id",
    "parse_datetime",
    "replication_datetime",
    "select",
    "soql_datetime",
]

_RECORD_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")


def is_record_id(text: str) -> bool:
    """Whether ``text`` has the form of a Salesforce record id (15 or 18 characters):
    anything else is not found without asking (and would fail the whole call)."""
    return _RECORD_ID.fullmatch(text) is not None


def soql_datetime(when: datetime) -> str:
    """An unquoted SOQL datetime literal: ``2024-05-01T00:00:00Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def replication_datetime(when: datetime) -> str:
    """The ``start``/``end`` of ``/deleted``: ISO 8601 with an offset (seconds are ignored
    by Salesforce)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def api_datetime(when: datetime) -> str:
    """A datetime as Salesforce writes it: ``2024-05-02T10:11:12.000+0000``."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> datetime:
    """``2024-05-02T10:11:12.000+0000`` (Salesforce) or ``...Z`` / ``...+00:00``."""
    cleaned = text.strip()
    if cleaned.endswith("Z"):
        cleaned = cleaned[:-1] + "+00:00"
    elif re.search(r"[+-]\d{4}$", cleaned):
        cleaned = cleaned[:-2] + ":" + cleaned[-2:]
    parsed = datetime.fromisoformat(cleaned)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def select(
    fields: Sequence[str],
    sobject: str,
    *,
    since: datetime | None = None,
    ids: Sequence[str] = (),
    id_field: str = "Id",
    ordered: bool = True,
) -> str:
    """``SELECT ... FROM sobject [WHERE SystemModstamp >= t | id_field IN (...)]
    [ORDER BY SystemModstamp, Id]``."""
    # SOQL, not SQL; names come from describe, values are quoted by _quoted.
    text = f"SELECT {', '.join(fields)} FROM {sobject}"  # noqa: S608 - see above
    if since is not None:
        text += f" WHERE SystemModstamp >= {soql_datetime(since)}"
    elif ids:
        text += f" WHERE {id_field} IN ({', '.join(_quoted(one) for one in ids)})"
    if ordered:
        text += " ORDER BY SystemModstamp, Id"
    return text
