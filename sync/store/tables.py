"""The store's tables (sqlmodel, SQLAlchemy 2).

These classes are the schema as the code expects it; `migrations/versions` builds the
same schema step by step, and a test checks that the two agree. Change both together.

Enum values (entity kind, side, outcomes) are stored as their text value; JSON columns are
TEXT written by `sync.store._json.encode`, so SQLite and PostgreSQL hold identical bytes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, MetaData, Table, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from sync.store._types import UTCDateTime

__all__ = [
    "BindingTable",
    "ConflictTable",
    "CursorTable",
    "IntentTable",
    "LinkTable",
    "LockTable",
    "RejectionTable",
    "RunEventTable",
    "RunTable",
    "binding_table",
    "conflict_table",
    "cursor_table",
    "intent_table",
    "link_table",
    "lock_table",
    "metadata",
    "rejection_table",
    "run_event_table",
    "run_table",
]

_OPEN = text("resolved_at IS NULL")


class _StoreModel(SQLModel):
    # Our own MetaData: other sqlmodel users in the process (the sandbox) keep theirs apart.
    metadata = MetaData(naming_convention={"fk": "fk_%(table_name)s_%(column_0_name)s"})


metadata = _StoreModel.metadata
"""The schema the migrations must produce."""


class LinkTable(_StoreModel, table=True):
    """One linked entity: ids on both sides, the agreed base, a fingerprint per side."""

    __tablename__ = "link"
    __table_args__ = (
        UniqueConstraint("sync", "entity", "crm_id", name="uq_link_crm_id"),
        UniqueConstraint("sync", "entity", "flowtly_id", name="uq_link_flowtly_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    sync: str
    entity: str
    crm_id: str
    flowtly_id: str
    base: str = Field(sa_type=Text)
    crm_fp: str
    flowtly_fp: str
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    sent: str | None = Field(default=None, sa_type=Text)
    """Values updates sent to either side since ``base`` was stored (`SentValues`), noted
    before they go out: a run that stops before storing the link leaves them, and the
    next run tells a value it wrote itself from an edit made there. NULL once stored."""


class IntentTable(_StoreModel, table=True):
    """A create about to be sent, committed before the request goes out."""

    __tablename__ = "intent"
    __table_args__ = (Index("ix_intent_source", "sync", "entity", "target", "source_id"),)

    id: int | None = Field(default=None, primary_key=True)
    sync: str
    entity: str
    target: str
    source_id: str
    natural_key: str | None = None
    payload_fp: str
    run_id: int
    created_at: datetime = Field(sa_type=UTCDateTime)


class CursorTable(_StoreModel, table=True):
    """Where the next incremental read of a side starts."""

    __tablename__ = "cursor"

    sync: str = Field(primary_key=True)
    side: str = Field(primary_key=True)
    entity: str = Field(primary_key=True)
    value: str = Field(sa_type=Text)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class ConflictTable(_StoreModel, table=True):
    """A parked field conflict; at most one open per (sync, entity, crm_id, field)."""

    __tablename__ = "conflict"
    __table_args__ = (
        Index(
            "uq_conflict_open",
            "sync",
            "entity",
            "crm_id",
            "field",
            unique=True,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    sync: str
    entity: str
    crm_id: str
    flowtly_id: str
    field: str
    base_value: str = Field(sa_type=Text)
    crm_value: str = Field(sa_type=Text)
    flowtly_value: str = Field(sa_type=Text)
    detected_at: datetime = Field(sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolution: str | None = None
    resolved_value: str | None = Field(default=None, sa_type=Text)
    resolved_by: str | None = None


class RejectionTable(_StoreModel, table=True):
    """A record the target refused, with the source fingerprint it was refused at."""

    __tablename__ = "rejection"
    __table_args__ = (
        UniqueConstraint("sync", "entity", "side", "record_id", name="uq_rejection_record"),
    )

    id: int | None = Field(default=None, primary_key=True)
    sync: str
    entity: str
    side: str
    record_id: str
    field: str | None = None
    value: str | None = Field(default=None, sa_type=Text)
    reason: str = Field(sa_type=Text)
    source_fp: str
    detected_at: datetime = Field(sa_type=UTCDateTime)


class RunTable(_StoreModel, table=True):
    """One run of a sync; kept for the audit trail."""

    __tablename__ = "run"
    __table_args__ = (Index("ix_run_sync_started", "sync", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    sync: str
    started_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    dry_run: bool
    outcome: str
    summary: str = Field(sa_type=Text)
    error: str | None = Field(default=None, sa_type=Text)
    host: str
    pid: int


class RunEventTable(_StoreModel, table=True):
    """One operation of a run with its changed fields and outcome."""

    __tablename__ = "run_event"
    __table_args__ = (Index("ix_run_event_run_id", "run_id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id")
    at: datetime = Field(sa_type=UTCDateTime)
    entity: str
    action: str
    target: str | None = None
    crm_id: str | None = None
    flowtly_id: str | None = None
    outcome: str
    changes: str = Field(sa_type=Text)
    message: str | None = Field(default=None, sa_type=Text)


class LockTable(_StoreModel, table=True):
    """Who holds a sync's lock, for messages; the lock itself is a flock or advisory lock."""

    __tablename__ = "lock"

    sync: str = Field(primary_key=True)
    holder: str
    acquired_at: datetime = Field(sa_type=UTCDateTime)


class BindingTable(_StoreModel, table=True):
    """Which CRM and which Flowtly account a sync's links belong to, one row per side.

    Recorded by the first real run; a later run against other sides refuses to start.
    ``identity`` is connector text without secrets (a folder, a URL without password).
    """

    __tablename__ = "binding"

    sync: str = Field(primary_key=True)
    side: str = Field(primary_key=True)
    identity: str = Field(sa_type=Text)
    recorded_at: datetime = Field(sa_type=UTCDateTime)


# Core handles for the repository code, which uses Core statements (no ORM objects).
link_table: Table = metadata.tables["link"]
intent_table: Table = metadata.tables["intent"]
cursor_table: Table = metadata.tables["cursor"]
conflict_table: Table = metadata.tables["conflict"]
rejection_table: Table = metadata.tables["rejection"]
run_table: Table = metadata.tables["run"]
run_event_table: Table = metadata.tables["run_event"]
lock_table: Table = metadata.tables["lock"]
binding_table: Table = metadata.tables["binding"]
