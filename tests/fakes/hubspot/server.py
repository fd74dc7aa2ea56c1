"""The HubSpot fake served over real HTTP on 127.0.0.1 (uvicorn in a thread), for CLI tests
and for recording cassettes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from fakes.hubspot.app import hubspot_app
from fakes.hubspot.state import FakeHubSpot

__all__ = ["serve"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serve(state: FakeHubSpot) -> Iterator[str]:
    """Serve ``state`` until the block ends; yields the base URL."""
    port = _free_port()
    config = uvicorn.Config(
        hubspot_app(state), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the HubSpot fake did not start")
        time.sleep(0.01)  # waiting for a real server thread, not simulating time
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
