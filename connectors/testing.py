"""The contract every connector honours, as a pytest base class its tests subclass.

A connector's test module subclasses `ConnectorContract` and provides one fixture,
``connector_factory``: a callable that returns a new instance of the connector over the
same storage each time it is called (fresh and empty the first time)::

    import pytest
    from connectors.testing import ConnectorContract

    class TestMyCrm(ConnectorContract):
        @pytest.fixture
        def connector_factory(self, tmp_path):
            return lambda: MyCrm(MySettings(path=tmp_path))

Every test of the contract is then inherited. Tests run per entity kind and skip by
declaration: an entity the connector does not hold, or a capability it does not declare
for that entity (`Connector.capabilities_for`), skips the test that needs it; a
capability that is declared is checked, and a connector that fails it fails. Values are
canonical; each test relies only on the fields the connector says it carries.

The tests are coroutines run by pytest-asyncio; pytest and pytest-asyncio are needed only
by this module (``pip install 'flowtly-sync[test]'``), never by a sync.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import ClassVar

try:
    import pytest
    import pytest_asyncio
except ImportError as missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "connectors.testing needs pytest and pytest-asyncio: pip install 'flowtly-sync[test]'"
    ) from missing

from connectors.base import Capability, ChangeBatch, Connector, ConnectorSettings, Cursor
from sync.errors import ConnectorError, NotFound
from sync.model import SCHEMAS, EntityKind, Record, Scalar
from sync.normalize import normalize_value

__all__ = ["ConnectorContract", "by_id", "listing", "read_all", "sample_values"]

_SAMPLES: Mapping[EntityKind, Mapping[str, Scalar]] = {
    EntityKind.CLIENT: {
        "name": "Acme Sp. z o.o.",
        "country": "PL",
        "currency": "PLN",
        "status": "active",
        "tin_type": "nip",
        "tin": "5260250274",
        "tin_country": "PL",
        "vat_number": "PL5260250274",
        "due_days": 14,
        "documents_language": "pl",
        "default_tax_rate": "23",
        "phone": "+48 22 123 45 67",
        "city": "Warszawa",
        "post_code": "00-001",
        "street_line": "Königsallee",
        "building_number": "1",
        "website": "https://acme.example",
    },
    EntityKind.COUNTERPARTY: {
        "name": "Supplies Ltd",
        "country": "GB",
        "currency": "GBP",
        "vat_number": "GB123456789",
        "due_days": 30,
        "city": "London",
        "counterparty_type": "supplier",
        "cyclic": True,
        "require_attachment": False,
    },
    EntityKind.CONTACT: {
        "name": "Jan Kowalski",
        "email": "jan@acme.example",
        "phone": "+48 600 000 000",
        "title": "CFO",
        "type": "billing",
        "position": 1,
    },
    EntityKind.NOTE: {
        "body": 'Called about invoice 7; said "next week".\nFollow up.',
        "author": "anna",
        "created_at": "2024-01-02T03:04:05+00:00",
    },
}

_ENTITIES = sorted(EntityKind)


def sample_values(entity: EntityKind, n: int = 0) -> dict[str, Scalar]:
    """Canonical values for ``entity``, made distinct by ``n``."""
    values = dict(_SAMPLES[entity])
    for name in ("name", "body"):
        if name in values and n:
            values[name] = f"{values[name]} #{n}"
    if "email" in values and n:
        values["email"] = f"jan{n}@acme.example"
    return values


async def read_all(
    connector: Connector, entity: EntityKind, since: Cursor | None = None
) -> list[ChangeBatch]:
    """Every batch of one read."""
    batches: list[ChangeBatch] = []
    async for batch in connector.read(entity, since):
        assert batch.entity is entity
        batches.append(batch)
    return batches


async def listing(connector: Connector, entity: EntityKind) -> tuple[list[Record], list[str]]:
    """Every record of a complete read, and every present id, over all batches."""
    records: list[Record] = []
    present: list[str] = []
    for batch in await read_all(connector, entity):
        records.extend(batch.records)
        present.extend(batch.present_ids)
    return records, present


async def by_id(connector: Connector, entity: EntityKind) -> dict[str, Record]:
    """A complete listing by id (asserting that no id comes twice)."""
    records, _ = await listing(connector, entity)
    ids = [record.id for record in records]
    assert len(ids) == len(set(ids)), "a complete listing repeats an id"
    return {record.id: record for record in records}


def _last_cursor(batches: list[ChangeBatch]) -> Cursor | None:
    cursors = [batch.cursor for batch in batches if batch.cursor is not None]
    return cursors[-1] if cursors else None


def _changed_ids(batches: list[ChangeBatch]) -> list[str]:
    return [record.id for batch in batches for record in batch.records]


def _text_field(entity: EntityKind) -> str:
    return "body" if entity is EntityKind.NOTE else "name"


class ConnectorContract:
    """Base class of a connector's contract tests (not collected: no ``Test`` prefix)."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    persistent: ClassVar[bool] = True
    """Whether an instance from ``connector_factory`` sees what an earlier one committed."""

    @pytest.fixture
    def connector_factory(self) -> Callable[[], Connector]:
        """Overridden by subclasses: builds the connector under test (see the module)."""
        pytest.fail(f"{type(self).__name__} must provide a connector_factory fixture")

    @pytest_asyncio.fixture
    async def connector(
        self, connector_factory: Callable[[], Connector]
    ) -> AsyncIterator[Connector]:
        connector = connector_factory()
        async with connector:
            yield connector

    def values(self, entity: EntityKind, n: int = 0) -> dict[str, Scalar]:
        """The values the tests create records with (a subclass may adapt them)."""
        return sample_values(entity, n)

    # -- helpers ------------------------------------------------------------------------

    def _holds(self, connector: Connector, entity: EntityKind) -> None:
        if entity not in connector.entities():
            pytest.skip(f"{connector.name} holds no {entity} records")

    def _offers(self, connector: Connector, entity: EntityKind, *needed: Capability) -> None:
        self._holds(connector, entity)
        declared = connector.capabilities_for(entity)
        for capability in needed:
            if capability not in declared:
                pytest.skip(f"{connector.name} does not declare {capability} for {entity}")

    def _deletes(self, connector: Connector, entity: EntityKind) -> None:
        self._offers(connector, entity, Capability.WRITE, Capability.DELETE)
        if not connector.can_delete(entity):
            pytest.skip(f"{connector.name} archives {entity} records instead of deleting them")

    async def _values_for(
        self, connector: Connector, entity: EntityKind, n: int
    ) -> dict[str, Scalar]:
        values = self.values(entity, n)
        if entity.parent is not None:
            parent, _ = await self._create(connector, entity.parent, n)
            values["company_id"] = parent.id
        return values

    async def _create(
        self, connector: Connector, entity: EntityKind, n: int = 0
    ) -> tuple[Record, dict[str, Scalar]]:
        values = await self._values_for(connector, entity, n)
        return await connector.create(entity, values), values

    def _entities(self, connector: Connector) -> list[EntityKind]:
        entities = sorted(connector.entities())
        assert entities, "a connector holds at least one entity kind"
        return entities

    # -- declarations -------------------------------------------------------------------

    async def test_declares_name_capabilities_and_settings(self, connector: Connector) -> None:
        assert connector.name
        assert Capability.READ in connector.capabilities
        assert connector.describe().startswith(connector.name)
        assert issubclass(connector.settings_model, ConnectorSettings)
        for entity in self._entities(connector):
            declared = connector.capabilities_for(entity)
            assert Capability.READ in declared, entity
            if Capability.DELETES_FEED in declared:
                assert Capability.INCREMENTAL in declared, f"{entity}: a feed needs a cursor"
            if connector.can_delete(entity):
                assert Capability.DELETE in declared, f"{entity} deletable, DELETE undeclared"

    # -- single records -----------------------------------------------------------------

    @pytest.mark.parametrize("entity", _ENTITIES)
    async def test_create_then_read_returns_it(
        self, connector: Connector, entity: EntityKind
    ) -> None:
        self._offers(connector, entity, Capability.WRITE)
        created, values = await self._create(connector, entity)
        assert created.entity is entity
        assert created.id
        carried = connector.fields(entity)
        for name, value in values.items():
            if name in carried:
                assert created.get(name) == value, name
        listed = await by_id(connector, entity)
        assert listed[created.id] == created

    @pytest.mark.parametrize("entity", _ENTITIES)
    async def test_fields_are_respected(self, connector: Connector, entity: EntityKind) -> None:
        self._offers(connector, entity, Capability.WRITE)
        carried = connector.fields(entity)
        assert carried <= SCHEMAS[entity].keys()
        created, _ = await self._create(connector, entity)
        assert set(created.fields) <= carried
        listed = await by_id(connector, entity)
        assert set(listed[created.id].fields) <= carried

    @pytest.mark.parametrize("entity", _ENTITIES)
    async def test_update_changes_only_given_fields(
        self, connector: Connector, entity: EntityKind
    ) -> None:
        self._offers(connector, entity, Capability.WRITE)
        name = _text_field(entity)
        if name not in connector.fields(entity):
            pytest.skip(f"{connector.name} carries no {entity} {name}")
        created, _ = await self._create(connector, entity)
        updated = await connector.update(entity, created.id, {name: "Changed"})
        assert updated.id == created.id
        assert updated.get(name) == "Changed"
        assert {k: v for k, v in updated if k != name} == {k: v for k, v in created if k != name}
        listed = await by_id(connector, entity)
        assert listed[created.id] == updated

    async def test_update_can_clear_a_field(self, connector: Connector) -> None:
        entity = EntityKind.CLIENT
        self._offers(connector, entity, Capability.WRITE)
        if "city" not in connector.fields(entity):
            pytest.skip("no client city here")
        created, _ = await self._create(connector, entity)
        updated = await connector.update(entity, created.id, {"city": None})
        assert updated.get("city") is None
        assert (await by_id(connector, entity))[created.id].get("city") is None

    @pytest.mark.parametrize("entity", _ENTITIES)
    async def test_delete_removes_it(self, connector: Connector, entity: EntityKind) -> None:
        self._deletes(connector, entity)
        keep, _ = await self._create(connector, entity, 1)
        gone, _ = await self._create(connector, entity, 2)
        await connector.delete(entity, gone.id)
        listed = await by_id(connector, entity)
        assert gone.id not in listed
        assert keep.id in listed

    @pytest.mark.parametrize("entity", _ENTITIES)
    async def test_delete_is_refused_where_not_offered(
        self, connector: Connector, entity: EntityKind
    ) -> None:
        self._offers(connector, entity, Capability.WRITE)
        if connector.can_delete(entity):
            pytest.skip(f"{connector.name} deletes {entity} records")
        kept, _ = await self._create(connector, entity)
        with pytest.raises(ConnectorError):
            await connector.delete(entity, kept.id)
        assert kept.id in await by_id(connector, entity)

    async def test_unknown_ids_are_not_found(self, connector: Connector) -> None:
        entity = self._entities(connector)[0]
        with pytest.raises(NotFound):
            await connector.update(entity, "no-such-id", {"name": "x"})
        if connector.can_delete(entity):
            with pytest.raises(NotFound):
                await connector.delete(entity, "no-such-id")

    # -- listings -----------------------------------------------------------------------

    @pytest.mark.parametrize("entity", _ENTITIES)
    async def test_complete_listing_contains_all(
        self, connector: Connector, entity: EntityKind
    ) -> None:
        self._offers(connector, entity, Capability.WRITE)
        created = [(await self._create(connector, entity, n))[0] for n in range(1, 8)]
        records, _ = await listing(connector, entity)
        ids = {record.id for record in records}
        assert {record.id for record in created} <= ids

    @pytest.mark.parametrize("entity", _ENTITIES)
    async def test_listing_names_every_record_present(
        self, connector: Connector, entity: EntityKind
    ) -> None:
        self._offers(connector, entity, Capability.WRITE)
        for n in range(1, 4):
            await self._create(connector, entity, n)
        records, present = await listing(connector, entity)
        ids = {record.id for record in records}
        assert ids <= set(present)

    async def test_ids_are_unique(self, connector: Connector) -> None:
        ids: set[tuple[EntityKind, str]] = set()
        count = 0
        for entity in self._entities(connector):
            for n in range(1, 6):
                record, _ = await self._create(connector, entity, n)
                ids.add((entity, record.id))
                count += 1
        assert len(ids) == count

    async def test_commit_makes_writes_visible_to_a_fresh_instance(
        self, connector: Connector, connector_factory: Callable[[], Connector]
    ) -> None:
        if not self.persistent:
            pytest.skip("this connector does not persist")
        created = {}
        for entity in self._entities(connector):
            created[entity] = (await self._create(connector, entity))[0]
        await connector.commit()
        async with connector_factory() as fresh:
            for entity, record in created.items():
                assert (await by_id(fresh, entity))[record.id] == record

    @pytest.mark.parametrize("entity", _ENTITIES)
    async def test_values_read_back_are_canonical(
        self, connector: Connector, entity: EntityKind
    ) -> None:
        self._offers(connector, entity, Capability.WRITE)
        await self._create(connector, entity)
        for record in (await by_id(connector, entity)).values():
            for name, value in record:
                assert normalize_value(SCHEMAS[entity][name], value) == value

    # -- incremental reads and the deletes feed ---------------------------------------------

    @pytest.mark.parametrize("entity", _ENTITIES)
    async def test_incremental_read_has_the_changes_since_an_inclusive_cursor(
        self, connector: Connector, entity: EntityKind
    ) -> None:
        self._offers(connector, entity, Capability.INCREMENTAL, Capability.WRITE)
        name = _text_field(entity)
        if name not in connector.fields(entity):
            pytest.skip(f"{connector.name} carries no {entity} {name}")
        untouched = [(await self._create(connector, entity, n))[0] for n in range(1, 5)]
        changed, _ = await self._create(connector, entity, 5)
        start = _last_cursor(await read_all(connector, entity))
        assert start is not None, "an incremental side's complete listing gives a cursor"
        await connector.update(entity, changed.id, {name: "Changed once"})
        await connector.update(entity, changed.id, {name: "Changed twice"})
        await connector.commit()
        batches = await read_all(connector, entity, start)
        ids = _changed_ids(batches)
        assert ids.count(changed.id) == 1, "an increment lists each record once"
        [latest] = [r for batch in batches for r in batch.records if r.id == changed.id]
        assert latest.get(name) == "Changed twice"
        assert not {r.id for r in untouched} <= set(ids), "an increment is not a listing"
        # Inclusive: the last change is at the cursor the increment ends on, and the same
        # read from there brings it again (an overlap, never a gap).
        end = _last_cursor(batches)
        assert end is not None
        assert changed.id in _changed_ids(await read_all(connector, entity, end))
        assert changed.id in _changed_ids(await read_all(connector, entity, start))

    @pytest.mark.parametrize("entity", _ENTITIES)
    async def test_deletes_feed_reports_deleted_ids(
        self, connector: Connector, entity: EntityKind
    ) -> None:
        self._offers(connector, entity, Capability.DELETES_FEED)
        self._deletes(connector, entity)
        keep, _ = await self._create(connector, entity, 1)
        gone, _ = await self._create(connector, entity, 2)
        start = _last_cursor(await read_all(connector, entity))
        assert start is not None
        await connector.delete(entity, gone.id)
        await connector.commit()
        batches = await read_all(connector, entity, start)
        deleted = [rid for batch in batches for rid in batch.deleted_ids]
        assert gone.id in deleted
        assert gone.id not in _changed_ids(batches)
        assert keep.id not in deleted

    # -- batches ------------------------------------------------------------------------

    @pytest.mark.parametrize("entity", _ENTITIES)
    async def test_batch_writes_report_each_item_in_order(
        self, connector: Connector, entity: EntityKind
    ) -> None:
        self._offers(connector, entity, Capability.WRITE)
        name = _text_field(entity)
        items = [await self._values_for(connector, entity, n) for n in (1, 2, 3)]
        created = await connector.create_many(entity, items)
        assert len(created) == 3
        records = [result.record for result in created]
        assert all(result.ok for result in created)
        assert all(record is not None and record.entity is entity for record in records)
        ids = [record.id for record in records if record is not None]
        if name in connector.fields(entity):
            assert [r.get(name) for r in records if r is not None] == [v[name] for v in items]
        change = {name: "Batched"} if name in connector.fields(entity) else {}
        updated = await connector.update_many(
            entity, [(ids[0], change), ("no-such-id", change), (ids[2], change)]
        )
        assert [result.ok for result in updated] == [True, False, True]
        assert isinstance(updated[1].error, NotFound)
        assert [r.record.id for r in updated if r.record is not None] == [ids[0], ids[2]]
        listed = await by_id(connector, entity)
        for result in (updated[0], updated[2]):
            assert result.record is not None
            assert listed[result.record.id] == result.record
        if connector.can_delete(entity):
            deleted = await connector.delete_many(entity, [ids[1], "no-such-id"])
            assert len(deleted) == 2
            assert deleted[0].ok
            assert deleted[0].record is None
            # An id already gone is deleted (ok) or reported NotFound, never another error.
            assert deleted[1].ok or isinstance(deleted[1].error, NotFound)
            assert ids[1] not in await by_id(connector, entity)

    @pytest.mark.parametrize("entity", _ENTITIES)
    async def test_get_many_returns_the_records_asked_for(
        self, connector: Connector, entity: EntityKind
    ) -> None:
        self._offers(connector, entity, Capability.WRITE)
        first, second, third = [(await self._create(connector, entity, n))[0] for n in (1, 2, 3)]
        await connector.commit()
        found = await connector.get_many(entity, [third.id, "no-such-id", first.id])
        assert [record.id for record in found] == [third.id, first.id]
        listed = await by_id(connector, entity)
        assert found == [listed[third.id], listed[first.id]]
        assert second.id not in {record.id for record in found}
        assert await connector.get_many(entity, []) == []

    @pytest.mark.parametrize("entity", _ENTITIES)
    async def test_absent_names_only_the_ids_not_held(
        self, connector: Connector, entity: EntityKind
    ) -> None:
        self._offers(connector, entity, Capability.WRITE)
        first, second = [(await self._create(connector, entity, n))[0] for n in (1, 2)]
        await connector.commit()
        assert await connector.absent(entity, [second.id, "no-such-id", first.id]) == {"no-such-id"}
        assert await connector.absent(entity, [first.id]) == set()
        assert await connector.absent(entity, []) == set()
