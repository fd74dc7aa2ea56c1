"""Find connectors by name through the entry-point group ``flowtly_sync.connectors``.

Built-in connectors are registered there too (see ``pyproject.toml``), so a third-party
package plugs in exactly the same way: declare an entry point naming a `Connector`
subclass, install the package, and set ``[crm] type`` to the entry point's name.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from connectors.base import Connector
from sync.errors import ConfigError

__all__ = ["GROUP", "available", "get"]

GROUP = "flowtly_sync.connectors"
"""The entry-point group connectors register in."""

_KEY = "crm.type"
"""The setting that names a connector, unless the caller names another."""


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=GROUP):
        # The first distribution to claim a name wins, as importlib.metadata orders them.
        found.setdefault(point.name, point)
    return found


def _load(point: EntryPoint, key: str = _KEY) -> type[Connector]:
    try:
        loaded = point.load()
    except Exception as error:
        raise ConfigError(
            key,
            f"connector {point.name!r} ({point.value}) failed to load: "
            f"{type(error).__name__}: {error}",
        ) from error
    if not (isinstance(loaded, type) and issubclass(loaded, Connector)):
        raise ConfigError(
            key,
            f"connector {point.name!r} ({point.value}) is not a Connector subclass",
        )
    return loaded


def available() -> dict[str, type[Connector]]:
    """Every registered connector class by name, sorted by name.

    Raises `ConfigError` when one of them cannot be loaded, naming it.
    """
    return {name: _load(point) for name, point in sorted(_entry_points().items())}


def get(name: str, *, key: str = _KEY) -> type[Connector]:
    """The connector class registered as ``name``; `ConfigError` on ``key`` (the setting
    that named it) if none is, or if it fails to load. Only that entry point is imported."""
    points = _entry_points()
    point = points.get(name)
    if point is None:
        names = ", ".join(sorted(points)) or "none"
        raise ConfigError(key, f"unknown connector {name!r}; available: {names}")
    return _load(point, key)
