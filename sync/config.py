"""Configuration: a TOML file plus ``FLOWTLY_SYNC_<SECTION>__<KEY>`` environment variables.

Validation is pydantic's; every failure becomes a `ConfigError` naming the dotted key.
Relative paths in the file are taken relative to the file's folder, so a configuration
works from any working directory.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any, Literal, get_args
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
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
)

from connectors import registry
from sync.errors import ConfigError
from sync.flowtly.settings import SANDBOX_SCHEME, FlowtlyConfig, FlowtlyDefaults, anchored_url
from sync.mapping.config import MappingConfig
from sync.model import Side
from sync.policy import ConflictPolicy, Direction
from sync.privacy.redact import is_secret_key
from sync.quality.settings import QualityConfig
from sync.settings_base import (
    ALL_FIELDS,
    DEFAULT_CONCURRENCY,
    Concurrency,
    Seconds,
    SecondsOrZero,
    Section,
    config_error,
)

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


class StoreConfig(Section):
    """``[store]``: the state store (any SQLAlchemy URL)."""

    url: str = "sqlite:///.flowtly-sync/state.db"


class CrmConfig(BaseModel):
    """``[crm]``: ``type`` names a connector; the other keys are that connector's settings."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = "files"

    def connector_settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SyncConfig(Section):
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
    interval: SecondsOrZero | None = 900.0
    """How often the daemon runs the sync (``"15m"``), unless ``cron`` is set."""
    cron: str | None = None
    run_timeout: Seconds = 3600.0
    """A run still going after this long is stopped and recorded as failed."""
    full_scan: SecondsOrZero | None = 86_400.0
    """After this long, a side that reads only changes lists everything again (deletes
    show only in complete listings of a CRM without a deletes feed)."""
    concurrency: Concurrency = DEFAULT_CONCURRENCY
    """Writes the engine has in flight at once."""

    @field_validator("field_owners", "directions")
    @classmethod
    def _known_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - ALL_FIELDS)
        if unknown:
            raise ValueError(f"unknown canonical field(s): {', '.join(unknown)}")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            # Imported here: only a configuration with a cron needs the scheduler's parser.
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(value)
            except ValueError as exc:
                raise ValueError(f"not a cron expression ({exc})") from None
        return value

    def interval_seconds(self) -> int | None:
        """``interval`` in whole seconds (None: no interval)."""
        return None if self.interval is None else int(self.interval)

    def full_scan_seconds(self) -> int | None:
        """``full_scan`` in whole seconds (None: never a forced complete listing)."""
        return None if self.full_scan is None else int(self.full_scan)


class DaemonConfig(Section):
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


class LoggingConfig(Section):
    """``[logging]``: ``format`` json, console, or auto (console on a terminal)."""

    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class DocumentsConfig(Section):
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
        if name.lower() in ALL_FIELDS or name.lower() in ("id", "kind"):
            raise ValueError(f"{name!r} is a synced field; name a column of its own")
        return name


class EnrichmentConfig(Section):
    """``[enrichment]``: opt-in Flowtly features that fill in data."""

    branding: bool = False
    """Queue Flowtly's branding enrichment for counterparties the sync creates; with it on,
    ``logo_url`` flows only from Flowtly to the CRM."""


class SyncOverrides(Section):
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
        raise config_error(exc, key) from None


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
        # Environment first: FLOWTLY_SYNC_FLOWTLY__TOKEN overrides the file's tables,
        # which `load_settings` passes as the initial values.
        return env_settings, init_settings


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


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    """Relative paths anchored at the config file's folder, so a configuration works from
    any working directory: a SQLite store, a ``sandbox://`` file, and every setting the
    CRM connector's own settings model declares as a path."""
    updates: dict[str, Any] = {}
    url = settings.store.url
    for prefix in ("sqlite:///", "sqlite+pysqlite:///"):
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            updates["store"] = settings.store.model_copy(
                update={"url": prefix + str(base / url[len(prefix) :])}
            )
    anchored = anchored_url(settings.flowtly.base_url, base)
    if anchored != settings.flowtly.base_url:
        updates["flowtly"] = settings.flowtly.model_copy(update={"base_url": anchored})
    crm = _anchored_crm(settings.crm.model_dump(), settings.crm.type, base)
    if crm != settings.crm.model_dump():
        updates["crm"] = CrmConfig.model_validate(crm)
    if settings.syncs:
        updates["syncs"] = {
            name: _resolve_override(over, settings.crm.type, base)
            for name, over in settings.syncs.items()
        }
    return settings.model_copy(update=updates) if updates else settings


def _resolve_override(over: SyncOverrides, crm_type: str, base: Path) -> SyncOverrides:
    flowtly = dict(over.flowtly)
    if isinstance(flowtly.get("base_url"), str):
        flowtly["base_url"] = anchored_url(flowtly["base_url"], base)
    crm = _anchored_crm(over.crm, str(over.crm.get("type", crm_type)), base)
    return over.model_copy(update={"crm": crm, "flowtly": flowtly})


def _anchored_crm(table: Mapping[str, Any], crm_type: str, base: Path) -> dict[str, Any]:
    """``table`` with its relative path settings anchored at ``base``."""
    out = dict(table)
    for name in _path_settings(crm_type):
        value = out.get(name)
        if isinstance(value, str | Path) and not Path(value).is_absolute():
            out[name] = str(base / value)
    return out


def _path_settings(crm_type: str) -> list[str]:
    """The settings of connector ``crm_type`` typed as paths (the files connector's
    ``path``); none for a type that is not registered (reported where it is built)."""
    try:
        model = registry.get(crm_type).settings_model
    except ConfigError:
        return []
    return [name for name, field in model.model_fields.items() if _is_path(field.annotation)]


def _is_path(annotation: object) -> bool:
    if isinstance(annotation, type):
        return issubclass(annotation, PurePath)
    return any(_is_path(arg) for arg in get_args(annotation))


def load_settings(path: Path | None) -> Settings:
    """Load and validate the configuration at ``path`` (None: defaults and environment).

    The file is parsed once; its tables are the settings' initial values, which
    ``FLOWTLY_SYNC_*`` variables override key by key.
    """
    data: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise ConfigError("--config", f"no such file: {path}")
        try:
            with path.open("rb") as handle:
                data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from exc
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise config_error(exc) from None
    base = path.resolve().parent if path is not None else Path.cwd()
    return _resolve_paths(settings, base)
