"""The Flowtly side honours the connector contract, over the in-process sandbox (as
``base_url = "sandbox://:memory:"`` builds it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import pytest_asyncio
from sql_databases import SteppingClock

from connectors.base import Connector
from connectors.testing import ConnectorContract, sample_values
from sync.config import FlowtlyConfig, Settings
from sync.flowtly.side import FlowtlySide, client_of
from sync.model import EntityKind, Scalar
from sync.sandbox import SandboxSettings, create_app
from sync.wiring import flowtly_client, flowtly_side

CREATED_AT = "notes are read with Flowtly's createdAt, never written nor compared: not in fields()"
PRESENT = "listings name only rejected items in present_ids (listed records count as present)"


class TestFlowtlyContract(ConnectorContract):
    @pytest_asyncio.fixture
    async def connector_factory(self) -> AsyncIterator[Callable[[], Connector]]:
        settings = Settings(flowtly=FlowtlyConfig(base_url="sandbox://:memory:"))
        client = flowtly_client(settings)
        async with client:
            # Every instance talks to the same sandbox, as a second process would.
            yield lambda: flowtly_side(settings, client)

    # Known differences from the contract, kept visible: strict, so a fix shows up here.

    @pytest.mark.parametrize(
        "entity",
        [
            *(entity for entity in sorted(EntityKind) if entity is not EntityKind.NOTE),
            pytest.param(EntityKind.NOTE, marks=pytest.mark.xfail(reason=CREATED_AT, strict=True)),
        ],
    )
    async def test_fields_are_respected(self, connector: Connector, entity: EntityKind) -> None:
        await super().test_fields_are_respected(connector, entity)

    @pytest.mark.xfail(reason=PRESENT, strict=True)
    @pytest.mark.parametrize("entity", sorted(EntityKind))
    async def test_listing_names_every_record_present(
        self, connector: Connector, entity: EntityKind
    ) -> None:
        await super().test_listing_names_every_record_present(connector, entity)

    def values(self, entity: EntityKind, n: int = 0) -> dict[str, Scalar]:
        values = sample_values(entity, n)
        if entity is EntityKind.NOTE:
            del values["author"]  # written by the token's employee
        return values


class TestFlowtlyIncrementalContract(TestFlowtlyContract):
    """``[flowtly] incremental = true``: contacts and notes read from a cursor, over a
    sandbox whose clock moves ten minutes per write (further apart than the overlap)."""

    @pytest_asyncio.fixture
    async def connector_factory(self) -> AsyncIterator[Callable[[], Connector]]:
        app = create_app(SandboxSettings(clock=SteppingClock()))
        settings = FlowtlyConfig(base_url="http://sandbox", token="t", incremental=True)
        client = client_of(settings, transport=httpx.ASGITransport(app=app))
        async with client:
            yield lambda: FlowtlySide.over(client, settings)
        app.state.sandbox.close()
