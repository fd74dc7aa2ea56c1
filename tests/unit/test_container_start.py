"""The container's first start on an empty volume, without Docker: the entry point of the
image (``python -m sync.cli.container``) with the image's environment pointed at a folder."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from sync.cli import CONFIG_ENV
from sync.cli.container import prepare
from sync.config import load_settings

CLEAN_ENV = {"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "TERM": "dumb"}


def _start(data: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sync.cli.container", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=data,
        env={**CLEAN_ENV, CONFIG_ENV: str(data / "config.toml"), **env},
        check=False,
    )


def test_an_empty_volume_gets_a_configuration_that_syncs(tmp_path: Path) -> None:
    # Only environment variables, as `docker run -e ...` gives them; a sandbox stands in for
    # the real Flowtly the default configuration names.
    started = _start(
        tmp_path,
        "run",
        "--output",
        "json",
        FLOWTLY_SYNC_FLOWTLY__BASE_URL=f"sandbox://{tmp_path / 'flowtly.db'}",
        FLOWTLY_SYNC_FLOWTLY__TOKEN="container-token-3318",
    )
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["status"] == "ok"
    assert "wrote the default" in started.stderr
    assert (tmp_path / "state.db").is_file()
    header = (tmp_path / "crm" / "companies.csv").read_text(encoding="utf-8")
    assert header.startswith("id,kind,name,country")
    assert "container-token-3318" not in (tmp_path / "config.toml").read_text(encoding="utf-8")


def test_the_default_names_the_real_flowtly_and_the_volume(tmp_path: Path) -> None:
    prepare(tmp_path / "config.toml")
    settings = load_settings(tmp_path / "config.toml")
    assert settings.flowtly.base_url == "https://api.flowtly.eu"
    assert settings.store.url == f"sqlite:///{tmp_path / 'state.db'}"
    assert settings.crm.connector_settings()["path"] == str(tmp_path / "crm")


def test_a_configuration_on_the_volume_is_never_touched(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[crm]\ntype = 'files'\npath = 'mine'\n", encoding="utf-8")
    assert prepare(config) == []
    assert config.read_text(encoding="utf-8") == "[crm]\ntype = 'files'\npath = 'mine'\n"
    assert not (tmp_path / "crm").exists()


def test_the_default_configuration_ships_in_the_package() -> None:
    from importlib.resources import files

    assert files("sync.cli").joinpath("container.toml").is_file()


def test_the_daemon_starts_on_an_empty_volume_and_is_healthy(tmp_path: Path) -> None:
    """The image's default command, ``daemon``, with the image's environment and a token."""
    env = {
        **CLEAN_ENV,
        CONFIG_ENV: str(tmp_path / "config.toml"),
        "FLOWTLY_SYNC_DAEMON__LISTEN": "127.0.0.1:0",
        "FLOWTLY_SYNC_LOGGING__FORMAT": "json",
        "FLOWTLY_SYNC_FLOWTLY__BASE_URL": f"sandbox://{tmp_path / 'flowtly.db'}",
        "FLOWTLY_SYNC_FLOWTLY__TOKEN": "container-token-3318",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync.cli.container", "daemon"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert proc.stderr is not None
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    events: list[dict[str, object]] = []
    try:
        for line in proc.stderr:
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
            if events and events[-1].get("event") == "tick_finished":
                break
        started = next(e for e in events if e.get("event") == "daemon_started")
        health = httpx.get(f"{started['url']}/healthz", timeout=10)
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait() == 0, rest
    finally:
        watchdog.cancel()
        proc.stderr.close()
    assert health.status_code == 200, health.text
    assert events[-1]["outcome"] == "ok"
    assert "container-token-3318" not in json.dumps(events) + rest
