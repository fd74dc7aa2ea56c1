"""The Flowtly side honours the connector contract, over the in-process sandbox (as
``base_url = "sandbox://:memory:"`` builds it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from connectors.base import Connector
from connectors.testing import ConnectorContract, sample_values
from sync.config import FlowtlyConfig, Settings
from sync.model import EntityKind, Scalar
from sync.wiring import flowtly_client, flowtly_side


class TestFlowtlyContract(ConnectorContract):
    @pytest_asyncio.fixture
    async def connector_factory(self) -> AsyncIterator[Callable[[], Connector]]:
        settings = Settings(flowtly=FlowtlyConfig(base_url="sandbox://:memory:"))
        client = flowtly_client(settings)
        async with client:
            # Every instance talks to the same sandbox, as a second process would.
            yield lambda: flowtly_side(settings, client)

    @pytest.mark.parametrize("entity", sorted(EntityKind))
    async def test_fields_are_respected(self, connector: Connector, entity: EntityKind) -> None:
        if entity is EntityKind.NOTE:
            # Notes are read with Flowtly's createdAt, which is never written or compared
            # and so is not among fields(): a known difference, kept visible here.
            pytest.xfail("Flowtly notes are read with created_at, which fields() leaves out")
        await super().test_fields_are_respected(connector, entity)

    def values(self, entity: EntityKind, n: int = 0) -> dict[str, Scalar]:
        values = sample_values(entity, n)
        if entity is EntityKind.NOTE:
            del values["author"]  # written by the token's employee
        return values
