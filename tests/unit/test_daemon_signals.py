"""The real ``python -m sync daemon`` process and its signals.

The sandbox, served over HTTP from a thread of the test with latency, makes a run slow
enough to be caught mid-way; the test waits on the daemon's own log lines (no sleeping),
then signals it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from sync.daemon import READY_PREFIX
from sync.model import EntityKind
from sync.sandbox import SandboxSettings, serve
from sync.store import RunOutcome, Store

pytestmark = pytest.mark.slow

TOKEN = "tok-signals-0123456789"
LATENCY_MS = 60.0
START_TIMEOUT = 60.0
EXIT_BOUND = 15.0
COMPANIES = 24
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "crm"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWTLY_SYNC_")}
    env.update({"NO_COLOR": "1", "TERM": "dumb", "PYTHONUNBUFFERED": "1"})
    return env


def _readline(proc: subprocess.Popen[str], stream: IO[str]) -> str:
    """One line from a child, or "" once a watchdog killed the child for taking too long."""
    watchdog = threading.Timer(START_TIMEOUT, proc.kill)
    watchdog.start()
    try:
        return stream.readline()
    finally:
        watchdog.cancel()


@dataclass
class Sandbox:
    url: str


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The Flowtly sandbox over real HTTP on a free port, served from a thread of the test."""
    ready = threading.Event()
    found: dict[str, Any] = {}

    def serve_in_thread() -> None:
        async def main() -> None:
            found["stop"] = (asyncio.get_running_loop(), stop := asyncio.Event())
            settings = SandboxSettings(token=TOKEN, latency_ms=LATENCY_MS)

            def started(url: str) -> None:
                found["url"] = url
                ready.set()

            await serve(settings, "127.0.0.1", 0, ready=started, stop=stop)

        asyncio.run(main())

    thread = threading.Thread(target=serve_in_thread, daemon=True)
    thread.start()
    assert ready.wait(START_TIMEOUT), "the sandbox did not start"
    yield Sandbox(found["url"])
    loop, stop = found["stop"]
    loop.call_soon_threadsafe(stop.set)
    thread.join(START_TIMEOUT)


def write_crm(folder: Path, companies: int) -> None:
    """The first ``companies`` example companies, with their contacts."""
    folder.mkdir(parents=True)
    rows = (EXAMPLES / "companies.csv").read_text(encoding="utf-8").splitlines()
    (folder / "companies.csv").write_text("\n".join(rows[: companies + 1]) + "\n", "utf-8")
    ids = {row.split(",", 1)[0] for row in rows[1 : companies + 1]}
    for name in ("contacts.csv", "notes.csv"):
        # Neither file quotes a comma before company_id, the second column.
        lines = (EXAMPLES / name).read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines[1:] if line.split(",")[1] in ids]
        (folder / name).write_text("\n".join([lines[0], *kept]) + "\n", "utf-8")


def _config(root: Path, sandbox: Sandbox) -> Path:
    write_crm(root / "crm", COMPANIES)
    path = root / "config.toml"
    path.write_text(
        f"""
[flowtly]
base_url = "{sandbox.url}"
token = "{TOKEN}"
concurrency = 1
rate_limit = 0
[store]
url = "sqlite:///state.db"
[crm]
type = "files"
path = "crm"
[sync]
interval = "1h"
[daemon]
listen = "127.0.0.1:0"
shutdown_timeout = 10
[logging]
format = "json"
level = "debug"
""",
        encoding="utf-8",
    )
    return path


def _start_daemon(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sync", "daemon", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=config.parent,
    )


def _wait_for(proc: subprocess.Popen[str], name: str, method: str | None = None) -> None:
    """Read the daemon's log until event ``name`` (with ``method``, if given)."""
    assert proc.stderr is not None
    seen: list[str] = []
    while True:
        line = _readline(proc, proc.stderr)
        assert line, f"the daemon ended before {name}: {seen[-5:]}"
        seen.append(line)
        event = json.loads(line)
        if event.get("event") == name and (method is None or event.get("method") == method):
            return


def _wait_for_first_write(proc: subprocess.Popen[str]) -> None:
    """Until the daemon's run sends its first POST to Flowtly: it is mid-way."""
    _wait_for(proc, "flowtly.request", "POST")


def _stop(proc: subprocess.Popen[str], signals: int) -> tuple[int, float, list[dict[str, Any]]]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    if signals > 1:
        # Signals of one kind do not queue: wait until the first was handled.
        _wait_for(proc, "daemon_stopping")
        proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=EXIT_BOUND * 2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the daemon did not exit after SIGTERM")
    elapsed = time.monotonic() - started
    return proc.returncode, elapsed, [json.loads(line) for line in err.splitlines() if line]


def _flowtly_clients(sandbox: Sandbox) -> int:
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/ld+json"}
    with httpx.Client(base_url=sandbox.url, headers=headers, timeout=10) as http:
        page = http.get("/clients", params={"itemsPerPage": 1}).raise_for_status().json()
    return int(page["totalItems"])


def test_sigterm_finishes_the_operation_in_flight_and_exits_0(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config = _config(tmp_path, sandbox)
    proc = _start_daemon(config)
    _wait_for_first_write(proc)
    code, elapsed, logged = _stop(proc, signals=1)
    assert code == 0, logged[-5:]
    assert elapsed < EXIT_BOUND
    assert proc.stdout is not None
    events = [e["event"] for e in logged]
    assert "daemon_stopped" in events
    finished = next(e for e in logged if e["event"] == "tick_finished")
    assert finished["outcome"] == "interrupted"

    with Store.open(f"sqlite:///{tmp_path}/state.db") as store:
        assert store.integrity_check() == "ok"
        runs = store.recent_runs("default")
        assert [r.outcome for r in runs] in ([RunOutcome.OK], [RunOutcome.PARTIAL])
        links = store.link_index("default", EntityKind.CLIENT)
        assert store.pending_intents("default") == []
    # Stopped mid-way, and every client created in Flowtly was linked before exiting.
    assert 0 < len(links) < COMPANIES
    assert _flowtly_clients(sandbox) == len(links)


def test_a_second_signal_exits_at_once_with_the_store_consistent(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config = _config(tmp_path, sandbox)
    proc = _start_daemon(config)
    assert proc.stdout is not None
    ready = _readline(proc, proc.stdout)
    assert ready.startswith(READY_PREFIX)
    _wait_for_first_write(proc)
    code, elapsed, logged = _stop(proc, signals=2)
    assert code == 1, logged[-5:]
    assert elapsed < EXIT_BOUND
    with Store.open(f"sqlite:///{tmp_path}/state.db") as store:
        assert store.integrity_check() == "ok"
        assert all(r.outcome is not RunOutcome.RUNNING for r in store.recent_runs("default"))
