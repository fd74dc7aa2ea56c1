"""The in-memory connector: the contract, and its test-support features."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from connectors.base import Capability, Connector, Cursor
from connectors.memory import IncrementalMemoryConnector, MemoryConnector, MemorySettings, Op
from connectors.testing import ConnectorContract, by_id, listing, sample_values
from sync.errors import ConnectorError, TransientError, ValidationFailed
from sync.model import EntityKind, Record, Scalar


class TestMemoryContract(ConnectorContract):
    persistent = False

    @pytest.fixture
    def connector_factory(self) -> Callable[[], Connector]:
        return MemoryConnector


class TestNarrowMemoryContract(ConnectorContract):
    """A side with fewer fields, entities and no client deletes, like Flowtly."""

    persistent = False

    @pytest.fixture
    def connector_factory(self) -> Callable[[], Connector]:
        return lambda: MemoryConnector(
            MemorySettings(name="flowtly"),
            entities={EntityKind.CLIENT, EntityKind.CONTACT},
            fields={EntityKind.CLIENT: {"name", "country", "city"}},
            deletable=frozenset({EntityKind.CONTACT}),
            batch_size=3,
        )


class TestIncrementalMemoryContract(ConnectorContract):
    """Cursor reads everywhere, a deletes feed for contacts and notes only."""

    persistent = False

    @pytest.fixture
    def connector_factory(self) -> Callable[[], Connector]:
        return lambda: IncrementalMemoryConnector(
            deletes_feed={EntityKind.CONTACT, EntityKind.NOTE}, batch_size=2
        )


CLIENT = EntityKind.CLIENT


async def test_ids_are_deterministic_and_skip_put_ids() -> None:
    side = MemoryConnector()
    first = await side.create(CLIENT, {"name": "A"})
    second = await side.create(EntityKind.CONTACT, {"email": "a@b.pl"})
    assert (first.id, second.id) == ("m1", "m2")
    side.put(Record(CLIENT, "m7", {"name": "Put"}))
    assert (await side.create(CLIENT, {"name": "B"})).id == "m8"
    other = MemoryConnector(id_prefix="f")
    assert (await other.create(CLIENT, {"name": "A"})).id == "f1"


async def test_values_are_normalized_and_bad_values_refused() -> None:
    side = MemoryConnector(fields={CLIENT: {"name", "country"}})
    record = await side.create(CLIENT, {"name": " A ", "country": "Poland", "city": "dropped"})
    assert dict(record.fields) == {"name": "A", "country": "PL"}
    with pytest.raises(ValidationFailed) as caught:
        await side.create(CLIENT, {"name": "A", "country": "Narnia"})
    assert caught.value.violations[0].property_path == "country"
    assert len(side.records(CLIENT)) == 1


async def test_fail_next_raises_once_without_applying() -> None:
    side = MemoryConnector()
    side.fail_next(Op.CREATE, CLIENT)
    with pytest.raises(TransientError):
        await side.create(CLIENT, {"name": "A"})
    assert side.records(CLIENT) == []
    assert side.pending_faults == 0
    assert (await side.create(CLIENT, {"name": "A"})).id == "m1"


async def test_fail_after_applies_the_write_then_raises() -> None:
    side = MemoryConnector()
    boom = ConnectorError("reply lost")
    side.fail_next(Op.UPDATE, exc=boom, after=True)
    record = await side.create(CLIENT, {"name": "A"})
    with pytest.raises(ConnectorError, match="reply lost"):
        await side.update(CLIENT, record.id, {"name": "B"})
    stored = side.get(CLIENT, record.id)
    assert stored is not None
    assert stored.get("name") == "B"


async def test_fail_next_only_matches_its_entity_and_counts_times() -> None:
    side = MemoryConnector()
    side.fail_next(Op.CREATE, EntityKind.NOTE, times=2)
    await side.create(CLIENT, {"name": "A"})
    for _ in range(2):
        with pytest.raises(TransientError):
            await side.create(EntityKind.NOTE, {"body": "x"})
    await side.create(EntityKind.NOTE, {"body": "x"})


async def test_fail_when_predicate_and_read_failures() -> None:
    side = MemoryConnector()

    def refuse_acme(
        op: Op, entity: EntityKind | None, record_id: str | None, values: Mapping[str, Scalar]
    ) -> BaseException | None:
        return ConnectorError("no acme") if values.get("name") == "Acme" else None

    side.fail_when(refuse_acme)
    await side.create(CLIENT, {"name": "Other"})
    with pytest.raises(ConnectorError, match="no acme"):
        await side.create(CLIENT, {"name": "Acme"})
    side.clear_faults()
    side.fail_next(Op.READ, CLIENT)
    with pytest.raises(TransientError):
        await listing(side, CLIENT)
    assert len(await by_id(side, CLIENT)) == 1


async def test_non_deletable_entities_archive() -> None:
    side = MemoryConnector(deletable=frozenset({EntityKind.CONTACT}), archive_status="archived")
    assert not side.can_delete(CLIENT)
    assert side.archive_status(CLIENT) == "archived"
    assert side.archive_status(EntityKind.CONTACT) is None
    record = await side.create(CLIENT, {"name": "A"})
    with pytest.raises(ConnectorError):
        await side.delete(CLIENT, record.id)
    assert side.get(CLIENT, record.id) == record


async def test_put_and_remove_are_direct_edits_and_calls_log_writes() -> None:
    side = MemoryConnector()
    full = side.put(Record(CLIENT, "crm-1", {"name": "A"}))
    assert full.get("city") is None
    assert "city" in full.fields
    assert side.calls == []
    await side.update(CLIENT, "crm-1", {"city": "Gdańsk"})
    assert [(call.op, call.record_id) for call in side.calls] == [(Op.UPDATE, "crm-1")]
    side.remove(CLIENT, "crm-1")
    assert side.get(CLIENT, "crm-1") is None
    side.reset_calls()
    assert side.calls == []


async def test_buffered_writes_are_lost_by_a_crash_before_commit() -> None:
    side = MemoryConnector(buffered=True)
    kept = await side.create(CLIENT, {"name": "kept"})
    await side.commit()
    lost = await side.create(CLIENT, {"name": "lost"})
    side.put(Record(CLIENT, "user-1", {"name": "user edit"}))
    side.crash()
    assert set(await by_id(side, CLIENT)) == {kept.id, "user-1"}
    assert lost.id not in await by_id(side, CLIENT)
    assert side.commits == 1


async def test_commit_failure_is_injectable() -> None:
    side = MemoryConnector(buffered=True)
    await side.create(CLIENT, {"name": "A"})
    side.fail_next(Op.COMMIT)
    with pytest.raises(TransientError):
        await side.commit()
    side.crash()
    assert side.records(CLIENT) == []


async def test_unbuffered_crash_loses_nothing() -> None:
    side = MemoryConnector()
    await side.create(CLIENT, {"name": "A"})
    side.crash()
    assert len(side.records(CLIENT)) == 1


async def test_listing_in_batches() -> None:
    side = MemoryConnector(batch_size=2)
    for n in range(5):
        await side.create(CLIENT, sample_values(CLIENT, n))
    batches = [batch async for batch in side.read(CLIENT)]
    assert [len(batch.records) for batch in batches] == [2, 2, 1]
    empty = [batch async for batch in side.read(EntityKind.NOTE)]
    assert len(empty) == 1
    assert list(empty[0].records) == []


async def test_incremental_reads_and_deletes_feed() -> None:
    side = IncrementalMemoryConnector()
    assert Capability.INCREMENTAL in side.capabilities
    assert Capability.INCREMENTAL not in MemoryConnector.capabilities
    a = await side.create(CLIENT, {"name": "A"})
    b = await side.create(CLIENT, {"name": "B"})
    [full] = [batch async for batch in side.read(CLIENT)]
    assert full.cursor is not None
    cursor = full.cursor
    [none_new] = [batch async for batch in side.read(CLIENT, cursor)]
    # Inclusive: the record at the cursor comes again, and nothing else.
    assert [record.id for record in none_new.records] == [b.id]
    await side.update(CLIENT, a.id, {"name": "A2"})
    await side.delete(CLIENT, b.id)
    [changes] = [batch async for batch in side.read(CLIENT, cursor)]
    assert [record.id for record in changes.records] == [a.id]
    assert list(changes.deleted_ids) == [b.id]
    assert changes.cursor is not None
    assert changes.cursor != cursor
    [from_start] = [batch async for batch in side.read(CLIENT, Cursor())]
    assert [record.id for record in from_start.records] == [a.id]


async def test_unknown_entity_is_refused() -> None:
    side = MemoryConnector(entities={CLIENT})
    with pytest.raises(ConnectorError):
        side.fields(EntityKind.NOTE)
    with pytest.raises(ValueError, match="no field"):
        MemoryConnector(fields={CLIENT: {"nope"}})
