"""The sql connector honours the connector contract on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sql_databases import (
    Database,
    SteppingClock,
    create_crm_tables,
    mariadb_database,
    pg_schema,
    sqlite_database,
)

from connectors.base import Connector
from connectors.sql import SqlConnector, SqlSettings
from connectors.testing import ConnectorContract


def settings(db: Database, *, tracked: bool = True, soft: bool = True) -> SqlSettings:
    def table(name: str) -> dict[str, Any]:
        found: dict[str, Any] = {"table": name}
        if tracked:
            found["updated_at"] = "modified_at"
            if soft:
                found["deleted_at"] = "deleted_at"
        return found

    return SqlSettings.model_validate(
        {
            "url": SecretStr(db.url),
            "schema": db.schema,
            "tables": {
                "company": table("companies"),
                "contact": table("contacts"),
                "note": table("notes"),
            },
        }
    )


def factory(config: SqlSettings) -> Callable[[], Connector]:
    clock = SteppingClock()
    return lambda: SqlConnector(config, clock=clock)


class TestSqliteContract(ConnectorContract):
    """Numbered ids, incremental reads and soft deletes (a deletes feed)."""

    @pytest.fixture
    def connector_factory(self, tmp_path: Path) -> Iterator[Callable[[], Connector]]:
        with sqlite_database(tmp_path) as db:
            create_crm_tables(db)
            yield factory(settings(db))


class TestSqliteTextIdsContract(ConnectorContract):
    """Text ids the connector generates, hard deletes, complete listings only."""

    @pytest.fixture
    def connector_factory(self, tmp_path: Path) -> Iterator[Callable[[], Connector]]:
        with sqlite_database(tmp_path) as db:
            create_crm_tables(db, text_ids=True, tracked=False)
            yield factory(settings(db, tracked=False))


@pytest.mark.postgres
class TestPostgresContract(ConnectorContract):
    """A schema of its own, timestamps with time zone, soft deletes."""

    @pytest.fixture
    def connector_factory(self) -> Iterator[Callable[[], Connector]]:
        with pg_schema() as db:
            create_crm_tables(db, aware=True)
            yield factory(settings(db))


@pytest.mark.mariadb
class TestMariadbContract(ConnectorContract):
    """A database of its own, naive DATETIME(6) timestamps, hard deletes."""

    @pytest.fixture
    def connector_factory(self) -> Iterator[Callable[[], Connector]]:
        with mariadb_database() as db:
            create_crm_tables(db)
            yield factory(settings(db, soft=False))
