"""Connector discovery through the ``flowtly_sync.connectors`` entry points."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from connectors import registry
from connectors.files import FilesConnector
from connectors.memory import MemoryConnector
from sync.errors import ConfigError


def test_builtins_are_registered() -> None:
    found = registry.available()
    assert found["files"] is FilesConnector
    assert found["memory"] is MemoryConnector
    assert registry.get("memory") is MemoryConnector
    for name, cls in found.items():
        assert cls.name == name


def test_unknown_name_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        registry.get("hubspott")
    assert caught.value.key == "crm.type"
    assert "unknown connector 'hubspott'" in caught.value.reason
    assert "files" in caught.value.reason
    assert "memory" in caught.value.reason


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("no_such_module_xyz:Connector", "failed to load: ModuleNotFoundError"),
        ("pathlib:Path", "is not a Connector subclass"),
        ("connectors.files:FilesSettings", "is not a Connector subclass"),
    ],
)
def test_broken_entry_points_are_clear_errors(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    point = EntryPoint(name="thirdparty", value=value, group=registry.GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point])
    with pytest.raises(ConfigError, match=message) as caught:
        registry.get("thirdparty")
    assert caught.value.key == "crm.type"
    assert "thirdparty" in str(caught.value)
    with pytest.raises(ConfigError):
        registry.available()


def test_only_the_requested_entry_point_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    points = [
        EntryPoint(name="broken", value="no_such_module_xyz:C", group=registry.GROUP),
        EntryPoint(name="memory", value="connectors.memory:MemoryConnector", group=registry.GROUP),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: points)
    assert registry.get("memory") is MemoryConnector
