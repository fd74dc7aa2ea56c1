"""The HubSpot connector honours the connector contract, against the HubSpot fake."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest_asyncio
from fakes.hubspot import FakeHubSpot, hubspot_app
from pydantic import SecretStr

from connectors.base import Connector
from connectors.hubspot import HubSpotConnector, HubSpotSettings
from connectors.setup import missing_fields
from connectors.testing import ConnectorContract
from sync.model import EntityKind, Scalar


class _Clock:
    """Fake time: each reading moves it on a little, so writes get distinct stamps."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 0.01
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class TestHubSpotContract(ConnectorContract):
    @pytest_asyncio.fixture
    async def connector_factory(self) -> Callable[[], Connector]:  # type: ignore[override]  # async: the portal is set up first
        clock = _Clock()
        state = FakeHubSpot(clock=clock)
        transport = httpx.ASGITransport(app=hubspot_app(state))
        settings = HubSpotSettings(
            base_url="https://api.hubapi.test",
            token=SecretStr(state.token),
            search_overlap=0,
        )

        def build() -> Connector:
            return HubSpotConnector(settings, transport=transport, clock=clock, sleep=clock.sleep)

        # The portal as `crm setup --apply` leaves it: every custom property present.
        async with HubSpotConnector(
            settings, transport=transport, clock=clock, sleep=clock.sleep
        ) as setup:
            await setup.create_fields(missing_fields(await setup.custom_fields()))
        return build

    def values(self, entity: EntityKind, n: int = 0) -> dict[str, Scalar]:
        values = super().values(entity, n)
        if entity is EntityKind.CONTACT:
            # HubSpot has no property for a contact's type or position.
            values.pop("type", None)
            values.pop("position", None)
        return values
