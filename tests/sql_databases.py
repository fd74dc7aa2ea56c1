"""Databases for the sql connector's tests: a SQLite file, a fresh PostgreSQL schema, a
fresh MariaDB database, each created for one test and dropped after it (unique names,
so parallel runs never collide), and the CRM tables with canonical column names.

A server that is not reachable skips the test, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

__all__ = [
    "MARIADB_URL",
    "PG_URL",
    "Database",
    "SteppingClock",
    "create_crm_tables",
    "mariadb_database",
    "pg_schema",
    "sqlite_database",
]

PG_URL = os.environ.get(
    "FLOWTLY_SYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get(
    "FLOWTLY_SYNC_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)


@dataclass(frozen=True)
class Database:
    """A database for one test: the URL the connector gets, and the schema (if any)."""

    url: str
    schema: str | None = None

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.url)


class SteppingClock:
    """A clock that moves ten minutes each time it is read: writes never share a
    timestamp and stay further apart than the default overlap, without sleeping."""

    def __init__(self, start: datetime = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=10)
        return self.now


def _unreachable(what: str, url: str, error: Exception) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {what} at {url} is unreachable: {error}")
    pytest.skip(f"{what} at {url} is unreachable (set CI=true to require it)")


def _name() -> str:
    return f"sqlc_{uuid.uuid4().hex[:12]}"


def _admin(url: str, what: str) -> sa.Engine:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as error:
        engine.dispose()
        _unreachable(what, url, error)
    return engine


@contextmanager
def sqlite_database(folder: Path) -> Iterator[Database]:
    yield Database(f"sqlite:///{folder / 'crm.db'}")


@contextmanager
def pg_schema() -> Iterator[Database]:
    """A fresh schema on the PostgreSQL test server, named in ``schema``."""
    engine = _admin(PG_URL, "PostgreSQL")
    schema = _name()
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield Database(PG_URL, schema)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()


@contextmanager
def mariadb_database() -> Iterator[Database]:
    """A fresh database on the MariaDB test server; the URL points into it."""
    engine = _admin(MARIADB_URL, "MariaDB")
    name = _name()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        url = sa.make_url(MARIADB_URL).set(database=name)
        yield Database(url.render_as_string(hide_password=False))
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE `{name}`")
        engine.dispose()


def _moment(aware: bool) -> sa.types.TypeEngine[datetime]:
    return sa.DateTime(timezone=aware).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _text(length: int = 200) -> sa.String:
    return sa.String(length)


def create_crm_tables(
    db: Database,
    *,
    aware: bool = False,
    text_ids: bool = False,
    tracked: bool = True,
) -> None:
    """``companies``, ``contacts`` and ``notes`` with a column per canonical field, an
    ``owner`` column the sync must leave alone, and (``tracked``) ``modified_at`` and
    ``deleted_at``. Ids are numbered by the database, or text without a default."""
    meta = sa.MetaData(schema=db.schema)

    def ident() -> sa.Column[object]:
        if text_ids:
            return sa.Column("id", sa.String(40), primary_key=True)
        return sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)

    def tracking() -> list[sa.Column[object]]:
        if not tracked:
            return []
        return [
            sa.Column("modified_at", _moment(aware)),
            sa.Column("deleted_at", _moment(aware)),
        ]

    reference = sa.String(40) if text_ids else sa.Integer
    sa.Table(
        "companies",
        meta,
        ident(),
        sa.Column("kind", _text(20)),
        sa.Column("name", _text(), nullable=False),
        *(sa.Column(name, _text(40)) for name in ("country", "currency", "status", "tin_type")),
        *(sa.Column(name, _text(40)) for name in ("tin", "tin_country", "vat_number")),
        sa.Column("due_days", sa.Integer),
        sa.Column("documents_language", _text(8)),
        sa.Column("invoice_comment", sa.Text),
        sa.Column("default_tax_rate", sa.Numeric(10, 2)),
        sa.Column("external_payment_customer_id", _text(80)),
        *(sa.Column(name, _text()) for name in ("phone", "city", "post_code", "street_line")),
        *(sa.Column(name, _text(40)) for name in ("building_number", "locale_number")),
        sa.Column("address_country", _text(40)),
        sa.Column("website", _text()),
        sa.Column("logo_url", _text()),
        sa.Column("counterparty_type", _text(40)),
        *(sa.Column(n, sa.Boolean) for n in ("require_attachment", "cyclic", "budget_neutral")),
        sa.Column("owner", _text(40)),
        *tracking(),
    )
    sa.Table(
        "contacts",
        meta,
        ident(),
        sa.Column("company_id", reference),
        *(sa.Column(name, _text()) for name in ("type", "name", "email", "phone", "title")),
        sa.Column("position", sa.Integer),
        sa.Column("owner", _text(40)),
        *tracking(),
    )
    sa.Table(
        "notes",
        meta,
        ident(),
        sa.Column("company_id", reference),
        sa.Column("body", sa.Text),
        sa.Column("author", _text()),
        sa.Column("created_at", _moment(aware)),
        sa.Column("owner", _text(40)),
        *tracking(),
    )
    engine = db.engine()
    try:
        meta.create_all(engine)
    finally:
        engine.dispose()
