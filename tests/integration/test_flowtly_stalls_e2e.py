"""A Flowtly that stalls a run: each case ends in seconds through the real CLI, exit 1, with
one message saying what the server did; the run is recorded as failed and its lock freed.

The server is a real HTTP server on loopback that misbehaves in one way per test.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from e2e_support import run_cli, small_crm, store_rows, write_config, write_crm

pytestmark = pytest.mark.slow

DRIP_EVERY_S = 0.05
BOUND_S = 60.0
"""Far below the two minutes a stall may take with the default settings, far above what
these cases take with theirs."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    mode = ""
    stopping: threading.Event

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a client that gave up on a dripping answer resets the connection


class _Misbehaving(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        if self.server.mode == "endless" and self.path.startswith("/employees/me"):
            # The account check a run starts with passes; the listings then never end.
            me = {"@id": "/employees/1", "id": 1, "organization": "/organizations/1"}
            self._send(200, me)
            return
        getattr(self, f"_{self.server.mode}")()

    do_POST = do_PATCH = do_DELETE = do_GET

    def _send(self, status: int, body: dict[str, Any], **headers: str) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/ld+json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(data)

    def _retry_after(self) -> None:
        self._send(429, {"detail": "slow down"}, Retry_After="1000000000")

    def _drip(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/ld+json")
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        self.wfile.write(b"{")
        while not self.server.stopping.wait(DRIP_EVERY_S):
            self.wfile.write(b" ")
            self.wfile.flush()

    def _endless(self) -> None:
        """Pages of one client each, every one with a ``next`` link to a page never seen."""
        url = urlsplit(self.path)
        page = int(parse_qs(url.query).get("page", ["1"])[0])
        path = url.path
        member = {"@id": f"{path}/{page}", "@type": "Client", "id": page, "name": f"Co {page}"}
        self._send(200, {"member": [member], "view": {"next": f"{path}?page={page + 1}"}})


@pytest.fixture
def flowtly() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Misbehaving)
    server.stopping = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.stopping.set()
    server.shutdown()
    server.server_close()
    thread.join(10)


def _run(
    tmp_path: Path, server: _Server, mode: str, **keys: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], float, Path]:
    server.mode = mode
    store = tmp_path / "state.db"
    config = write_config(
        tmp_path / "config.toml",
        base_url=f"http://127.0.0.1:{server.server_address[1]}",
        crm=write_crm(tmp_path / "crm", small_crm()),
        store=store,
        sync=keys.get("sync"),
        flowtly=keys.get("flowtly"),
    )
    started = time.monotonic()
    result = run_cli("run", config=config, timeout=BOUND_S * 2)
    return result, time.monotonic() - started, store


def test_check_reports_a_huge_retry_after_as_a_failed_flowtly(
    tmp_path: Path, flowtly: _Server
) -> None:
    flowtly.mode = "retry_after"
    config = write_config(
        tmp_path / "config.toml",
        base_url=f"http://127.0.0.1:{flowtly.server_address[1]}",
        crm=write_crm(tmp_path / "crm", small_crm()),
        store=tmp_path / "state.db",
    )
    result = run_cli("check", config=config, timeout=BOUND_S * 2)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "flowtly: FAILED - Flowtly asked to wait 1000000000 s" in result.stdout, result.stdout


def _message(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    [message] = [line for line in result.stderr.splitlines() if line.startswith("flowtly-sync:")]
    return message


def _recorded_failed(store: Path) -> None:
    runs = store_rows(store, "run")
    assert runs, "no run recorded"
    assert all("failed" in row for row in runs), runs


@pytest.mark.parametrize(
    ("keys", "cap"),
    [
        pytest.param({}, "300 s", id="default-cap"),
        pytest.param({"max_retry_after": '"10m"'}, "600 s", id="configured-cap"),
    ],
)
def test_a_huge_retry_after_stops_the_run_at_once(
    tmp_path: Path, flowtly: _Server, keys: dict[str, str], cap: str
) -> None:
    result, elapsed, store = _run(tmp_path, flowtly, "retry_after", flowtly=keys)
    message = _message(result)
    assert elapsed < BOUND_S
    assert re.search(
        r"Flowtly asked to wait 1000000000 s \(Retry-After\) on GET /\S+; "
        rf"more than flowtly.max_retry_after \({cap}\)",
        message,
    ), message
    _recorded_failed(store)


def test_a_dripping_answer_ends_at_the_request_deadline(tmp_path: Path, flowtly: _Server) -> None:
    limits = {"timeout": "1", "request_timeout": '"1s"', "request_deadline": "2.5"}
    result, elapsed, store = _run(tmp_path, flowtly, "drip", flowtly=limits)
    message = _message(result)
    assert elapsed < BOUND_S
    assert "no usable answer from Flowtly within 2.5 s (flowtly.request_deadline)" in message
    assert "the HTTP 200 headers and" in message, message
    _recorded_failed(store)


def test_an_endless_next_chain_ends_at_the_run_timeout(tmp_path: Path, flowtly: _Server) -> None:
    result, elapsed, store = _run(tmp_path, flowtly, "endless", sync={"run_timeout": '"3s"'})
    message = _message(result)
    assert elapsed < BOUND_S
    assert "the run was still going after 3 s (sync.run_timeout) and was stopped" in message
    _recorded_failed(store)
