"""The state store: links, intents, cursors, conflicts, rejections, the audit trail, and
the binding that says which CRM and which Flowtly account they belong to.

Open it with `Store.open(url)`: any SQLAlchemy URL (SQLite by default, PostgreSQL for
several replicas); the schema is migrated on open by the packaged alembic migrations.
"""

from sync.store.rows import (
    BindingRow,
    ChangeLike,
    ConflictResolution,
    ConflictRow,
    EventOutcome,
    EventValues,
    IntentRow,
    IntentValues,
    JSONInput,
    JSONValue,
    LinkColumn,
    LinkRow,
    LinkValues,
    RecordedChange,
    RejectionRow,
    RunEventRow,
    RunOutcome,
    RunRow,
)
from sync.store.store import Clock, Store
from sync.store.tx import StoreTx

__all__ = [
    "BindingRow",
    "ChangeLike",
    "Clock",
    "ConflictResolution",
    "ConflictRow",
    "EventOutcome",
    "EventValues",
    "IntentRow",
    "IntentValues",
    "JSONInput",
    "JSONValue",
    "LinkColumn",
    "LinkRow",
    "LinkValues",
    "RecordedChange",
    "RejectionRow",
    "RunEventRow",
    "RunOutcome",
    "RunRow",
    "Store",
    "StoreTx",
]
