"""The contract checks what a connector declares: an undeclared capability skips its
tests, a declared one that does not hold fails them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from connectors.base import Capability, ChangeBatch, Cursor
from connectors.memory import IncrementalMemoryConnector, MemoryConnector
from connectors.testing import ConnectorContract
from sync.model import EntityKind

CLIENT = EntityKind.CLIENT


class ClaimsIncremental(MemoryConnector):
    """Declares incremental reads, but lists everything whatever the cursor."""

    capabilities = MemoryConnector.capabilities | {Capability.INCREMENTAL}

    async def read(
        self, entity: EntityKind, since: Cursor | None = None
    ) -> AsyncIterator[ChangeBatch]:
        async for batch in super().read(entity, None):
            yield batch


class ClaimsDeletesFeed(IncrementalMemoryConnector):
    """Declares a deletes feed, but its increments never report a delete."""

    async def read(
        self, entity: EntityKind, since: Cursor | None = None
    ) -> AsyncIterator[ChangeBatch]:
        async for batch in super().read(entity, since):
            yield ChangeBatch(
                entity, batch.records, present_ids=batch.present_ids, cursor=batch.cursor
            )


async def test_a_declared_incremental_read_that_lists_everything_fails() -> None:
    contract = ConnectorContract()
    async with ClaimsIncremental() as side:
        with pytest.raises(AssertionError, match="not a listing"):
            await contract.test_incremental_read_has_the_changes_since_an_inclusive_cursor(
                side, CLIENT
            )


async def test_a_declared_deletes_feed_that_reports_nothing_fails() -> None:
    contract = ConnectorContract()
    async with ClaimsDeletesFeed() as side:
        with pytest.raises(AssertionError):
            await contract.test_deletes_feed_reports_deleted_ids(side, EntityKind.CONTACT)


async def test_an_undeclared_capability_skips_its_tests() -> None:
    contract = ConnectorContract()
    async with MemoryConnector() as side:
        with pytest.raises(pytest.skip.Exception, match="does not declare incremental"):
            await contract.test_incremental_read_has_the_changes_since_an_inclusive_cursor(
                side, CLIENT
            )
    async with IncrementalMemoryConnector(deletes_feed=()) as side:
        with pytest.raises(pytest.skip.Exception, match="does not declare deletes_feed"):
            await contract.test_deletes_feed_reports_deleted_ids(side, CLIENT)
    async with MemoryConnector(entities={CLIENT}) as side:
        with pytest.raises(pytest.skip.Exception, match="holds no note records"):
            await contract.test_get_many_returns_the_records_asked_for(side, EntityKind.NOTE)
