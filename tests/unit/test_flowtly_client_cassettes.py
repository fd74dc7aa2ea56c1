"""FlowtlyClient's main operations replayed from vcrpy cassettes (tests/cassettes/).

Normal runs replay only (``record_mode="none"``: an unrecorded request fails the test) and
need no server. To re-record against the sandbox served over real HTTP on a free loopback
port::

    FLOWTLY_SYNC_RECORD=1 pytest tests/unit/test_flowtly_client_cassettes.py

The Authorization header is filtered out of the recordings.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from recording import CASSETTES, RECORD, REPLAY_URL, recorder

from sync.errors import AuthenticationError, MethodNotAllowed, NotFound, ValidationFailed
from sync.flowtly.assumptions import CLIENT_REQUIRED
from sync.flowtly.client import FlowtlyClient
from sync.sandbox.server import serve
from sync.sandbox.settings import SandboxSettings

TOKEN = "cassette-token-5d2b"
VCR = recorder()


@contextlib.asynccontextmanager
async def flowtly_url() -> AsyncIterator[str]:
    """The base URL to talk to: a live sandbox when recording, a dead port when replaying."""
    if not RECORD:
        yield REPLAY_URL
        return
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(
        serve(SandboxSettings(token=TOKEN), "127.0.0.1", 0, ready=ready.set_result, stop=stop)
    )
    try:
        yield await ready
    finally:
        stop.set()
        await server


@contextlib.asynccontextmanager
async def recorded(name: str, token: str = TOKEN) -> AsyncIterator[FlowtlyClient]:
    async with flowtly_url() as url:
        with VCR.use_cassette(f"{name}.yaml"):
            async with FlowtlyClient(url, token, rate_limit=0, max_retries=0) as flowtly:
                yield flowtly


async def refs(flowtly: FlowtlyClient) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, path in (("country", "/countries"), ("currency", "/currencies")):
        async for member in flowtly.iterate(path, page_size=1):
            found[name] = member["@id"]
            break
    return found


async def test_crud_cassette() -> None:
    async with recorded("client_crud") as flowtly:
        ref = await refs(flowtly)
        body: dict[str, Any] = {"name": "ACME", "status": "active", "tinType": "vat", **ref}
        created = await flowtly.post("/clients", body)
        assert created["@id"] == "/clients/1"
        assert (await flowtly.get(created["@id"]))["name"] == "ACME"

        patched = await flowtly.patch(created["@id"], {"name": "ACME S.A.", "dueDays": 30})
        assert (patched["name"], patched["dueDays"]) == ("ACME S.A.", 30)

        contact = await flowtly.post(
            "/client-contacts",
            {"client": created["@id"], "type": "main", "email": "a@example.com", "name": "Ann"},
        )
        await flowtly.delete(contact["@id"])
        with pytest.raises(NotFound):
            await flowtly.get(contact["@id"])
        with pytest.raises(MethodNotAllowed):
            await flowtly.delete(created["@id"])
        with pytest.raises(ValidationFailed) as caught:
            await flowtly.post("/clients", {})
        assert tuple(v.property_path for v in caught.value.violations) == CLIENT_REQUIRED


async def test_pagination_cassette() -> None:
    async with recorded("client_pagination") as flowtly:
        ref = await refs(flowtly)
        for i in range(25):
            body = {"name": f"Client {i:02d}", "status": "active", "tinType": "vat", **ref}
            await flowtly.post("/clients", body)
        gets = flowtly.stats.by_method["GET"]
        names = [m["name"] async for m in flowtly.iterate("/clients", page_size=10)]
        assert names == [f"Client {i:02d}" for i in range(25)]
        assert flowtly.stats.by_method["GET"] - gets == 3


async def test_unauthorized_cassette() -> None:
    async with recorded("client_unauthorized", token="not-the-token") as flowtly:
        with pytest.raises(AuthenticationError, match="HTTP 401: Unauthorized"):
            await flowtly.get("/clients")


def test_cassettes_hold_no_credentials() -> None:
    files = sorted(CASSETTES.glob("*.yaml"))
    assert {f.stem for f in files} >= {"client_crud", "client_pagination", "client_unauthorized"}
    for cassette in files:
        text = cassette.read_text(encoding="utf-8")
        assert TOKEN not in text
        assert "not-the-token" not in text
        assert "authorization" not in text.lower()
