"""Configuration: the example file loads, errors name the key, env overrides, paths anchor."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sync.config import load_settings
from sync.errors import ConfigError
from sync.model import Side
from sync.policy import ConflictPolicy
from sync.wiring import build_crm, policy_of

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"


def test_example_config_loads_and_points_at_the_embedded_default():
    settings = load_settings(EXAMPLE)
    assert settings.flowtly.base_url == f"sandbox://{ROOT}/.flowtly-sync/sandbox.db"
    assert settings.store.url == f"sqlite:///{ROOT}/.flowtly-sync/state.db"
    assert settings.crm.type == "files"
    assert settings.crm.connector_settings()["path"] == str(ROOT / "examples" / "crm")
    assert settings.sync.conflict_policy is ConflictPolicy.MANUAL
    assert settings.sync.interval_seconds() == 15 * 60
    assert build_crm(settings).describe().endswith("examples/crm")


def test_every_key_of_the_example_is_commented():
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"^#?\s*([a-z_]+)\s*=", line)
        if match is None or line.startswith("# FLOWTLY"):
            continue
        above = lines[number - 1].strip()
        assert above.startswith("#") or "#" in line, f"key {match.group(1)!r} lacks a comment"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[flowtly]\nconcurrency = 0\n", "flowtly.concurrency"),
        ("[flowtly]\nbase_url = 'ftp://x'\n", "flowtly.base_url"),
        ("[sync]\nconflict_policy = 'loudest'\n", "sync.conflict_policy"),
        ("[sync]\nfield_owners = { taxid = 'crm' }\n", "sync.field_owners"),
        ("[sync]\ninterval = 'often'\n", "sync.interval"),
        ("[nosuchsection]\nx = 1\n", "nosuchsection"),
    ],
)
def test_errors_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    assert caught.value.key == key
    assert key in str(caught.value)


def test_connector_settings_errors_name_the_crm_key(tmp_path):
    settings = load_settings(write(tmp_path, "[crm]\ntype = 'files'\npath = 'x'\ncolour = 1\n"))
    with pytest.raises(ConfigError) as caught:
        build_crm(settings)
    assert caught.value.key == "crm.colour"


def test_unknown_connector_is_a_config_error(tmp_path):
    settings = load_settings(write(tmp_path, "[crm]\ntype = 'nosuchcrm'\n"))
    with pytest.raises(ConfigError) as caught:
        build_crm(settings)
    assert caught.value.key == "crm.type"


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[flowtly\n"))
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "absent.toml")


def test_environment_overrides_the_file_and_secrets_stay_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWTLY_SYNC_FLOWTLY__TOKEN", "tok-from-env-1234")
    monkeypatch.setenv("FLOWTLY_SYNC_SYNC__CONFLICT_POLICY", "crm")
    settings = load_settings(write(tmp_path, "[flowtly]\ntoken = 'tok-from-file'\n"))
    assert settings.flowtly.token is not None
    assert settings.flowtly.token.get_secret_value() == "tok-from-env-1234"
    assert "tok-from-env-1234" not in repr(settings)
    assert "tok-from-env-1234" not in str(settings.model_dump())
    assert settings.sync.conflict_policy is ConflictPolicy.CRM


def test_policy_carries_owners_and_thresholds(tmp_path):
    settings = load_settings(
        write(tmp_path, "[sync]\nfield_owners = { tin = 'flowtly' }\nmass_delete_min = 3\n")
    )
    policy = policy_of(settings)
    assert policy.field_owners == {"tin": Side.FLOWTLY}
    assert policy.mass_delete_min == 3
