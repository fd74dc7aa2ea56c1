"""``[crm] type = "hubspot"``: the settings, the token as a secret, the wiring."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.hubspot import HubSpotConnector
from connectors.mapped import MappingConnector
from sync.config import load_settings
from sync.errors import ConfigError, TransportSecurityError
from sync.model import EntityKind
from sync.wiring import build_crm

TOKEN = "pat-eu1-11111111-2222-3333-4444-555555555555"


def _config(tmp_path: Path, crm: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        '[flowtly]\nbase_url = "https://flowtly.example"\ntoken = "fl-token-1"\n'
        f'[crm]\ntype = "hubspot"\n{crm}',
        encoding="utf-8",
    )
    return path


def test_the_token_is_a_secret_from_the_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(_config(tmp_path, f'token = "{TOKEN}"\n'))
    assert TOKEN in settings.secrets()
    connector = build_crm(settings)
    assert isinstance(connector, HubSpotConnector)
    assert connector.describe() == "hubspot:https://api.hubapi.com"
    assert TOKEN not in repr(connector.settings)
    assert TOKEN not in repr(connector.client)

    monkeypatch.setenv("FLOWTLY_SYNC_CRM__TOKEN", TOKEN)
    from_env = load_settings(_config(tmp_path, ""))
    assert TOKEN in from_env.secrets()
    assert isinstance(build_crm(from_env), HubSpotConnector)


def test_a_missing_token_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"crm\.token"):
        build_crm(load_settings(_config(tmp_path, "")))


def test_plain_http_only_to_loopback(tmp_path: Path) -> None:
    remote = _config(tmp_path, f'token = "{TOKEN}"\nbase_url = "http://hubspot-proxy.example"\n')
    with pytest.raises(TransportSecurityError, match="plain http"):
        build_crm(load_settings(remote))
    local = _config(tmp_path, f'token = "{TOKEN}"\nbase_url = "http://127.0.0.1:8080"\n')
    assert isinstance(build_crm(load_settings(local)), HubSpotConnector)


def test_a_mapping_wraps_it_and_renames_inside_it(tmp_path: Path) -> None:
    path = _config(
        tmp_path, f'token = "{TOKEN}"\n[mapping.company.fields."legal_name"]\nfield = "name"\n'
    )
    connector = build_crm(load_settings(path))
    assert isinstance(connector, MappingConnector)
    inner = connector.inner
    assert isinstance(inner, HubSpotConnector)
    assert inner.codec.map.specs(EntityKind.CLIENT)["name"].name == "legal_name"
