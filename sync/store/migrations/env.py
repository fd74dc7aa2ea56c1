"""Alembic environment for the store, driven from code (`sync.store._migrate`).

The caller passes an open connection in ``config.attributes["connection"]``; there is no
alembic.ini and no engine built here, so migrations run inside the caller's transaction.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from sync.store.tables import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("the store migrations run through sync.store, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters tables by copying them; batch mode lets later migrations do that.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
