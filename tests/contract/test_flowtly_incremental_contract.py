"""The Flowtly side with incremental reads honours the whole connector contract, over a
sandbox whose clock moves an hour at every reading of it, so that records written one
after another carry ``updatedAt`` stamps further apart than the increments' overlap (on a
real clock, records written within the overlap of the cursor are read again: see
test_flowtly_contract.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from test_flowtly_contract import TestFlowtlyContract as FlowtlyContract

from connectors.base import Capability, Connector
from connectors.testing import ConnectorContract
from sync.flowtly.client import FlowtlyClient
from sync.flowtly.increments import INCREMENTAL_ENTITIES, OVERLAP
from sync.flowtly.settings import FlowtlyDefaults
from sync.flowtly.side import FlowtlySide, defaults_of
from sync.model import EntityKind
from sync.sandbox.app import create_app
from sync.sandbox.settings import SandboxSettings

TOKEN = "sandbox-token-incremental"


class MovingClock:
    """Each reading is an hour (more than `OVERLAP`) after the one before."""

    def __init__(self) -> None:
        self.now = datetime(2000, 1, 1, tzinfo=UTC)  # well before the real clock

    def __call__(self) -> datetime:
        self.now += max(timedelta(hours=1), 2 * OVERLAP)
        return self.now


class TestFlowtlyIncrementalContract(FlowtlyContract):
    """The complete-listing contract's known differences hold here too."""

    @pytest_asyncio.fixture
    async def connector_factory(self) -> AsyncIterator[Callable[[], Connector]]:
        app = create_app(SandboxSettings(token=TOKEN, clock=MovingClock()))
        client = FlowtlyClient(
            "http://sandbox", TOKEN, rate_limit=0, transport=httpx.ASGITransport(app=app)
        )
        defaults = defaults_of(FlowtlyDefaults())
        async with client:
            yield lambda: FlowtlySide(client, defaults, incremental=True)

    @pytest.mark.parametrize("entity", sorted(EntityKind))
    async def test_incremental_read_has_the_changes_since_an_inclusive_cursor(
        self, connector: Connector, entity: EntityKind
    ) -> None:
        # Held to the contract here, on a clock that moves (see the module docstring).
        await ConnectorContract.test_incremental_read_has_the_changes_since_an_inclusive_cursor(
            self, connector, entity
        )


def test_only_contacts_and_notes_are_read_incrementally() -> None:
    side = FlowtlySide.__new__(FlowtlySide)
    side._incremental = True
    offered = {e for e in EntityKind if Capability.INCREMENTAL in side.capabilities_for(e)}
    assert offered == set(INCREMENTAL_ENTITIES) == {EntityKind.CONTACT, EntityKind.NOTE}
    side._incremental = False
    assert not any(Capability.INCREMENTAL in side.capabilities_for(e) for e in EntityKind)
