"""The Salesforce connector's main calls replayed from vcrpy cassettes (tests/cassettes/).

Normal runs replay only (``record_mode="none"``): the connector's transport then leads to
an app that answers every request 500, so a request the cassette lacks fails the test. To
re-record against the fake org (in-process, no socket)::

    FLOWTLY_SYNC_RECORD=1 pytest tests/unit/test_salesforce_cassettes.py

The Authorization header, the client secret (a form field of the token request) and the
access tokens Salesforce hands out are filtered out of the recordings.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fakes.salesforce import Org, transport
from pydantic import SecretStr
from recording import CASSETTES, RECORD, recorder
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from connectors.salesforce import SalesforceConnector, SalesforceSettings
from connectors.testing import by_id, read_all
from sync.errors import NotFound
from sync.model import EntityKind

SECRET = "cassette-secret-41af"
FILTERED = "FILTERED"


def _scrub_token(response: dict[str, Any]) -> dict[str, Any]:
    body = response["body"]["string"]
    text = body.decode() if isinstance(body, bytes) else body
    if '"access_token"' in text:
        document = json.loads(text)
        document["access_token"] = FILTERED
        response["body"]["string"] = json.dumps(document).encode()
    return response


VCR = recorder(
    filter_post_data_parameters=[("client_secret", FILTERED)],
    before_record_response=_scrub_token,
)


def _dead() -> httpx.AsyncBaseTransport:
    async def refuse(request: Any) -> PlainTextResponse:
        return PlainTextResponse("not recorded", 500)

    app = Starlette(
        routes=[Route("/{path:path}", refuse, methods=["GET", "POST", "PATCH", "DELETE"])]
    )
    return httpx.ASGITransport(app=app)


def _connector() -> tuple[SalesforceConnector, Org | None]:
    def clock() -> datetime:
        return datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    org = Org(client_secret=SECRET, clock=clock) if RECORD else None
    settings = SalesforceSettings(
        instance_url="http://salesforce.test",
        client_id="fake-client-id",
        client_secret=SecretStr(SECRET),
        rate_limit=0,
        max_retries=0,
        overlap_seconds=0,
    )
    wire = transport(org) if org is not None else _dead()
    return SalesforceConnector(settings, transport=wire, now=clock), org


async def test_sync_calls_cassette() -> None:
    side, _ = _connector()
    with VCR.use_cassette("salesforce_sync.yaml"):
        async with side:
            made = await side.create_many(
                EntityKind.CLIENT, [{"name": "Acme", "country": "PL"}, {"name": "Beta"}]
            )
            first, second = (result.record for result in made)
            assert first is not None
            assert second is not None
            updated = await side.update(EntityKind.CLIENT, first.id, {"city": "Kraków"})
            assert updated.get("city") == "Kraków"
            listed = await by_id(side, EntityKind.CLIENT)
            assert listed[first.id] == updated
            cursor = (await read_all(side, EntityKind.CLIENT))[-1].cursor
            await side.delete(EntityKind.CLIENT, second.id)
            changes = await read_all(side, EntityKind.CLIENT, cursor)
            assert second.id in [one for batch in changes for one in batch.deleted_ids]
            with pytest.raises(NotFound):
                await side.update(EntityKind.CLIENT, second.id, {"name": "Gone"})


async def test_expired_session_cassette() -> None:
    side, org = _connector()
    with VCR.use_cassette("salesforce_expired_session.yaml"):
        async with side:
            await side.create(EntityKind.CLIENT, {"name": "Acme"})
            if org is not None:
                org.expire_sessions()
            assert len(await by_id(side, EntityKind.CLIENT)) == 1
            assert side.api.tokens.fetched == 2


def test_cassettes_hold_no_credentials() -> None:
    files = sorted(CASSETTES.glob("salesforce_*.yaml"))
    assert {f.stem for f in files} == {"salesforce_sync", "salesforce_expired_session"}
    for cassette in files:
        text = cassette.read_text(encoding="utf-8")
        assert SECRET not in text
        assert "authorization" not in text.lower()
        assert "00Dfake!session" not in text
