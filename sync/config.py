"""Configuration: a TOML file plus ``FLOWTLY_SYNC_<SECTION>__<KEY>`` environment variables.

Validation is pydantic's; every failure becomes a `ConfigError` naming the dotted key.
Relative paths in the file are taken relative to the file's folder, so a configuration
works from any working directory.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from connectors.base import ConnectorSettings
from sync.engine.policy import ConflictPolicy, Direction
from sync.errors import ConfigError
from sync.flowtly.assumptions import FREE_ENUMS
from sync.mapping import MappingConfig
from sync.model import SCHEMAS, Side
from sync.quality import GateLevel
from sync.redact import is_secret_key

__all__ = [
    "DEFAULT_CONCURRENCY",
    "SANDBOX_SCHEME",
    "Concurrency",
    "CrmConfig",
    "DaemonConfig",
    "DocumentsConfig",
    "EnrichmentConfig",
    "FlowtlyConfig",
    "FlowtlyDefaults",
    "LoggingConfig",
    "QualityConfig",
    "Settings",
    "StoreConfig",
    "SyncConfig",
    "SyncOverrides",
    "load_settings",
]

SANDBOX_SCHEME = "sandbox://"
"""``base_url = "sandbox://PATH"`` runs the Flowtly sandbox in-process, persisted at PATH
(``sandbox://:memory:`` keeps it in memory)."""

_DURATION = re.compile(r"^\s*(\d+)\s*([smh])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}

DEFAULT_CONCURRENCY = 8
Concurrency = Annotated[int, Field(ge=1, le=64)]
"""How many requests (or writes) a section allows in flight: ``[flowtly]`` requests,
``[sync]`` writes of the engine, and a CRM connector's own setting where it has one."""
_ALL_FIELDS = frozenset(name for schema in SCHEMAS.values() for name in schema)


def _duration_seconds(value: object) -> object:
    """``"90s"``, ``"5m"`` or ``"1h"`` as seconds; numbers (and numeric text) pass as they are."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is not None:
            return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        try:
            return float(value)
        except ValueError:
            raise ValueError("must be seconds or a duration like 30s, 15m or 1h") from None
    return value


Seconds = Annotated[float, BeforeValidator(_duration_seconds), Field(gt=0, allow_inf_nan=False)]
"""A duration in seconds, written as a number or as ``"30s"``, ``"15m"``, ``"1h"``."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FlowtlyDefaults(_Section):
    """Values sent for fields Flowtly requires when a record has none."""

    currency: str = "EUR"
    status: str = FREE_ENUMS["Client.status"]
    tin_type: str = FREE_ENUMS["Client.tinType"]
    documents_language: str = FREE_ENUMS["Client.documentsLanguage"]
    contact_type: str = FREE_ENUMS["ClientContact.type"]
    counterparty_type: str = FREE_ENUMS["Counterparty.type"]
    employee: str | None = None


class FlowtlyConfig(ConnectorSettings):
    """``[flowtly]``: where Flowtly is and how hard we may use it; the settings model of
    the Flowtly connector (`sync.flowtly.side.FlowtlySide`)."""

    base_url: str = "https://api.flowtly.eu"
    token: SecretStr | None = None
    concurrency: Concurrency = DEFAULT_CONCURRENCY
    rate_limit: float = Field(10.0, ge=0)
    timeout: float = Field(30.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20)
    request_timeout: Seconds = 45.0
    """One attempt as a whole, connect to last byte (``timeout`` bounds each read)."""
    request_deadline: Seconds = 90.0
    """One request with its retries and backoff; waits Flowtly asks for are not counted."""
    max_retry_after: Seconds = 300.0
    """The longest Retry-After honoured; a longer one stops the run."""
    max_response_bytes: int = Field(50_000_000, ge=1024)
    defaults: FlowtlyDefaults = FlowtlyDefaults()

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith((SANDBOX_SCHEME, "http://", "https://")):
            raise ValueError("must start with https://, http:// (loopback only) or sandbox://")
        return value.rstrip("/")


class StoreConfig(_Section):
    """``[store]``: the state store (any SQLAlchemy URL)."""

    url: str = "sqlite:///.flowtly-sync/state.db"


class CrmConfig(BaseModel):
    """``[crm]``: ``type`` names a connector; the other keys are that connector's settings."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = "files"

    def connector_settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SyncConfig(_Section):
    """``[sync]``: how conflicts and deletes are decided, and when the daemon runs."""

    name: str = "default"
    conflict_policy: ConflictPolicy = ConflictPolicy.MANUAL
    field_owners: dict[str, Side] = Field(default_factory=dict)
    directions: dict[str, Direction] = Field(default_factory=dict)
    propagate_deletes: bool = True
    create_in_crm: bool = True
    create_in_flowtly: bool = True
    mass_delete_ratio: float = Field(0.5, gt=0, le=1)
    mass_delete_min: int = Field(3, ge=1)
    interval: str | None = "15m"
    cron: str | None = None
    run_timeout: Seconds = 3600.0
    """A run still going after this long is stopped and recorded as failed."""
    full_scan: str | None = "24h"
    """After this long, a side that reads only changes lists everything again (deletes
    show only in complete listings of a CRM without a deletes feed)."""
    concurrency: Concurrency = DEFAULT_CONCURRENCY
    """Writes the engine has in flight at once."""

    @field_validator("field_owners", "directions")
    @classmethod
    def _known_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - _ALL_FIELDS)
        if unknown:
            raise ValueError(f"unknown canonical field(s): {', '.join(unknown)}")
        return value

    @field_validator("interval", "full_scan")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and not _DURATION.match(value):
            raise ValueError("must be a duration like 30s, 15m or 1h")
        return value

    def interval_seconds(self) -> int | None:
        return _seconds(self.interval)

    def full_scan_seconds(self) -> int | None:
        return _seconds(self.full_scan)


def _seconds(duration: str | None) -> int | None:
    match = _DURATION.match(duration) if duration else None
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class DaemonConfig(_Section):
    """``[daemon]``: the health, metrics and webhook endpoint, and how runs are paced."""

    listen: str = "127.0.0.1:8080"
    webhook_secret: SecretStr | None = None
    """Shared secret of ``POST /webhooks/{source}``; unset, the endpoint refuses everything."""
    webhook_tolerance: int = Field(300, ge=1, le=86_400)
    """Seconds a signed webhook timestamp may differ from our clock."""
    backoff_max_skip: int = Field(16, ge=0, le=10_000)
    """After repeated failures a sync skips 1, 3, 7, ... ticks, at most this many (0: none)."""
    shutdown_timeout: float = Field(30.0, gt=0, le=3600)
    """Seconds SIGTERM waits for the operations in flight before cancelling them."""

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        _split_listen(value)
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < _MIN_SECRET:
            raise ValueError(f"must be at least {_MIN_SECRET} characters")
        return value

    def address(self) -> tuple[str, int]:
        """``listen`` as (host, port); brackets around an IPv6 host are removed."""
        return _split_listen(self.listen)


_MIN_SECRET = 16


def _split_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[IPv6]:PORT``) as (host, port); ValueError when malformed."""
    host, sep, port = value.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65_535:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
    return host, int(port)


class LoggingConfig(_Section):
    """``[logging]``: ``format`` json, console, or auto (console on a terminal)."""

    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class QualityConfig(_Section):
    """``[quality]``: the data-quality gate levels, and fields masked besides tax ids.

    Each gate is ``reject`` (the record is not written and is reported), ``warn`` (written,
    and reported as a warning) or ``off``. See `sync.quality` for what each gate checks.
    """

    vat: GateLevel = GateLevel.REJECT
    tin: GateLevel = GateLevel.REJECT
    email: GateLevel = GateLevel.REJECT
    phone: GateLevel = GateLevel.WARN
    country: GateLevel = GateLevel.REJECT
    currency: GateLevel = GateLevel.REJECT
    required: GateLevel = GateLevel.REJECT
    sensitive_fields: tuple[str, ...] = ()
    """Canonical fields masked in logs and reports, besides ``tin`` and ``vat_number``."""

    @field_validator("sensitive_fields")
    @classmethod
    def _known_sensitive(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - _ALL_FIELDS)
        if unknown:
            raise ValueError(f"unknown canonical field(s): {', '.join(unknown)}")
        return value


class DocumentsConfig(_Section):
    """``[documents]``: a summary of each linked client's Flowtly documents in CRM columns.

    The columns are CRM columns, not canonical fields: they are written after each run
    (added to the CRM file when missing) and never synced back to Flowtly.
    """

    enabled: bool = False
    count_field: str | None = "documents_count"
    latest_field: str | None = "latest_document_date"
    totals_field: str | None = None
    """Gross totals per currency, e.g. ``EUR 1200.00; PLN 310.50`` (None: not written)."""

    @field_validator("count_field", "latest_field", "totals_field")
    @classmethod
    def _crm_column(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = value.strip()
        if not name:
            raise ValueError("must be a column name (or left out)")
        if name.lower() in _ALL_FIELDS or name.lower() in ("id", "kind"):
            raise ValueError(f"{name!r} is a synced field; name a column of its own")
        return name


class EnrichmentConfig(_Section):
    """``[enrichment]``: opt-in Flowtly features that fill in data."""

    branding: bool = False
    """Queue Flowtly's branding enrichment for counterparties the sync creates; with it on,
    ``logo_url`` flows only from Flowtly to the CRM."""


class SyncOverrides(_Section):
    """``[syncs.NAME]``: one named sync; its tables override the top-level ones key by key."""

    flowtly: dict[str, Any] = Field(default_factory=dict)
    crm: dict[str, Any] = Field(default_factory=dict)
    sync: dict[str, Any] = Field(default_factory=dict)
    mapping: dict[str, Any] = Field(default_factory=dict)


def _merged(model: BaseModel, overrides: dict[str, Any], key: str) -> Any:
    data = {**model.model_dump(), **overrides}
    try:
        return type(model).model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{key}.{_dotted(first['loc'])}", first["msg"]) from None


class Settings(BaseSettings):
    """The whole configuration.

    Without ``[syncs]`` it describes one sync (named by ``[sync] name``). With
    ``[syncs.NAME]`` tables, each names a sync whose ``flowtly``, ``crm``, ``sync`` and
    ``mapping`` tables override the top-level ones; the store, daemon and logging are shared.
    """

    model_config = SettingsConfigDict(
        env_prefix="FLOWTLY_SYNC_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    flowtly: FlowtlyConfig = FlowtlyConfig()
    store: StoreConfig = StoreConfig()
    crm: CrmConfig = CrmConfig()
    sync: SyncConfig = SyncConfig()
    daemon: DaemonConfig = DaemonConfig()
    logging: LoggingConfig = LoggingConfig()
    quality: QualityConfig = QualityConfig()
    documents: DocumentsConfig = DocumentsConfig()
    enrichment: EnrichmentConfig = EnrichmentConfig()
    mapping: MappingConfig = MappingConfig()
    syncs: dict[str, SyncOverrides] = Field(default_factory=dict)

    def secrets(self) -> list[str]:
        """Every secret this configuration holds (each sync's token and CRM secrets, the
        webhook secret, the store's password): the values scrubbing must know."""
        found = {self.flowtly.token.get_secret_value()} if self.flowtly.token else set()
        found |= _crm_secrets(self.crm.connector_settings())
        for name in self.sync_names():
            one = self.for_sync(name)
            if one.flowtly.token is not None:
                found.add(one.flowtly.token.get_secret_value())
            found |= _crm_secrets(one.crm.connector_settings())
        if self.daemon.webhook_secret is not None:
            found.add(self.daemon.webhook_secret.get_secret_value())
        password = urlsplit(self.store.url).password
        if password:
            found.add(unquote(password))
        return sorted(found)

    def sync_names(self) -> list[str]:
        """The names of the configured syncs, in file order."""
        return list(self.syncs) if self.syncs else [self.sync.name]

    def for_sync(self, name: str) -> Settings:
        """The settings of one sync, overrides applied, ``sync.name`` set to ``name``."""
        if not self.syncs:
            if name != self.sync.name:
                raise ConfigError("--sync", f"no sync named {name!r}; configured: {self.sync.name}")
            return self
        if name not in self.syncs:
            raise ConfigError(
                "--sync", f"no sync named {name!r}; configured: {', '.join(self.syncs)}"
            )
        over = self.syncs[name]
        prefix = f"syncs.{name}"
        crm_data = {**self.crm.model_dump(), **over.crm}
        return self.model_copy(
            update={
                "flowtly": _merged(self.flowtly, over.flowtly, f"{prefix}.flowtly"),
                "crm": CrmConfig.model_validate(crm_data),
                "sync": _merged(self.sync, {**over.sync, "name": name}, f"{prefix}.sync"),
                "mapping": _merged(self.mapping, over.mapping, f"{prefix}.mapping"),
                "syncs": {},
            }
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first: FLOWTLY_SYNC_FLOWTLY__TOKEN overrides the file.
        return env_settings, init_settings, TomlConfigSettingsSource(settings_cls)


def _crm_secrets(table: Mapping[str, Any]) -> set[str]:
    """The values of ``[crm]`` keys named as secrets (``api_key``, ``*_token``, ...), at
    any depth: connectors own their settings, so their names are all there is to go by."""
    found: set[str] = set()
    for key, value in table.items():
        if isinstance(value, Mapping):
            found |= _crm_secrets(value)
        elif is_secret_key(key) and value not in (None, ""):
            found.add(value.get_secret_value() if isinstance(value, SecretStr) else str(value))
        elif key == "url" and isinstance(value, str | SecretStr):
            # A database URL (the sql connector's) carries its password inside.
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            password = urlsplit(text).password
            if password:
                found.add(unquote(password))
    return found


def _dotted(loc: tuple[int | str, ...]) -> str:
    # pydantic marks a bad dictionary key with a trailing "[key]": the key is named already.
    return ".".join(str(part) for part in loc if part != "[key]")


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    """Relative file paths and SQLite URLs, anchored at the config file's folder."""
    updates: dict[str, Any] = {}
    url = settings.store.url
    for prefix in ("sqlite:///", "sqlite+pysqlite:///"):
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            updates["store"] = settings.store.model_copy(
                update={"url": prefix + str(base / url[len(prefix) :])}
            )
    base_url = settings.flowtly.base_url
    if base_url.startswith(SANDBOX_SCHEME):
        target = base_url[len(SANDBOX_SCHEME) :]
        if target and target != ":memory:" and not Path(target).is_absolute():
            updates["flowtly"] = settings.flowtly.model_copy(
                update={"base_url": SANDBOX_SCHEME + str(base / target)}
            )
    crm_extra = settings.crm.connector_settings()
    if isinstance(crm_extra.get("path"), str) and not Path(crm_extra["path"]).is_absolute():
        updates["crm"] = CrmConfig(
            type=settings.crm.type, **{**crm_extra, "path": str(base / crm_extra["path"])}
        )
    if settings.syncs:
        updates["syncs"] = {
            name: _resolve_override(over, base) for name, over in settings.syncs.items()
        }
    return settings.model_copy(update=updates) if updates else settings


def _resolve_override(over: SyncOverrides, base: Path) -> SyncOverrides:
    crm, flowtly = dict(over.crm), dict(over.flowtly)
    path = crm.get("path")
    if isinstance(path, str) and not Path(path).is_absolute():
        crm["path"] = str(base / path)
    url = flowtly.get("base_url")
    if isinstance(url, str) and url.startswith(SANDBOX_SCHEME):
        target = url[len(SANDBOX_SCHEME) :]
        if target and target != ":memory:" and not Path(target).is_absolute():
            flowtly["base_url"] = SANDBOX_SCHEME + str(base / target)
    return over.model_copy(update={"crm": crm, "flowtly": flowtly})


def load_settings(path: Path | None) -> Settings:
    """Load and validate the configuration at ``path`` (None: defaults and environment)."""
    settings_cls: type[Settings] = Settings
    if path is not None:
        if not path.is_file():
            raise ConfigError("--config", f"no such file: {path}")
        try:
            with path.open("rb") as handle:
                tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from exc
        settings_cls = type(
            "FileSettings",
            (Settings,),
            {"model_config": SettingsConfigDict(**{**Settings.model_config, "toml_file": path})},
        )
    try:
        settings = settings_cls()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(_dotted(first["loc"]), first["msg"]) from None
    base = path.resolve().parent if path is not None else Path.cwd()
    return _resolve_paths(settings, base)
