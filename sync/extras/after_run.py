"""What a run does after its records are synced: branding enrichment and documents summaries.

`AfterRun` is the `sync.engine.run.SyncJob.after_run` hook that `sync.wiring.open_job`
installs when ``[enrichment] branding`` or ``[documents] enabled`` is on, so the command
line and the daemon do the same. Neither part can fail a run over one record: a Flowtly
error on one client's documents, or on the enrichment request, becomes a warning in the
run's report. Authentication and transport-security failures still stop the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from sync.engine.run import RunResult
from sync.errors import (
    AuthenticationError,
    ConnectorError,
    NotFound,
    RecordError,
    TransportSecurityError,
)
from sync.extras.branding import enrich_created
from sync.extras.documents import (
    ClientDocument,
    ColumnWriter,
    DocumentColumns,
    summarize,
    summary_columns,
)
from sync.model import EntityKind, Side
from sync.settings_base import DEFAULT_CONCURRENCY
from sync.store import Store

__all__ = ["AfterRun", "FinanceOptions", "FinanceSide"]

_log = structlog.get_logger("sync.extras")
_FATAL = (AuthenticationError, TransportSecurityError)


class FinanceSide(Protocol):
    """What the hook needs of the Flowtly side (`sync.flowtly.side.FlowtlySide`)."""

    async def enrich_branding(self, ids: Sequence[str]) -> None: ...

    async def client_documents(self, client_id: str) -> list[ClientDocument]: ...


@dataclass(frozen=True, slots=True)
class FinanceOptions:
    """Which after-run parts are on. ``documents`` None: no documents summaries."""

    branding: bool = False
    documents: DocumentColumns | None = None
    concurrency: int = DEFAULT_CONCURRENCY

    @property
    def active(self) -> bool:
        return self.branding or self.documents is not None


class AfterRun:
    """The after-run hook of one sync (see the module docstring)."""

    def __init__(
        self,
        options: FinanceOptions,
        sync: str,
        store: Store,
        flowtly: FinanceSide,
        crm: ColumnWriter | None,
    ) -> None:
        if options.documents is not None and crm is None:
            raise ValueError("documents summaries need a CRM connector that writes columns")
        self.options = options
        self.sync = sync
        self.store = store
        self.flowtly = flowtly
        self.crm = crm

    async def __call__(self, result: RunResult) -> None:
        """Enrich what the run created, then refresh every linked client's summary."""
        if self.options.branding:
            await self._enrich(result)
        if self.options.documents is not None and self.crm is not None:
            await self._documents(result, self.options.documents, self.crm)

    async def _enrich(self, result: RunResult) -> None:
        try:
            ids = await enrich_created(self.flowtly, result.operations)
        except _FATAL:
            raise
        except ConnectorError as error:
            result.warnings.append(
                RecordError(
                    str(EntityKind.COUNTERPARTY),
                    str(Side.FLOWTLY),
                    "*",
                    f"branding enrichment not queued: {error}",
                )
            )
            return
        if ids:
            _log.info("branding_enrichment_queued", count=len(ids))

    async def _documents(
        self, result: RunResult, columns: DocumentColumns, crm: ColumnWriter
    ) -> None:
        links = self.store.link_index(self.sync, EntityKind.CLIENT)
        bound = asyncio.Semaphore(self.options.concurrency)
        cells: dict[str, dict[str, str]] = {}

        async def one(crm_id: str, flowtly_id: str) -> None:
            async with bound:
                try:
                    documents = await self.flowtly.client_documents(flowtly_id)
                except _FATAL:
                    raise
                except ConnectorError as error:
                    result.warnings.append(
                        RecordError(
                            str(EntityKind.CLIENT),
                            str(Side.FLOWTLY),
                            flowtly_id,
                            f"documents summary not refreshed: {error}",
                        )
                    )
                    return
            cells[crm_id] = summary_columns(summarize(flowtly_id, documents), columns)

        try:
            async with asyncio.TaskGroup() as group:
                for crm_id, link in links.items():
                    group.create_task(one(crm_id, link.flowtly_id))
        except BaseExceptionGroup as failures:
            # Per-client failures are warnings already; what escapes is fatal for the run.
            raise failures.exceptions[0] from None
        changed = 0
        for crm_id in sorted(cells):
            try:
                changed += await crm.write_columns(EntityKind.CLIENT, crm_id, cells[crm_id])
            except NotFound:
                continue  # deleted from the CRM since the run read it; the next run sees it
            except ConnectorError as error:
                result.warnings.append(
                    RecordError(
                        str(EntityKind.CLIENT),
                        str(Side.CRM),
                        crm_id,
                        f"documents summary not written: {error}",
                    )
                )
        if changed:
            await crm.commit()
        _log.info("documents_summaries", clients=len(cells), changed=changed)
