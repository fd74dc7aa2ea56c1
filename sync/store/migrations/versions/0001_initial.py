"""The initial store schema: links, intents, cursors, conflicts, rejections, runs, locks.

Revision ID: 0001
Revises:
Create Date: 2024-11-25

Written by hand: a migration is history and must not change when the models do.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_OPEN = sa.text("resolved_at IS NULL")


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True)


def _at(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _str(name: str, *, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(), nullable=nullable)


def _text(name: str, *, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "link",
        _id(),
        _str("sync"),
        _str("entity"),
        _str("crm_id"),
        _str("flowtly_id"),
        _text("base"),
        _str("crm_fp"),
        _str("flowtly_fp"),
        _at("created_at"),
        _at("updated_at"),
        sa.UniqueConstraint("sync", "entity", "crm_id", name="uq_link_crm_id"),
        sa.UniqueConstraint("sync", "entity", "flowtly_id", name="uq_link_flowtly_id"),
    )
    op.create_table(
        "intent",
        _id(),
        _str("sync"),
        _str("entity"),
        _str("target"),
        _str("source_id"),
        _str("natural_key", nullable=True),
        _str("payload_fp"),
        sa.Column("run_id", sa.Integer(), nullable=False),
        _at("created_at"),
    )
    op.create_index("ix_intent_source", "intent", ["sync", "entity", "target", "source_id"])
    op.create_table(
        "cursor",
        _str("sync"),
        _str("side"),
        _str("entity"),
        _text("value"),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("sync", "side", "entity"),
    )
    op.create_table(
        "conflict",
        _id(),
        _str("sync"),
        _str("entity"),
        _str("crm_id"),
        _str("flowtly_id"),
        _str("field"),
        _text("base_value"),
        _text("crm_value"),
        _text("flowtly_value"),
        _at("detected_at"),
        _at("resolved_at", nullable=True),
        _str("resolution", nullable=True),
        _text("resolved_value", nullable=True),
        _str("resolved_by", nullable=True),
    )
    op.create_index(
        "uq_conflict_open",
        "conflict",
        ["sync", "entity", "crm_id", "field"],
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )
    op.create_table(
        "rejection",
        _id(),
        _str("sync"),
        _str("entity"),
        _str("side"),
        _str("record_id"),
        _str("field", nullable=True),
        _text("value", nullable=True),
        _text("reason"),
        _str("source_fp"),
        _at("detected_at"),
        sa.UniqueConstraint("sync", "entity", "side", "record_id", name="uq_rejection_record"),
    )
    op.create_table(
        "run",
        _id(),
        _str("sync"),
        _at("started_at"),
        _at("finished_at", nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        _str("outcome"),
        _text("summary"),
        _text("error", nullable=True),
        _str("host"),
        sa.Column("pid", sa.Integer(), nullable=False),
    )
    op.create_index("ix_run_sync_started", "run", ["sync", "started_at"])
    op.create_table(
        "run_event",
        _id(),
        sa.Column("run_id", sa.Integer(), nullable=False),
        _at("at"),
        _str("entity"),
        _str("action"),
        _str("target", nullable=True),
        _str("crm_id", nullable=True),
        _str("flowtly_id", nullable=True),
        _str("outcome"),
        _text("changes"),
        _text("message", nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name="fk_run_event_run_id"),
    )
    op.create_index("ix_run_event_run_id", "run_event", ["run_id"])
    op.create_table(
        "lock",
        sa.Column("sync", sa.String(), primary_key=True),
        _str("holder"),
        _at("acquired_at"),
    )


def downgrade() -> None:
    tables = ("lock", "run_event", "run", "rejection", "conflict", "cursor", "intent", "link")
    for table in tables:
        op.drop_table(table)
