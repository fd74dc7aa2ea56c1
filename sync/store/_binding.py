"""Reading and replacing the binding rows (`sync.store.tables.BindingTable`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from sync.model import Side
from sync.store.rows import BindingRow
from sync.store.tables import binding_table

__all__ = ["read_binding", "replace_binding"]

_binding = binding_table


def read_binding(conn: Connection, sync: str) -> dict[Side, BindingRow]:
    """The recorded side identities of ``sync`` (empty before its first real run)."""
    query = select(_binding).where(_binding.c.sync == sync)
    return {
        Side(row.side): BindingRow(row.sync, Side(row.side), row.identity, row.recorded_at)
        for row in conn.execute(query)
    }


def replace_binding(
    conn: Connection, sync: str, identities: Mapping[Side, str], at: datetime
) -> None:
    """Record ``identities`` for ``sync``, replacing what those sides had (one transaction:
    the caller's)."""
    sides = [side.value for side in identities]
    conn.execute(delete(_binding).where(_binding.c.sync == sync, _binding.c.side.in_(sides)))
    if identities:
        conn.execute(
            insert(_binding),
            [
                {"sync": sync, "side": side.value, "identity": identity, "recorded_at": at}
                for side, identity in identities.items()
            ],
        )
