"""The sql connector's behaviour beyond the contract: late commits and the overlap, ties,
bad values, writes of changed columns only, kind changes, schema errors, secrets."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sql_databases import (
    MARIADB_URL,
    Database,
    SteppingClock,
    create_crm_tables,
    mariadb_database,
    pg_schema,
    sqlite_database,
)

from connectors.base import ChangeBatch, Cursor
from connectors.sql import SqlConnector, SqlSettings
from connectors.testing import read_all
from sync.config import Settings
from sync.errors import ConfigError, ConnectorError
from sync.mapping.layout import FieldLayout
from sync.model import EntityKind

CLIENT = EntityKind.CLIENT
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def settings(db: Database, **options: Any) -> SqlSettings:
    company = {"table": "companies", "updated_at": "modified_at", "deleted_at": "deleted_at"}
    company.update(options.pop("company", {}))
    tables: dict[str, Any] = {"company": company, "contact": {"table": "contacts"}}
    if options.pop("notes", False):
        tables["note"] = {"table": "notes"}
    return SqlSettings.model_validate(
        {"url": SecretStr(db.url), "schema": db.schema, "tables": tables, **options}
    )


def insert(engine: sa.Engine, db: Database, table: str, **values: Any) -> Any:
    meta = sa.MetaData(schema=db.schema)
    target = sa.Table(table, meta, autoload_with=engine)
    with engine.begin() as conn:
        inserted = conn.execute(target.insert().values(values)).inserted_primary_key
    assert inserted is not None
    return inserted[0]


def records(batches: list[ChangeBatch]) -> dict[str, Any]:
    return {record.id: record for batch in batches for record in batch.records}


def last_cursor(batches: list[ChangeBatch]) -> Cursor:
    cursor = batches[-1].cursor
    assert cursor is not None
    return cursor


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    with sqlite_database(tmp_path) as db:
        create_crm_tables(db)
        yield db


# -- late commits ---------------------------------------------------------------------


def _server(name: str) -> AbstractContextManager[Database]:
    return pg_schema() if name == "postgres" else mariadb_database()


@pytest.mark.parametrize(
    "server",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
async def test_a_late_commit_with_an_earlier_timestamp_is_read_thanks_to_the_overlap(
    server: str,
) -> None:
    with _server(server) as db:
        create_crm_tables(db, aware=server == "postgres")
        engine = db.engine()
        table = sa.Table("companies", sa.MetaData(schema=db.schema), autoload_with=engine)

        def stamp(moment: datetime) -> datetime:
            return moment if server == "postgres" else moment.replace(tzinfo=None)

        late = engine.connect()
        try:
            # The first transaction stamps its row, then commits only after another one did.
            pending = late.begin()
            late.execute(table.insert().values(name="Late", modified_at=stamp(T0)))
            with engine.begin() as early:
                early.execute(
                    table.insert().values(
                        name="Early", modified_at=stamp(T0 + timedelta(minutes=1))
                    )
                )
            async with SqlConnector(settings(db)) as connector:
                first = await read_all(connector, CLIENT)
                assert [r.get("name") for r in records(first).values()] == ["Early"]
                cursor = last_cursor(first)
                assert cursor.timestamp == T0 + timedelta(minutes=1)
                pending.commit()
                after = await read_all(connector, CLIENT, cursor)
                assert "Late" in {r.get("name") for r in records(after).values()}
            # Without enough overlap the late row would be skipped for good.
            async with SqlConnector(settings(db, overlap="30s")) as narrow:
                missed = await read_all(narrow, CLIENT, cursor)
                assert "Late" not in {r.get("name") for r in records(missed).values()}
        finally:
            late.close()
            engine.dispose()


async def test_rows_of_one_timestamp_come_in_id_order_and_the_cursor_is_the_last(
    sqlite_db: Database,
) -> None:
    engine = sqlite_db.engine()
    naive = T0.replace(tzinfo=None)
    ids = [
        insert(engine, sqlite_db, "companies", name=f"Same {n}", modified_at=naive)
        for n in range(3)
    ]
    engine.dispose()
    async with SqlConnector(settings(sqlite_db, batch_size=2)) as connector:
        batches = await read_all(connector, CLIENT, Cursor(T0 - timedelta(hours=1), None))
        assert [r.id for b in batches for r in b.records] == [str(i) for i in ids]
        assert len(batches) == 2
        assert last_cursor(batches) == Cursor(T0, str(ids[-1]))


# -- bad values -----------------------------------------------------------------------


async def test_a_bad_value_rejects_its_row_naming_table_id_column_and_reason(
    sqlite_db: Database,
) -> None:
    engine = sqlite_db.engine()
    good = insert(engine, sqlite_db, "companies", name="Good", due_days=14)
    with engine.begin() as conn:
        # SQLite keeps what it is given: a word in an INTEGER column, a bad DATETIME.
        conn.exec_driver_sql("INSERT INTO companies (name, due_days) VALUES ('Bad', 'soon')")
        conn.exec_driver_sql("INSERT INTO companies (name, country) VALUES ('Nowhere', 'Narnia')")
        conn.exec_driver_sql("INSERT INTO notes (body, created_at) VALUES ('x', 'yesterday')")
    engine.dispose()
    async with SqlConnector(settings(sqlite_db)) as connector:
        batches = await read_all(connector, CLIENT)
        assert set(records(batches)) == {str(good)}
        rejected = [error for batch in batches for error in batch.rejected]
        by_field = {error.field: error for error in rejected}
        assert set(by_field) == {"due_days", "country"}
        assert (
            by_field["due_days"].reason == "table companies id 2, column due_days: not an integer"
        )
        assert by_field["due_days"].value == "soon"
        assert "2" in {i for batch in batches for i in batch.present_ids}
    async with SqlConnector(settings(sqlite_db, notes=True)) as with_notes:
        [note_error] = [e for b in await read_all(with_notes, EntityKind.NOTE) for e in b.rejected]
        assert note_error.field == "created_at"
        assert "column created_at" in note_error.reason
        assert "'yesterday' is not a date-time" in note_error.reason


# -- writes ---------------------------------------------------------------------------


async def test_an_update_writes_only_the_columns_that_change(sqlite_db: Database) -> None:
    clock = SteppingClock()
    async with SqlConnector(settings(sqlite_db), clock=clock) as connector:
        created = await connector.create(CLIENT, {"name": "Acme", "city": "Kraków"})
        await connector.commit()
        engine = sqlite_db.engine()
        with engine.begin() as conn:
            # Someone edits the row meanwhile: a column the sync is not changing, and one
            # the mapping does not name at all.
            conn.exec_driver_sql("UPDATE companies SET city = 'Gdynia', owner = 'zoe'")
        stamped = engine.connect().exec_driver_sql("SELECT modified_at FROM companies").scalar()
        same = await connector.update(CLIENT, created.id, {"name": "Acme"})
        assert same.get("city") == "Gdynia"
        changed = await connector.update(CLIENT, created.id, {"name": "Acme Two"})
        await connector.commit()
        with engine.connect() as conn:
            row = conn.exec_driver_sql("SELECT name, city, owner, modified_at FROM companies").one()
        engine.dispose()
    assert changed.get("name") == "Acme Two"
    assert (row.name, row.city, row.owner) == ("Acme Two", "Gdynia", "zoe")
    assert row.modified_at > stamped


async def test_writes_wait_for_commit_and_are_dropped_on_close(sqlite_db: Database) -> None:
    async with SqlConnector(settings(sqlite_db)) as connector:
        await connector.create(CLIENT, {"name": "Uncommitted"})
    async with SqlConnector(settings(sqlite_db)) as fresh:
        assert records(await read_all(fresh, CLIENT)) == {}


async def test_a_company_whose_kind_changed_left_instead_of_being_deleted(
    sqlite_db: Database,
) -> None:
    async with SqlConnector(settings(sqlite_db)) as connector:
        moved = await connector.create(CLIENT, {"name": "Becomes a supplier"})
        await connector.commit()
        engine = sqlite_db.engine()
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE companies SET kind = 'supplier'")
        engine.dispose()
        clients = await read_all(connector, CLIENT)
        assert records(clients) == {}
        assert [i for b in clients for i in b.left_ids] == [moved.id]
        suppliers = await read_all(connector, EntityKind.COUNTERPARTY)
        assert set(records(suppliers)) == {moved.id}


# -- schema -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("company", "key", "named"),
    [
        ({"table": "customers"}, "crm.tables.company.table", "'customers'"),
        ({"id": "customer_id"}, "crm.tables.company.id", "'customer_id'"),
        ({"updated_at": "changed"}, "crm.tables.company.updated_at", "'changed'"),
        ({"updated_at": "name"}, "crm.tables.company.updated_at", "not a date"),
        ({"deleted_at": "gone"}, "crm.tables.company.deleted_at", "'gone'"),
    ],
)
async def test_a_missing_table_or_column_is_a_config_error_naming_the_key(
    sqlite_db: Database, company: dict[str, str], key: str, named: str
) -> None:
    connector = SqlConnector(settings(sqlite_db, company=company))
    with pytest.raises(ConfigError) as caught:
        await connector.open()
    await connector.close()
    assert caught.value.key == key
    assert named in caught.value.reason


async def test_a_mapped_column_missing_from_the_table_names_its_mapping_key(
    sqlite_db: Database,
) -> None:
    connector = SqlConnector(settings(sqlite_db))
    connector.use_layout(FieldLayout(aliases={CLIENT: {"company_name": "name"}}))
    with pytest.raises(ConfigError) as caught:
        await connector.open()
    await connector.close()
    assert caught.value.key == "mapping.company.fields.company_name"


# -- secrets ----------------------------------------------------------------------------


def test_the_password_in_the_url_is_a_configured_secret() -> None:
    url = "postgresql+psycopg://crm:p%40ss-Word-42@db.internal/crm"
    loaded = Settings(crm={"type": "sql", "url": url, "tables": {"company": {"table": "c"}}})
    assert "p@ss-Word-42" in loaded.secrets()
    config = SqlSettings.model_validate(loaded.crm.connector_settings())
    connector = SqlConnector(config)
    assert "p@ss" not in connector.describe()
    assert connector.describe() == "sql:postgresql+psycopg://crm@db.internal/crm"
    assert "p@ss" not in repr(config)


async def test_identity_names_database_schema_and_tables_without_password() -> None:
    config = SqlSettings.model_validate(
        {
            "url": "postgresql+psycopg://crm:secret-word@db.internal:5433/crm",
            "schema": "sales",
            "tables": {"company": {"table": "customers"}, "note": {"table": "notes"}},
        }
    )
    identity = await SqlConnector(config).identity()
    assert identity == (
        "sql:postgresql://crm@db.internal:5433/crm schema=sales tables=company=customers,note=notes"
    )


@pytest.mark.mariadb
async def test_a_wrong_password_fails_in_one_line_without_it() -> None:
    with mariadb_database() as db:
        create_crm_tables(db)
        password = "Wrong-Password-0815"
        url = sa.make_url(db.url).set(password=password).render_as_string(hide_password=False)
        connector = SqlConnector(settings(Database(url)))
        with pytest.raises(ConnectorError) as caught:
            await connector.open()
        await connector.close()
    message = str(caught.value)
    assert password not in message
    assert "\n" not in message
    assert "cannot connect" in message
    assert "Access denied" in message
    assert MARIADB_URL.split("@")[1].split("/")[0] in message


# -- ids and time zones -------------------------------------------------------------------


async def test_an_integer_id_without_a_default_is_the_next_number(tmp_path: Path) -> None:
    with sqlite_database(tmp_path) as db:
        engine = db.engine()
        with engine.begin() as conn:
            # BIGINT is not SQLite's rowid alias: the database numbers nothing here.
            conn.exec_driver_sql("CREATE TABLE companies (id BIGINT PRIMARY KEY, name TEXT)")
            conn.exec_driver_sql("INSERT INTO companies VALUES (41, 'Existing')")
        engine.dispose()
        config = SqlSettings.model_validate(
            {"url": db.url, "tables": {"company": {"table": "companies"}}}
        )
        async with SqlConnector(config) as connector:
            first = await connector.create(CLIENT, {"name": "New"})
            second = await connector.create(CLIENT, {"name": "Newer"})
            await connector.commit()
        assert (first.id, second.id) == ("42", "43")


async def test_naive_timestamps_are_read_in_the_configured_zone(sqlite_db: Database) -> None:
    engine = sqlite_db.engine()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO notes (body, created_at) VALUES ('winter', '2024-01-02 04:04:05')"
        )
    engine.dispose()
    zoned = settings(sqlite_db, notes=True, timezone="Europe/Warsaw")
    async with SqlConnector(zoned) as connector:
        [note] = records(await read_all(connector, EntityKind.NOTE)).values()
        assert note.get("created_at") == "2024-01-02T03:04:05+00:00"
        written = await connector.create(
            EntityKind.NOTE, {"body": "b", "created_at": "2024-07-01T10:00:00+00:00"}
        )
        await connector.commit()
    engine = sqlite_db.engine()
    with engine.connect() as conn:
        stored = conn.exec_driver_sql(
            f"SELECT created_at FROM notes WHERE id = {int(written.id)}"  # noqa: S608 - the test's own names
        ).scalar()
    engine.dispose()
    assert str(stored).startswith("2024-07-01 12:00:00")


async def test_a_listing_with_repeated_or_missing_ids_is_incomplete(tmp_path: Path) -> None:
    with sqlite_database(tmp_path) as db:
        engine = db.engine()
        with engine.begin() as conn:
            # No primary key: nothing but the listing itself says the ids are unique.
            conn.exec_driver_sql("CREATE TABLE companies (code TEXT, name TEXT)")
            conn.exec_driver_sql(
                "INSERT INTO companies VALUES ('A', 'One'), ('A', 'Twin'), (NULL, 'Lost'),"
                " ('B', 'Fine')"
            )
        engine.dispose()
        config = SqlSettings.model_validate(
            {"url": db.url, "tables": {"company": {"table": "companies", "id": "code"}}}
        )
        async with SqlConnector(config) as connector:
            batches = await read_all(connector, CLIENT)
    verdict = batches[-1].incomplete
    assert verdict is not None
    assert "without an id" in verdict
    assert "repeated 1 id" in verdict
    assert [e.field for b in batches for e in b.rejected] == ["id", "id"]
    assert {r.get("name") for r in records(batches).values()} == {"One", "Fine"}
