"""Turning a validated configuration into live objects: connectors, client, store, job.

This is the one place that knows which concrete classes a configuration names; the CLI
and the daemon both build their jobs here, so they share one code path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError

from connectors import registry
from connectors.base import Connector, ConnectorSettings
from sync.config import SANDBOX_SCHEME, FlowtlyConfig, Settings
from sync.engine.policy import Direction, SyncPolicy
from sync.engine.run import SyncJob
from sync.errors import ConfigError
from sync.finance.documents import ColumnWriter, DocumentColumns
from sync.finance.hooks import AfterRun, FinanceOptions
from sync.flowtly.client import FlowtlyClient
from sync.flowtly.resources import Defaults
from sync.flowtly.side import FlowtlySide, client_of, defaults_of
from sync.mapping import MappingConnector, mapping_directions, wrap_crm
from sync.model import EntityKind
from sync.private_files import private_dir
from sync.quality import Gates
from sync.redact import Scrubber
from sync.sandbox import SandboxSettings, create_app
from sync.store import Store

__all__ = [
    "SANDBOX_URL",
    "after_run_of",
    "build_crm",
    "build_flowtly",
    "build_side",
    "flowtly_client",
    "flowtly_side",
    "gates_of",
    "open_job",
    "open_store",
    "policy_of",
    "scrubber_of",
]

SANDBOX_URL = "http://sandbox.invalid"
"""The base URL an in-process sandbox answers on (never resolved: no socket is opened)."""


def build_side(
    table: str,
    type_name: str,
    settings: Mapping[str, Any] | ConnectorSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Connector:
    """The connector registered as ``type_name``, from its configuration ``table``.

    The one way either side of a sync is built: the class is found through the entry
    points, its settings validated by its own model (errors name ``table.key``), and the
    connector made by its `Connector.from_settings`.
    """
    connector_cls = registry.get(type_name, key=f"{table}.type")
    model = connector_cls.settings_model
    if isinstance(settings, model):
        validated = settings  # validated when the configuration was loaded
    else:
        raw = settings.model_dump() if isinstance(settings, ConnectorSettings) else settings
        try:
            validated = model(**raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join([table, *(str(part) for part in first["loc"])])
            raise ConfigError(key, first["msg"]) from None
    return connector_cls.from_settings(validated, transport=transport)


def build_crm(settings: Settings) -> Connector:
    """The CRM connector named by ``[crm] type``, with its settings validated, read and
    written through ``[mapping]`` when one is configured."""
    connector = build_side("crm", settings.crm.type, settings.crm.connector_settings())
    return wrap_crm(connector, settings.mapping)


def build_flowtly(settings: Settings) -> Connector:
    """The Flowtly side of ``[flowtly]``: the real API, or the sandbox in-process."""
    cfg, transport = _flowtly_target(settings.flowtly)
    return build_side("flowtly", FlowtlySide.name, cfg, transport=transport)


def _flowtly_target(cfg: FlowtlyConfig) -> tuple[FlowtlyConfig, httpx.AsyncBaseTransport | None]:
    """``cfg`` as the client needs it, with the transport of a ``sandbox://`` base URL."""
    if not cfg.base_url.startswith(SANDBOX_SCHEME):
        return cfg, None
    target = cfg.base_url[len(SANDBOX_SCHEME) :]
    db: Path | None = None if target in ("", ":memory:") else Path(target)
    if db is not None:
        private_dir(db.parent)
    secret = cfg.token.get_secret_value() if cfg.token else None
    app = create_app(SandboxSettings(db=db, token=secret))
    # The in-process sandbox has no budget to protect: pacing it would only slow trials.
    local = cfg.model_copy(
        update={
            "base_url": SANDBOX_URL,
            "token": cfg.token or SecretStr("sandbox"),
            "rate_limit": 0,
        }
    )
    return local, httpx.ASGITransport(app=app)


def flowtly_client(settings: Settings) -> FlowtlyClient:
    """A client for ``[flowtly]``: the real API, or the sandbox in-process."""
    cfg, transport = _flowtly_target(settings.flowtly)
    return client_of(cfg, transport=transport)


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
    return defaults_of(settings.flowtly.defaults)


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
