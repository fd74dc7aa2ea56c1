"""Turning a validated configuration into live objects: connectors, client, store, job.

This is the one place that knows which concrete classes a configuration names; the CLI
and the daemon both build their jobs here, so they share one code path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from pydantic import ValidationError

from connectors import registry
from connectors.base import Connector
from sync.config import SANDBOX_SCHEME, Settings
from sync.engine.policy import SyncPolicy
from sync.engine.run import SyncJob
from sync.errors import ConfigError
from sync.flowtly.client import FlowtlyClient
from sync.flowtly.resources import Defaults
from sync.flowtly.side import FlowtlySide
from sync.sandbox import SandboxSettings, create_app
from sync.store import Store

__all__ = ["SANDBOX_URL", "build_crm", "flowtly_client", "open_job", "open_store", "policy_of"]

SANDBOX_URL = "http://sandbox.invalid"
"""The base URL an in-process sandbox answers on (never resolved: no socket is opened)."""


def build_crm(settings: Settings) -> Connector:
    """The CRM connector named by ``[crm] type``, with its settings validated."""
    connector_cls = registry.get(settings.crm.type)
    try:
        connector_settings = connector_cls.settings_model(**settings.crm.connector_settings())
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(["crm", *(str(part) for part in first["loc"])])
        raise ConfigError(key, first["msg"]) from None
    return connector_cls(connector_settings)  # type: ignore[call-arg]


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


def policy_of(settings: Settings) -> SyncPolicy:
    """The engine's policy from ``[sync]``."""
    cfg = settings.sync
    return SyncPolicy(
        conflict_policy=cfg.conflict_policy,
        field_owners=dict(cfg.field_owners),
        directions=dict(cfg.directions),
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


def open_store(settings: Settings) -> Store:
    """The state store at ``[store] url``, migrated."""
    return Store.open(settings.store.url)


@asynccontextmanager
async def open_job(settings: Settings, store: Store) -> AsyncIterator[SyncJob]:
    """A ready `SyncJob`; both sides are opened and closed around it."""
    crm = build_crm(settings)
    client = flowtly_client(settings)
    flowtly = FlowtlySide(client, _defaults(settings))
    async with client, crm, flowtly:
        yield SyncJob(
            settings.sync.name,
            crm,
            flowtly,
            store,
            policy_of(settings),
            concurrency=settings.flowtly.concurrency,
        )
