"""``flowtly-sync store rebind``: bind a sync's store to the sides configured now.

The one deliberate way past `sync.errors.BindingMismatch` besides a new store: a person
says the configured sides hold the records the store's links were made with (a CRM folder
moved, Flowtly served from another address). It prints what changed and records it.
"""

from __future__ import annotations

from typing import TextIO

import structlog

from sync.config import Settings
from sync.engine.binding import current_identities
from sync.model import Side
from sync.store import Store
from sync.wiring import open_job

__all__ = ["rebind"]

log = structlog.get_logger("sync.store")


async def rebind(settings: Settings, store: Store, out: TextIO) -> None:
    """Record the configured sides as ``settings``' sync's binding, holding its lock."""
    name = settings.sync.name
    with store.lock(name):
        async with open_job(settings, store) as job:
            current = await current_identities(job.crm, job.flowtly)
        recorded = {side: row.identity for side, row in store.binding(name).items()}
        if recorded == current:
            out.write(f"sync {name}: the store is bound to these sides already; no change\n")
            for side in Side:
                out.write(f"  {side}: {current[side]}\n")
            return
        store.bind(name, current)
    log.warning(
        "binding_replaced",
        sync=name,
        before={str(side): identity for side, identity in recorded.items()},
        after={str(side): identity for side, identity in current.items()},
    )
    out.write(f"sync {name}: the store is now bound to the configured sides\n")
    for side in Side:
        before = recorded.get(side)
        if before == current[side]:
            out.write(f"  {side}: {current[side]} (unchanged)\n")
        else:
            out.write(f"  {side}: {before or '(none recorded)'} -> {current[side]}\n")
