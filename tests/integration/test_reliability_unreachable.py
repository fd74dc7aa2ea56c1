"""Flowtly unreachable or wrong: the run stops in seconds with one clear message (exit 1)
and writes no link and no intent.

A plain ``http://`` URL to a host that is not loopback must be refused before any name is
resolved or any connection opened: a ``sitecustomize`` module put on the child's path
records (and blocks) every ``getaddrinfo`` and ``connect``.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from e2e_support import (
    Env,
    free_port,
    run_cli,
    small_crm,
    store_rows,
    write_config,
    write_crm,
)

pytestmark = pytest.mark.slow

GUARD = """
import os, socket

_LOG = os.environ["NET_GUARD_LOG"]


def _record(what, target):
    with open(_LOG, "a", encoding="utf-8") as handle:
        handle.write(f"{what} {target!r}\\n")
    raise OSError(f"network access blocked by the test: {what} {target!r}")


def _getaddrinfo(host, *args, **kwargs):
    _record("getaddrinfo", host)


def _connect(self, address):
    _record("connect", address)


socket.getaddrinfo = _getaddrinfo
socket.socket.connect = _connect
socket.socket.connect_ex = _connect
"""


def _messages(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("flowtly-sync:")]


def _nothing_written(store: Path) -> None:
    if store.exists():
        assert store_rows(store, "link") == []
        assert store_rows(store, "intent") == []


def _fresh(tmp_path: Path, base_url: str) -> tuple[Path, Path]:
    crm = write_crm(tmp_path / "crm", small_crm())
    store = tmp_path / "state.db"
    config = write_config(tmp_path / "config.toml", base_url=base_url, crm=crm, store=store)
    return config, store


def test_connection_refused_fails_fast_with_one_message(tmp_path: Path) -> None:
    port = free_port()
    config, store = _fresh(tmp_path, f"http://127.0.0.1:{port}")
    started = time.monotonic()
    result = run_cli("run", config=config)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert elapsed < 30, elapsed
    [message] = _messages(result)
    assert re.search(r"connect|refused|unreachable", message, re.IGNORECASE), message
    # The request that failed: a run's first is the account check (GET /employees/me).
    paths = ("/employees/me", "/countries", "/clients")
    assert f"127.0.0.1:{port}" in message or any(path in message for path in paths)
    _nothing_written(store)


def test_plain_http_to_a_remote_host_is_refused_before_any_connection(tmp_path: Path) -> None:
    config, store = _fresh(tmp_path, "http://flowtly.example")
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD, encoding="utf-8")
    log = tmp_path / "network.log"
    started = time.monotonic()
    result = run_cli(
        "run", config=config, env={"PYTHONPATH": str(guard), "NET_GUARD_LOG": str(log)}
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert elapsed < 30, elapsed
    [message] = _messages(result)
    assert "http://flowtly.example" in message
    assert re.search(r"https|unencrypted|plain http", message), message
    assert not log.exists(), log.read_text(encoding="utf-8")
    _nothing_written(store)


def test_the_network_guard_does_block_connections(tmp_path: Path) -> None:
    """The guard of the test above works: a loopback URL is allowed, so it must trip."""
    config, _ = _fresh(tmp_path, f"http://127.0.0.1:{free_port()}")
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD, encoding="utf-8")
    log = tmp_path / "network.log"
    result = run_cli(
        "run", config=config, env={"PYTHONPATH": str(guard), "NET_GUARD_LOG": str(log)}
    )
    assert result.returncode == 1
    assert "127.0.0.1" in log.read_text(encoding="utf-8")


def test_wrong_token_leaves_the_store_as_it_was(synced_env: Env) -> None:
    links = store_rows(synced_env.store, "link")
    assert links
    started = time.monotonic()
    result = synced_env.run("run", env={"FLOWTLY_SYNC_FLOWTLY__TOKEN": "wrong-token-4567"})
    assert time.monotonic() - started < 30
    assert result.returncode == 1, result.stdout + result.stderr
    [message] = _messages(result)
    assert re.search(r"401|unauthori[sz]ed|authenticat|token", message, re.IGNORECASE)
    assert store_rows(synced_env.store, "link") == links
    assert store_rows(synced_env.store, "intent") == []
