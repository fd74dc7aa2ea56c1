"""An in-process, stateful fake of a Salesforce org's REST API, for tests.

`Org` holds the state (records, recycle bin and delete log, sessions, the daily API
allowance, injectable faults); `create_app` serves it as Starlette: the OAuth token
endpoint, SOQL ``/query`` and ``/queryAll`` with queryMore paging, ``describe``,
``/updated`` and ``/deleted``, sObject Collections with per-record SaveResults, note
content, and ``Sforce-Limit-Info`` on every answer. `serve_in_thread` runs it with
uvicorn on 127.0.0.1 for the CLI's end-to-end tests.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from fakes.salesforce._app import create_app
from fakes.salesforce._org import CUSTOM_FIELDS, Org, SaveError
from fakes.salesforce._soql import SoqlError, parse_query

__all__ = [
    "CUSTOM_FIELDS",
    "Org",
    "SaveError",
    "SoqlError",
    "create_app",
    "parse_query",
    "serve_in_thread",
    "transport",
]


def transport(org: Org, *, version: str = "62.0") -> httpx.AsyncBaseTransport:
    """An httpx transport into the fake org (no socket)."""
    return httpx.ASGITransport(app=create_app(org, version=version))


@contextmanager
def serve_in_thread(org: Org) -> Iterator[str]:
    """Serve the org over HTTP on a free 127.0.0.1 port; yields its origin."""
    config = uvicorn.Config(
        create_app(org), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    async def run() -> None:
        await server.serve()

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(run())

    thread = threading.Thread(target=main, daemon=True)
    original = server.startup

    async def startup(sockets: object = None) -> None:
        await original(sockets)  # type: ignore[arg-type]  # uvicorn's own signature
        ready.set()

    server.startup = startup  # type: ignore[method-assign]  # to learn when it listens
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the fake Salesforce did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        loop.close()
