"""Building the two sides of a sync from a validated configuration.

Every side, the CRM and Flowtly alike, is built by `build_side`: the connector class found
through the entry points, its settings validated by its own model, the connector made by
its ``from_settings``. A ``sandbox://`` Flowtly URL is turned into the in-process sandbox
here, and only here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError

from connectors import registry
from connectors.base import Connector, ConnectorSettings
from connectors.mapped import wrap_crm
from sync.config import Settings
from sync.flowtly.client import FlowtlyClient
from sync.flowtly.resources import Defaults
from sync.flowtly.settings import SANDBOX_SCHEME, FlowtlyConfig, sandbox_file
from sync.flowtly.side import FlowtlySide, client_of, defaults_of
from sync.privacy.files import private_dir
from sync.sandbox import SandboxSettings, create_app
from sync.settings_base import config_error

__all__ = [
    "SANDBOX_URL",
    "build_crm",
    "build_flowtly",
    "build_side",
    "flowtly_client",
    "flowtly_defaults",
    "flowtly_side",
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
            raise config_error(exc, table) from None
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
    db = sandbox_file(cfg.base_url)
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


def flowtly_defaults(settings: Settings) -> Defaults:
    """The values sent for fields Flowtly requires, from ``[flowtly.defaults]``."""
    return defaults_of(settings.flowtly.defaults)


def flowtly_side(settings: Settings, client: FlowtlyClient) -> FlowtlySide:
    """The Flowtly side of ``[flowtly]`` over ``client`` (`FlowtlySide.over`)."""
    return FlowtlySide.over(client, settings.flowtly)
