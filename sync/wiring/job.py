"""Turning a validated configuration into a ready job: policy, gates, store, after-run hook.

This is the one place that knows which concrete classes a configuration names; the CLI
and the daemon both build their jobs here (`open_job`), so they share one code path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

from connectors.base import Connector
from connectors.mapped import MappingConnector
from sync.config import Settings
from sync.engine.run import SyncJob
from sync.errors import ConfigError
from sync.extras.after_run import AfterRun, FinanceOptions
from sync.extras.documents import ColumnWriter, DocumentColumns
from sync.flowtly.client import FlowtlyClient
from sync.flowtly.side import FlowtlySide
from sync.mapping import mapping_directions
from sync.model import EntityKind
from sync.policy import Direction, SyncPolicy
from sync.privacy.redact import Scrubber
from sync.quality.gates import Gates
from sync.store import Store
from sync.wiring.sides import build_crm, build_flowtly, flowtly_defaults, flowtly_side

__all__ = [
    "after_run_of",
    "gates_of",
    "open_job",
    "open_store",
    "policy_of",
    "scrubber_of",
]


def policy_of(settings: Settings, crm: Connector | None = None) -> SyncPolicy:
    """The engine's policy from ``[sync]``, with the directions ``[mapping]`` implies
    (those of an opened mapped ``crm`` included); ``[sync] directions`` win."""
    cfg = settings.sync
    implied = crm.directions() if isinstance(crm, MappingConnector) else {}
    directions = {**mapping_directions(settings.mapping), **implied, **cfg.directions}
    if settings.enrichment.branding:
        # Flowtly fills logos in; a CRM value must never override or conflict with them.
        directions.setdefault("logo_url", Direction.FLOWTLY_TO_CRM)
    return SyncPolicy(
        conflict_policy=cfg.conflict_policy,
        field_owners=dict(cfg.field_owners),
        directions=directions,
        propagate_deletes=cfg.propagate_deletes,
        create_in_crm=cfg.create_in_crm,
        create_in_flowtly=cfg.create_in_flowtly,
        mass_delete_ratio=cfg.mass_delete_ratio,
        mass_delete_min=cfg.mass_delete_min,
    )


def gates_of(settings: Settings) -> Gates:
    """The data-quality gates of ``[quality]``; Flowtly defaults count as present values."""
    defaults = flowtly_defaults(settings)
    return Gates(
        settings.quality, defaults={entity: defaults.for_entity(entity) for entity in EntityKind}
    )


def after_run_of(
    settings: Settings, store: Store, crm: Connector, flowtly: Connector
) -> AfterRun | None:
    """The after-run hook of ``[enrichment]`` and ``[documents]``; None when both are off.

    Raises `ConfigError` when documents summaries are on but the CRM connector cannot
    write columns of its own.
    """
    docs = settings.documents
    columns = None
    if docs.enabled:
        columns = DocumentColumns(docs.count_field, docs.latest_field, docs.totals_field)
    options = FinanceOptions(
        settings.enrichment.branding, columns, concurrency=settings.flowtly.concurrency
    )
    if not options.active:
        return None
    if not isinstance(flowtly, FlowtlySide):
        raise ConfigError("flowtly.base_url", "documents and branding need the Flowtly API")
    writer = crm if isinstance(crm, ColumnWriter) else None
    if columns is not None and writer is None:
        raise ConfigError(
            "documents.enabled", f"the {crm.name!r} CRM connector cannot write extra columns"
        )
    return AfterRun(options, settings.sync.name, store, flowtly, writer)


def scrubber_of(settings: Settings) -> Scrubber:
    """The scrubber of every secret ``settings`` holds (`Settings.secrets`)."""
    return Scrubber(settings.secrets())


def _full_scan(settings: Settings) -> timedelta | None:
    seconds = settings.sync.full_scan_seconds()
    return None if seconds is None else timedelta(seconds=seconds)


def open_store(settings: Settings) -> Store:
    """The state store at ``[store] url``, migrated; it keeps texts scrubbed of the
    configured secrets and audit values of sensitive fields masked."""
    return Store.open(
        settings.store.url,
        scrubber=scrubber_of(settings),
        sensitive=settings.quality.sensitive_fields,
    )


@asynccontextmanager
async def open_job(
    settings: Settings, store: Store, *, client: FlowtlyClient | None = None
) -> AsyncIterator[SyncJob]:
    """A ready `SyncJob`; both sides are built by `build_side`, opened and closed around it.

    ``client`` puts the Flowtly side over a client of the caller's instead of its own; it
    is closed with the job all the same.
    """
    crm = build_crm(settings)
    flowtly = build_flowtly(settings) if client is None else flowtly_side(settings, client)
    async with AsyncExitStack() as stack:
        if client is not None:
            await stack.enter_async_context(client)
        await stack.enter_async_context(crm)
        await stack.enter_async_context(flowtly)
        after_run = after_run_of(settings, store, crm, flowtly)
        yield SyncJob(
            settings.sync.name,
            crm,
            flowtly,
            store,
            policy_of(settings, crm),
            concurrency=settings.sync.concurrency,
            full_scan=_full_scan(settings),
            gate=gates_of(settings),
            after_run=after_run,
        )
