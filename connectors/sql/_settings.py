"""The ``[crm]`` table of the sql connector: where the database is and which tables hold what.

The URL is a `pydantic.SecretStr`: the password inside it must never reach a log, an
error, a report or the store, so everything shown of the URL goes through `public_url`.
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, Field, SecretStr, field_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from connectors.base import ConnectorSettings
from sync.settings_base import Seconds

__all__ = ["SqlSettings", "TableSettings", "TablesSettings", "parse_url", "public_url"]


def parse_url(secret: SecretStr) -> URL:
    """The SQLAlchemy URL; `ValueError` without the URL's text (it holds the password)."""
    try:
        return make_url(secret.get_secret_value())
    except ArgumentError:
        raise ValueError(
            "not a SQLAlchemy database URL (e.g. postgresql+psycopg://user@host/db)"
        ) from None


def public_url(url: URL) -> str:
    """``url`` as it may be shown: without its password (not even masked)."""
    # URL.set() takes None as "unchanged": the password is dropped by the tuple's own
    # _replace, so it is not even shown masked.
    return url._replace(password=None).render_as_string(hide_password=False)


class TableSettings(ConnectorSettings):
    """``[crm.tables.company|contact|note]``: one table of the CRM database."""

    table: str = Field(min_length=1)
    """The table's name (in ``schema`` when one is set)."""
    id: str = Field("id", min_length=1)
    """The primary key column (the record id)."""
    updated_at: str | None = None
    """A column holding when a row last changed: with it, reads are incremental."""
    deleted_at: str | None = None
    """A column set when a row is soft-deleted: such rows count as deleted at once, and
    a delete sets it instead of removing the row."""


class TablesSettings(ConnectorSettings):
    """``[crm.tables]``: companies are required, contacts and notes optional."""

    company: TableSettings
    contact: TableSettings | None = None
    note: TableSettings | None = None


class SqlSettings(ConnectorSettings):
    """``[crm]`` with ``type = "sql"``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    url: SecretStr
    """Any SQLAlchemy URL (``FLOWTLY_SYNC_CRM__URL``); the password is a secret."""
    db_schema: str | None = Field(None, alias="schema", min_length=1)
    """The schema (PostgreSQL) or database (MySQL) holding the tables; the URL's default
    when unset."""
    tables: TablesSettings
    overlap: Seconds = 300.0
    """How far before its cursor an incremental read starts (``"5m"``, or seconds): a
    transaction that commits late carries a timestamp earlier than rows committed before it."""
    timezone: str = "UTC"
    """The time zone of timestamps stored without one (IANA name, e.g. Europe/Warsaw)."""
    batch_size: int = Field(1000, ge=1, le=100_000)
    """Rows fetched per round trip while streaming a read."""
    connect_timeout: Seconds = 10.0

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: SecretStr) -> SecretStr:
        parse_url(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name, e.g. UTC)") from None
        return value

    @property
    def overlap_delta(self) -> timedelta:
        return timedelta(seconds=self.overlap)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
