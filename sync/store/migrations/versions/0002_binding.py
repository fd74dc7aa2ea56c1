"""The binding of each sync to its two sides (which CRM, which Flowtly account).

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-02

Written by hand: a migration is history and must not change when the models do. Stores
migrated from 0001 have no binding rows; their next real run records the sides it finds.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "binding",
        sa.Column("sync", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("identity", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sync", "side"),
    )


def downgrade() -> None:
    op.drop_table("binding")
