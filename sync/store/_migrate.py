"""Run the packaged alembic migrations from code (no alembic.ini at runtime).

Alembic is imported only when a migration is due: a store already at `HEAD_REVISION`
(every run but the first after an upgrade) is checked with one query, and the ~10 MiB
alembic and its templating take in every process are not spent.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import column, inspect, select, table, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from sync.errors import StoreError
from sync.privacy.files import open_private
from sync.store._engine import WRITE, Database

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "HEAD_REVISION",
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "head_revision",
    "migrate",
]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

HEAD_REVISION = "0003"
"""The newest revision in `MIGRATIONS_DIR` (a test holds it to alembic's own answer)."""

_VERSION_TABLE = "alembic_version"
_VERSION = table(_VERSION_TABLE, column("version_num"))
"""Where alembic records the revision a database is at."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic config for the packaged scripts, optionally bound to ``connection``."""
    from alembic.config import Config  # only when migrating (module docstring)

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision shipped with this version."""
    return HEAD_REVISION


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, None when it was never migrated."""
    if not inspect(connection).has_table(_VERSION_TABLE):
        return None
    versions = connection.execute(select(_VERSION.c.version_num)).scalars()
    found = sorted(str(version) for version in versions)
    if len(found) > 1:
        # One line of migrations: more than one version means someone else's schema.
        raise StoreError(f"the store records several schema revisions: {', '.join(found)}")
    return found[0] if found else None


def _pg_migration_key() -> int:
    digest = hashlib.blake2b(b"flowtly-sync:migrate", digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def _sqlite_migration_lock(path: Path) -> Iterator[None]:
    # Two processes opening a fresh file at once would both try CREATE TABLE; the
    # busy timeout alone does not serialize them because alembic reads first.
    fd = open_private(path.with_name(f"{path.name}.migrate.lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _upgrade(db: Database) -> None:
    with db.engine.execution_options(**{WRITE: True}).begin() as connection:
        if db.is_postgresql:
            # Replicas starting together: one migrates, the others wait and find it done.
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _pg_migration_key()})
        if current_revision(connection) == HEAD_REVISION:
            return
        # Imported here: only when migrating (module docstring).
        from alembic import command
        from alembic.util import CommandError

        try:
            command.upgrade(alembic_config(connection), "head")
        except CommandError as exc:
            # Typically a database migrated by a newer flowtly-sync than this one.
            raise StoreError(f"cannot migrate the store at {db.safe_url}: {exc}") from exc


def migrate(db: Database) -> None:
    """Bring the database to the head revision; a no-op when it is there already."""
    try:
        if db.sqlite_path is not None:
            with _sqlite_migration_lock(db.sqlite_path):
                _upgrade(db)
        else:
            _upgrade(db)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open or migrate the store at {db.safe_url}: {exc}") from exc
    except OSError as exc:
        raise StoreError(f"cannot open the store at {db.safe_url}: {exc}") from exc
