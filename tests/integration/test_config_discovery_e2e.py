"""Which configuration file the CLI reads when ``--config`` is not given, and what it says
(and leaves behind: nothing) when there is none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import CLI_TIMEOUT, cli_env, write_config

from sync.cli import CONFIG_ENV

COMMANDS = [["run"], ["diff"], ["status"], ["check"], ["conflicts", "list"], ["daemon"]]


def _cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sync", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env=cli_env(env),
        cwd=cwd,
        check=False,
    )


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_no_configuration_file_is_a_usage_error_that_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    result = _cli(*command, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    message = result.stderr
    assert "no configuration file found" in message
    for looked_at in ("./config.toml", "./config.example.toml", CONFIG_ENV, str(tmp_path)):
        assert looked_at in message
    assert "Traceback" not in message
    assert list(tmp_path.iterdir()) == []


def test_the_environment_names_the_configuration_file(tmp_path: Path) -> None:
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    store = elsewhere / "state.db"
    config = write_config(
        elsewhere / "sync.toml", base_url="sandbox://:memory:", crm=elsewhere, store=store
    )
    work = tmp_path / "work"
    work.mkdir()
    result = _cli("status", cwd=work, env={CONFIG_ENV: str(config)})
    assert result.returncode == 0, result.stderr
    assert "no runs yet" in result.stdout
    assert list(work.iterdir()) == []


def test_a_configuration_file_named_by_the_environment_must_exist(tmp_path: Path) -> None:
    result = _cli("status", cwd=tmp_path, env={CONFIG_ENV: str(tmp_path / "absent.toml")})
    assert result.returncode == 2
    assert CONFIG_ENV in result.stderr
    assert "absent.toml" in result.stderr
    assert list(tmp_path.iterdir()) == []
