"""What runs sent to each side of a link since its base was stored (``link.sent``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Written by hand: a migration is history and must not change when the models do. Existing
links start with nothing sent (NULL), as a link just stored does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("link", sa.Column("sent", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("link") as batch:
        batch.drop_column("sent")
