"""The HubSpot connector's main calls replayed from vcrpy cassettes (tests/cassettes/).

Normal runs replay only (``record_mode="none"``: an unrecorded request fails the test) and
need no server. To re-record against the HubSpot fake served over real HTTP on a free
loopback port::

    FLOWTLY_SYNC_RECORD=1 pytest tests/unit/test_hubspot_cassettes.py

The Authorization header is filtered out of the recordings.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
from fakes.hubspot import FakeHubSpot
from fakes.hubspot.server import serve
from pydantic import SecretStr
from recording import CASSETTES, RECORD, REPLAY_URL, recorder

from connectors.base import Cursor
from connectors.hubspot import HubSpotConnector, HubSpotSettings
from connectors.setup import missing_fields
from sync.errors import AuthenticationError, NotFound
from sync.model import EntityKind, Record

TOKEN = "pat-cassette-7f3e"
VCR = recorder()


@contextlib.contextmanager
def hubspot_url() -> Iterator[str]:
    """A live HubSpot fake when recording, a dead port when replaying."""
    if not RECORD:
        yield REPLAY_URL
        return
    with serve(FakeHubSpot(token=TOKEN)) as url:
        yield url


@contextlib.asynccontextmanager
async def recorded(name: str, token: str = TOKEN) -> AsyncIterator[HubSpotConnector]:
    with hubspot_url() as url, VCR.use_cassette(f"{name}.yaml"):
        settings = HubSpotSettings(base_url=url, token=SecretStr(token))
        async with HubSpotConnector(settings) as connector:
            yield connector


async def _records(
    connector: HubSpotConnector, entity: EntityKind, since: Cursor | None = None
) -> tuple[list[Record], Cursor | None]:
    records: list[Record] = []
    cursor = None
    async for batch in connector.read(entity, since):
        records.extend(batch.records)
        cursor = batch.cursor or cursor
    return records, cursor


async def test_main_calls_cassette() -> None:
    async with recorded("hubspot_main") as hubspot:
        fields = await hubspot.custom_fields()
        assert {f.name for f in missing_fields(fields)} >= {
            "flowtly_vat_number",
            "flowtly_currency",
        }
        await hubspot.create_fields(missing_fields(fields))
        assert missing_fields(await hubspot.custom_fields()) == []
        assert "vat_number" in hubspot.fields(EntityKind.CLIENT)

        created = await hubspot.create_many(
            EntityKind.CLIENT,
            [
                {"name": "Acme Sp. z o.o.", "country": "PL", "vat_number": "PL5260250274"},
                {"name": "Beta GmbH", "country": "DE", "city": "Berlin"},
            ],
        )
        acme, beta = (result.record for result in created)
        assert acme is not None
        assert beta is not None
        contact = await hubspot.create(
            EntityKind.CONTACT,
            {"name": "Jan Kowalski", "email": "jan@acme.example", "company_id": acme.id},
        )
        assert contact.get("company_id") == acme.id

        listed, cursor = await _records(hubspot, EntityKind.CLIENT)
        assert {r.id for r in listed} == {acme.id, beta.id}
        assert cursor is not None

        [moved] = await hubspot.update_many(EntityKind.CLIENT, [(beta.id, {"city": "Hamburg"})])
        assert moved.record is not None
        assert moved.record.get("city") == "Hamburg"
        changed, _ = await _records(hubspot, EntityKind.CLIENT, cursor)
        assert beta.id in {r.id for r in changed}

        contacts, _ = await _records(hubspot, EntityKind.CONTACT, cursor)
        assert [c.get("company_id") for c in contacts] == [acme.id]

        deleted = await hubspot.delete_many(EntityKind.CLIENT, [beta.id, "999999"])
        assert deleted[0].ok
        assert isinstance(deleted[1].error, NotFound)


async def test_unauthorized_cassette() -> None:
    with pytest.raises(AuthenticationError, match="HubSpot refused the private app token"):
        async with recorded("hubspot_unauthorized", token="pat-not-this-one"):
            pass


def test_cassettes_hold_no_token() -> None:
    for name in ("hubspot_main", "hubspot_unauthorized"):
        text = (CASSETTES / f"{name}.yaml").read_text(encoding="utf-8")
        assert TOKEN not in text
        assert "pat-not-this-one" not in text
        assert "authorization" not in text.lower()
