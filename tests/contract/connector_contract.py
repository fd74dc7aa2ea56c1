"""The contract every connector honours, as a base class of tests.

A connector's test module subclasses `ConnectorContract`, implements `make` (and `reopen`
when its writes persist), and inherits every test. Values are canonical; each test only
relies on the fields the connector says it carries (`Connector.fields`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from connectors.base import Capability, Connector
from sync.errors import NotFound
from sync.model import SCHEMAS, EntityKind, Record, Scalar
from sync.normalize import normalize_value

__all__ = ["ConnectorContract", "sample_values"]

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


def sample_values(entity: EntityKind, n: int = 0) -> dict[str, Scalar]:
    """Canonical values for ``entity``, made distinct by ``n``."""
    values = dict(_SAMPLES[entity])
    for name in ("name", "body"):
        if name in values and n:
            values[name] = f"{values[name]} #{n}"
    if "email" in values and n:
        values["email"] = f"jan{n}@acme.example"
    return values


async def listing(connector: Connector, entity: EntityKind) -> tuple[list[Record], list[str]]:
    """Every record of a complete read, and every present id, over all batches."""
    records: list[Record] = []
    present: list[str] = []
    async for batch in connector.read(entity):
        assert batch.entity is entity
        records.extend(batch.records)
        present.extend(batch.present_ids)
    return records, present


async def by_id(connector: Connector, entity: EntityKind) -> dict[str, Record]:
    records, _ = await listing(connector, entity)
    ids = [record.id for record in records]
    assert len(ids) == len(set(ids)), "a complete listing repeats an id"
    return {record.id: record for record in records}


class ConnectorContract:
    """Base class of a connector's contract tests (not collected: no ``Test`` prefix)."""

    def make(self, tmp_path: Path) -> Connector:
        """A fresh, empty connector."""
        raise AssertionError("subclasses implement make()")

    def reopen(self, connector: Connector) -> Connector | None:
        """A new instance over the same storage, or None when writes do not persist."""
        return None

    @pytest.fixture
    async def connector(self, tmp_path: Path) -> AsyncIterator[Connector]:
        connector = self.make(tmp_path)
        async with connector:
            yield connector

    async def _create(
        self, connector: Connector, entity: EntityKind, n: int = 0
    ) -> tuple[Record, dict[str, Scalar]]:
        values = sample_values(entity, n)
        if entity.parent is not None:
            parent, _ = await self._create(connector, entity.parent, n)
            values["company_id"] = parent.id
        return await connector.create(entity, values), values

    def _entities(self, connector: Connector) -> list[EntityKind]:
        entities = sorted(connector.entities())
        assert entities, "a connector holds at least one entity kind"
        return entities

    # -- the contract -----------------------------------------------------------------

    def test_declares_name_capabilities_and_settings(self, connector: Connector) -> None:
        assert connector.name
        assert Capability.READ in connector.capabilities
        assert connector.describe().startswith(connector.name)

    async def test_create_then_read_returns_it(self, connector: Connector) -> None:
        for entity in self._entities(connector):
            created, values = await self._create(connector, entity)
            assert created.entity is entity
            assert created.id
            carried = connector.fields(entity)
            for name, value in values.items():
                if name in carried:
                    assert created.get(name) == value, name
            listed = await by_id(connector, entity)
            assert listed[created.id] == created

    async def test_fields_are_respected(self, connector: Connector) -> None:
        for entity in self._entities(connector):
            carried = connector.fields(entity)
            assert carried <= SCHEMAS[entity].keys()
            created, _ = await self._create(connector, entity)
            assert set(created.fields) <= carried
            listed = await by_id(connector, entity)
            assert set(listed[created.id].fields) <= carried

    async def test_update_changes_only_given_fields(self, connector: Connector) -> None:
        if Capability.WRITE not in connector.capabilities:
            pytest.skip("read-only connector")
        for entity in self._entities(connector):
            created, _ = await self._create(connector, entity)
            name = "name" if entity is not EntityKind.NOTE else "body"
            if name not in connector.fields(entity):
                continue
            updated = await connector.update(entity, created.id, {name: "Changed"})
            assert updated.id == created.id
            assert updated.get(name) == "Changed"
            assert {k: v for k, v in updated if k != name} == {
                k: v for k, v in created if k != name
            }
            listed = await by_id(connector, entity)
            assert listed[created.id] == updated

    async def test_update_can_clear_a_field(self, connector: Connector) -> None:
        entity = EntityKind.CLIENT
        if entity not in connector.entities() or "city" not in connector.fields(entity):
            pytest.skip("no client city here")
        created, _ = await self._create(connector, entity)
        updated = await connector.update(entity, created.id, {"city": None})
        assert updated.get("city") is None
        assert (await by_id(connector, entity))[created.id].get("city") is None

    async def test_delete_removes_it(self, connector: Connector) -> None:
        for entity in self._entities(connector):
            if not connector.can_delete(entity):
                continue
            keep, _ = await self._create(connector, entity, 1)
            gone, _ = await self._create(connector, entity, 2)
            await connector.delete(entity, gone.id)
            listed = await by_id(connector, entity)
            assert gone.id not in listed
            assert keep.id in listed

    async def test_unknown_ids_are_not_found(self, connector: Connector) -> None:
        entity = self._entities(connector)[0]
        with pytest.raises(NotFound):
            await connector.update(entity, "no-such-id", {"name": "x"})
        if connector.can_delete(entity):
            with pytest.raises(NotFound):
                await connector.delete(entity, "no-such-id")

    async def test_complete_listing_contains_all(self, connector: Connector) -> None:
        for entity in self._entities(connector):
            created = [(await self._create(connector, entity, n))[0] for n in range(1, 8)]
            records, present = await listing(connector, entity)
            ids = {record.id for record in records}
            assert {record.id for record in created} <= ids
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
        self, connector: Connector
    ) -> None:
        created = {}
        for entity in self._entities(connector):
            created[entity] = (await self._create(connector, entity))[0]
        await connector.commit()
        fresh = self.reopen(connector)
        if fresh is None:
            pytest.skip("this connector does not persist")
        async with fresh:
            for entity, record in created.items():
                assert (await by_id(fresh, entity))[record.id] == record

    async def test_values_read_back_are_canonical(self, connector: Connector) -> None:
        for entity in self._entities(connector):
            await self._create(connector, entity)
            for record in (await by_id(connector, entity)).values():
                for name, value in record:
                    assert normalize_value(SCHEMAS[entity][name], value) == value
