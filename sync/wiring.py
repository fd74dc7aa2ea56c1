"""Turning a validated configuration into live objects: connectors, client, store, job.

This is the one place that knows which concrete classes a configuration names; the CLI
and the daemon both build their jobs here, so they share one code path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
from pydantic import ValidationError

from connectors import registry
from connectors.base import Connector
from sync.config import SANDBOX_SCHEME, Settings
from sync.engine.policy import Direction, SyncPolicy
from sync.engine.run import SyncJob
from sync.errors import ConfigError
from sync.finance.documents import ColumnWriter, DocumentColumns
from sync.finance.hooks import AfterRun, FinanceOptions
from sync.flowtly.client import FlowtlyClient
from sync.flowtly.resources import Defaults
from sync.flowtly.side import FlowtlySide
from sync.mapping import MappingConnector, mapping_directions, wrap_crm
from sync.model import EntityKind
from sync.quality import Gates
from sync.sandbox import SandboxSettings, create_app
from sync.store import Store

__all__ = [
    "SANDBOX_URL",
    "after_run_of",
    "build_crm",
    "flowtly_client",
    "flowtly_side",
    "gates_of",
    "open_job",
    "open_store",
    "policy_of",
]

SANDBOX_URL = "http://sandbox.invalid"
"""The base URL an in-process sandbox answers on (never resolved: no socket is opened)."""


def build_crm(settings: Settings) -> Connector:
    """The CRM connector named by ``[crm] type``, with its settings validated, read and
    written through ``[mapping]`` when one is configured."""
    connector_cls = registry.get(settings.crm.type)
    try:
        connector_settings = connector_cls.settings_model(**settings.crm.connector_settings())
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(["crm", *(str(part) for part in first["loc"])])
        raise ConfigError(key, first["msg"]) from None
    connector = connector_cls(connector_settings)  # type: ignore[call-arg]
    return wrap_crm(connector, settings.mapping)


def flowtly_client(settings: Settings) -> FlowtlyClient:
    """A client for ``[flowtly]``: the real API, or the sandbox in-process."""
    cfg = settings.flowtly
    transport: httpx.AsyncBaseTransport | None = None
    base_url = cfg.base_url
    if base_url.startswith(SANDBOX_SCHEME):
        target = base_url[len(SANDBOX_SCHEME) :]
        db: Path | None = None if target in ("", ":memory:") else Path(target)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        token = cfg.token.get_secret_value() if cfg.token else None
        app = create_app(SandboxSettings(db=db, token=token))
        transport = httpx.ASGITransport(app=app)
        base_url = SANDBOX_URL
    if transport is None:
        return FlowtlyClient(
            base_url,
            cfg.token,
            concurrency=cfg.concurrency,
            rate_limit=cfg.rate_limit,
            timeout=cfg.timeout,
            max_retries=cfg.max_retries,
        )
    # The in-process sandbox has no budget to protect: pacing it would only slow trials.
    return FlowtlyClient(
        base_url,
        cfg.token or "sandbox",
        concurrency=cfg.concurrency,
        rate_limit=0,
        timeout=cfg.timeout,
        max_retries=cfg.max_retries,
        transport=transport,
    )


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


def _defaults(settings: Settings) -> Defaults:
    cfg = settings.flowtly.defaults
    return Defaults(
        currency=cfg.currency,
        status=cfg.status,
        tin_type=cfg.tin_type,
        documents_language=cfg.documents_language,
        contact_type=cfg.contact_type,
        counterparty_type=cfg.counterparty_type,
        note_author=cfg.employee,
    )


def gates_of(settings: Settings) -> Gates:
    """The data-quality gates of ``[quality]``; Flowtly defaults count as present values."""
    defaults = _defaults(settings)
    return Gates(
        settings.quality, defaults={entity: defaults.for_entity(entity) for entity in EntityKind}
    )


def flowtly_side(settings: Settings, client: FlowtlyClient) -> FlowtlySide:
    """The Flowtly side over ``client``, with ``[flowtly.defaults]``; note authors are
    compared by e-mail, the form a CRM names people in."""
    return FlowtlySide(client, _defaults(settings), authors_by_email=True)


def after_run_of(
    settings: Settings, store: Store, crm: Connector, flowtly: FlowtlySide
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
    writer = crm if isinstance(crm, ColumnWriter) else None
    if columns is not None and writer is None:
        raise ConfigError(
            "documents.enabled", f"the {crm.name!r} CRM connector cannot write extra columns"
        )
    return AfterRun(options, settings.sync.name, store, flowtly, writer)


def _full_scan(settings: Settings) -> timedelta | None:
    seconds = settings.sync.full_scan_seconds()
    return None if seconds is None else timedelta(seconds=seconds)


def open_store(settings: Settings) -> Store:
    """The state store at ``[store] url``, migrated."""
    return Store.open(settings.store.url)


@asynccontextmanager
async def open_job(
    settings: Settings, store: Store, *, client: FlowtlyClient | None = None
) -> AsyncIterator[SyncJob]:
    """A ready `SyncJob`; both sides are opened and closed around it.

    ``client`` replaces the one `flowtly_client` would build (the daemon passes its own to
    read the request counters afterwards); it is closed with the job all the same.
    """
    crm = build_crm(settings)
    client = client if client is not None else flowtly_client(settings)
    flowtly = flowtly_side(settings, client)
    async with client, crm, flowtly:
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
