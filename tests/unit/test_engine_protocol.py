"""The engine over the connector protocol's newer parts: batch writes with per-item results,
capabilities per entity, records that change kind, expired cursors, periodic complete
listings, and pending creates resolved by fetching their source."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import Capability, ChangeBatch, Cursor, ItemResult
from connectors.memory import IncrementalMemoryConnector, ListingFault, MemoryConnector
from sync.config import load_settings
from sync.engine.apply import CrashPoint
from sync.engine.detect import LEFT
from sync.engine.job import LAST_FULL_SCAN
from sync.engine.run import SyncJob, run_sync
from sync.errors import (
    ConfigError,
    ConnectorError,
    CursorExpired,
    TransientError,
    ValidationFailed,
    Violation,
)
from sync.model import EntityKind, Record, Scalar, Side
from sync.policy import SyncPolicy
from sync.store import Store
from sync.wiring import open_job
from tests.clocks import SettableClock

CLIENT, CONTACT, SUPPLIER = EntityKind.CLIENT, EntityKind.CONTACT, EntityKind.COUNTERPARTY
COMPANY = ("name", "country", "vat_number", "city", "status")
FIELDS = {CLIENT: COMPANY, SUPPLIER: COMPANY, CONTACT: ("company_id", "name", "email")}
ENTITIES = (CLIENT, SUPPLIER, CONTACT)
START = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path):
    opened = Store.open(f"sqlite:///{tmp_path}/state.db")
    yield opened
    opened.close()


def flowtly_side(cls: type[MemoryConnector] = MemoryConnector, **options: object):
    return cls(
        entities=ENTITIES,
        fields=FIELDS,
        id_prefix="f",
        deletable=frozenset({CONTACT, SUPPLIER}),
        archive_status="archived",
        **options,  # type: ignore[arg-type]
    )


def crm_side(cls: type[MemoryConnector] = MemoryConnector, **options: object):
    return cls(entities=ENTITIES, fields=FIELDS, id_prefix="c", **options)  # type: ignore[arg-type]


def company(entity: EntityKind, rid: str, vat: str, **extra: object) -> Record:
    values = {"name": f"Co {vat}", "country": "PL", "vat_number": vat, "status": "active"}
    return Record(entity, rid, {**values, **extra})  # type: ignore[arg-type]


def run(crm, flowtly, store, *, clock=None, crash=None, dry_run=False, full_scan=None):
    job = SyncJob(
        "t",
        crm,
        flowtly,
        store,
        # These tests delete an entity's only records on purpose; the guard has its own.
        SyncPolicy(allow_mass_delete=True),
        concurrency=4,
        clock=clock or SettableClock(START),
        full_scan=full_scan,
    )

    def hook(point: str) -> None:
        if point == crash:
            raise CrashPoint(point)

    return asyncio.run(run_sync(job, dry_run=dry_run, crash=hook if crash else None))


# -- batch writes -------------------------------------------------------------------------


class BatchMemory(MemoryConnector):
    """A side with a batch API: one call per batch, items refused one by one."""

    def __init__(self, refuse: str | None = None, flaky: str | None = None, **options: object):
        super().__init__(**options)  # type: ignore[arg-type]
        self.batches: list[tuple[str, int]] = []
        self.refuse, self.flaky = refuse, flaky

    async def create_many(
        self,
        entity: EntityKind,
        items: Sequence[Mapping[str, Scalar]],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        self.batches.append(("create", len(items)))
        results = []
        for values in items:
            if values.get("vat_number") == self.refuse:
                refusal = ValidationFailed("422", violations=(Violation("vatNumber", "bad"),))
                results.append(ItemResult(error=refusal))
            elif values.get("vat_number") == self.flaky:
                self.flaky = None  # fails once, before taking effect
                results.append(ItemResult(error=TransientError("503")))
            else:
                results.append(ItemResult(record=await self.create(entity, values)))
        return results

    async def update_many(
        self,
        entity: EntityKind,
        items: Sequence[tuple[str, Mapping[str, Scalar]]],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        self.batches.append(("update", len(items)))
        return [
            ItemResult(record=await self.update(entity, rid, changes)) for rid, changes in items
        ]


def test_a_batch_api_gets_one_call_per_chunk_and_item_failures_stay_per_item(store):
    crm = crm_side()
    flowtly = BatchMemory(
        refuse="PL3", flaky="PL5", entities=ENTITIES, fields=FIELDS, id_prefix="f"
    )
    for n in range(40):
        crm.put(company(CLIENT, f"C{n}", f"PL{n}"))
    result = run(crm, flowtly, store)
    # 40 creates fit in one chunk (concurrency 4 -> chunks of 32: two batches); the flaky
    # item is re-planned by another pass, as a single failure is.
    assert flowtly.batches == [("create", 32), ("create", 8), ("create", 1)]
    assert sorted(r.get("vat_number") for r in flowtly.records(CLIENT)) == sorted(
        f"PL{n}" for n in range(40) if n != 3
    )
    assert [(e.record_id, e.field) for e in result.errors] == [("C3", "vatNumber")]
    [rejection] = store.rejections("t")
    assert (rejection.side, rejection.record_id) == (Side.CRM, "C3")
    assert store.link_count("t", CLIENT) == 39
    for n in (1, 2):
        crm.put(company(CLIENT, f"C{n}", f"PL{n}", city="Lodz"))
    flowtly.batches.clear()
    run(crm, flowtly, store)
    assert flowtly.batches == [("update", 2)]


def test_a_side_with_larger_batches_gets_chunks_that_fill_them(store):
    class Wide(BatchMemory):
        write_batch = 100  # e.g. HubSpot's batch endpoints

    crm = crm_side()
    flowtly = Wide(entities=ENTITIES, fields=FIELDS, id_prefix="f")
    for n in range(150):
        crm.put(company(CLIENT, f"C{n}", f"PL{n}"))
    run(crm, flowtly, store)
    # concurrency 4 alone would give chunks of 32; the side's batch size wins.
    assert flowtly.batches == [("create", 100), ("create", 50)]


def test_a_batch_that_fails_as_a_whole_fails_each_of_its_items(store):
    class Down(MemoryConnector):
        async def create_many(self, entity, items, *, limit=None):
            raise TransientError("503 for the whole batch")

    crm, flowtly = crm_side(), Down(entities=ENTITIES, fields=FIELDS, id_prefix="f")
    crm.put(company(CLIENT, "C1", "PL1"))
    crm.put(company(CLIENT, "C2", "PL2"))
    result = run(crm, flowtly, store)
    assert sorted(e.record_id for e in result.errors) == ["C1", "C2"]
    assert all("503 for the whole batch" in e.reason for e in result.errors)
    assert store.link_count("t", CLIENT) == 0


def test_default_batches_return_one_result_per_item_in_order():
    side = MemoryConnector(entities=ENTITIES, fields=FIELDS)

    async def go():
        created = await side.create_many(
            CLIENT, [{"name": "A"}, {"name": "B", "country": "Narnia"}, {"name": "C"}]
        )
        assert [r.ok for r in created] == [True, False, True]
        assert isinstance(created[1].error, ValidationFailed)
        ids = [r.record.id for r in created if r.record is not None]
        updated = await side.update_many(CLIENT, [(ids[1], {"city": "X"}), ("nope", {})])
        assert updated[0].record is not None
        assert updated[0].record.get("city") == "X"
        assert not updated[1].ok
        deleted = await side.delete_many(CLIENT, ["nope", ids[0]])
        assert [r.ok for r in deleted] == [False, True]
        assert [r.id for r in await side.get_many(CLIENT, [ids[1], "nope", ids[0]])] == [ids[1]]

    asyncio.run(go())


# -- capabilities per entity ----------------------------------------------------------------


class IncrementalClientsOnly(IncrementalMemoryConnector):
    reads: list[tuple[EntityKind, bool]]

    def capabilities_for(self, entity: EntityKind) -> frozenset[Capability]:
        if entity is CLIENT:
            return self.capabilities
        return self.capabilities - {Capability.INCREMENTAL, Capability.DELETE}

    async def read(self, entity, since=None):
        self.reads.append((entity, since is not None))
        async for batch in super().read(entity, since):
            yield batch


def test_capabilities_are_asked_per_entity(store):
    crm = crm_side(IncrementalClientsOnly)
    crm.reads = []
    flowtly = flowtly_side()
    flowtly.put(company(SUPPLIER, "F1", "PL1"))
    crm.put(company(CLIENT, "C1", "PL2"))
    assert run(crm, flowtly, store).clean
    crm.reads.clear()
    flowtly.remove(SUPPLIER, "F1")
    run(crm, flowtly, store)
    assert crm.reads == [(CLIENT, True), (SUPPLIER, False), (CONTACT, False)]
    # Suppliers cannot be deleted in this CRM: the one deleted in Flowtly is archived.
    [supplier] = crm.records(SUPPLIER)
    assert supplier.get("status") == "archived"


# -- records that change kind -------------------------------------------------------------


@pytest.mark.parametrize("cls", [MemoryConnector, IncrementalMemoryConnector])
def test_a_client_that_became_a_supplier_is_neither_archived_nor_created_back(store, cls):
    crm, flowtly = crm_side(cls), flowtly_side()
    crm.put(company(CLIENT, "C1", "PL1"))
    assert run(crm, flowtly, store).clean
    [fl_client] = flowtly.records(CLIENT)
    crm.move("C1", CLIENT, SUPPLIER)
    moved = run(crm, flowtly, store)
    assert moved.clean
    assert [(w.record_id, "kind changed" in w.reason) for w in moved.warnings] == [("C1", True)]
    assert flowtly.get(CLIENT, fl_client.id) == fl_client  # not archived
    [fl_supplier] = flowtly.records(SUPPLIER)
    assert fl_supplier.get("vat_number") == "PL1"
    assert store.link_index("t", CLIENT)["C1"].crm_fp == LEFT
    # The Flowtly client rests: edited there, it is still not created back in the CRM.
    flowtly.put(fl_client.replace(city="Gdansk"))
    quiet = run(crm, flowtly, store)
    assert (quiet.operations, quiet.warnings) == ([], [])
    assert crm.records(CLIENT) == []
    # Back to a client: it merges with its old link again (the Flowtly edit included).
    crm.move("C1", SUPPLIER, CLIENT)
    back = run(crm, flowtly, store)
    assert back.clean
    assert crm.get(CLIENT, "C1").get("city") == "Gdansk"  # type: ignore[union-attr]
    assert store.link_index("t", CLIENT)["C1"].crm_fp != LEFT
    assert run(crm, flowtly, store, dry_run=True).operations == []


def test_a_detached_record_deleted_on_the_other_side_only_loses_its_link(store):
    crm, flowtly = crm_side(), flowtly_side()
    crm.put(company(SUPPLIER, "C1", "PL1"))
    run(crm, flowtly, store)
    [fl_supplier] = flowtly.records(SUPPLIER)
    crm.move("C1", SUPPLIER, CLIENT)
    run(crm, flowtly, store)
    flowtly.remove(SUPPLIER, fl_supplier.id)
    crm.reset_calls()
    result = run(crm, flowtly, store)
    assert [str(op.action) for op in result.operations] == []
    assert crm.calls == []  # the CRM record (a client now) is not deleted
    assert "C1" not in store.link_index("t", SUPPLIER)


# -- cursors: expiry, periodic complete listings --------------------------------------------


def test_an_expired_cursor_is_dropped_and_the_entity_read_completely(store):
    crm, flowtly = crm_side(IncrementalMemoryConnector, deletes_feed=()), flowtly_side()
    crm.put(company(CLIENT, "C1", "PL1"))
    crm.put(company(CLIENT, "C2", "PL2"))
    run(crm, flowtly, store)
    old = store.get_cursor("t", Side.CRM, CLIENT)
    crm.put(company(CLIENT, "C1", "PL1", city="Poznan"))
    crm.remove(CLIENT, "C2")
    crm.forget_history()
    result = run(crm, flowtly, store)
    # Same run: the edit is synced, and the complete listing shows the delete.
    assert sorted(str(op.action) for op in result.operations) == ["archive", "update"]
    assert store.get_cursor("t", Side.CRM, CLIENT) != old


def test_a_complete_listing_comes_after_full_scan_and_finds_deletes(store):
    clock = SettableClock(START)
    crm, flowtly = crm_side(IncrementalMemoryConnector, deletes_feed=()), flowtly_side()
    crm.put(company(CLIENT, "C1", "PL1"))
    crm.put(company(CLIENT, "C2", "PL2"))
    full_scan = timedelta(hours=24)
    run(crm, flowtly, store, clock=clock, full_scan=full_scan)
    saved = store.get_cursor("t", Side.CRM, CLIENT)
    assert saved is not None
    assert saved[LAST_FULL_SCAN] == START.isoformat()
    crm.remove(CLIENT, "C2")
    clock.now = START + timedelta(hours=23)
    # Only changes are read, and a record missing from them is not taken for deleted.
    assert run(crm, flowtly, store, clock=clock, full_scan=full_scan).operations == []
    assert store.get_cursor("t", Side.CRM, CLIENT)[LAST_FULL_SCAN] == START.isoformat()  # type: ignore[index]
    clock.now = START + timedelta(hours=24)
    result = run(crm, flowtly, store, clock=clock, full_scan=full_scan)
    assert [str(op.action) for op in result.operations] == ["archive"]
    assert store.get_cursor("t", Side.CRM, CLIENT)[LAST_FULL_SCAN] == clock.now.isoformat()  # type: ignore[index]


def test_a_cursor_stored_before_full_scans_existed_brings_a_complete_listing(store):
    crm, flowtly = crm_side(IncrementalMemoryConnector, deletes_feed=()), flowtly_side()
    crm.put(company(CLIENT, "C1", "PL1"))
    run(crm, flowtly, store)
    with store.transaction() as tx:
        tx.set_cursor("t", Side.CRM, CLIENT, Cursor(START, "C1").to_json())
    crm.remove(CLIENT, "C1")
    result = run(crm, flowtly, store, full_scan=timedelta(hours=24))
    assert [str(op.action) for op in result.operations] == ["archive"]


# -- pending creates resolved by fetching their source ---------------------------------------


async def _high_water(side: MemoryConnector, entity: EntityKind) -> Cursor:
    batches: list[ChangeBatch] = [batch async for batch in side.read(entity)]
    assert batches[0].cursor is not None
    return batches[0].cursor


def test_a_pending_create_is_resolved_by_fetching_a_source_the_cursor_passed(store):
    clock = SettableClock(START)
    crm, flowtly = crm_side(IncrementalMemoryConnector), flowtly_side()
    crm.put(company(CLIENT, "C0", "PL0"))
    run(crm, flowtly, store, clock=clock)
    crm.put(company(CLIENT, "C1", "PL1"))
    with pytest.raises(CrashPoint):
        run(crm, flowtly, store, clock=clock, crash="after_write_flowtly")
    assert len(flowtly.records(CLIENT)) == 2  # C1's create landed; its link was not stored
    # Another process moved the cursor past C1 (C2 changed since): C1 is not read again.
    crm.put(company(CLIENT, "C2", "PL2"))
    cursor = asyncio.run(_high_water(crm, CLIENT))
    with store.transaction() as tx:
        tx.set_cursor(
            "t", Side.CRM, CLIENT, {**cursor.to_json(), LAST_FULL_SCAN: START.isoformat()}
        )
    result = run(crm, flowtly, store, clock=clock, full_scan=timedelta(hours=24))
    assert result.clean
    assert sorted(r.get("vat_number") for r in crm.records(CLIENT)) == ["PL0", "PL1", "PL2"]
    assert sorted(r.get("vat_number") for r in flowtly.records(CLIENT)) == ["PL0", "PL1", "PL2"]
    assert sorted(store.link_index("t", CLIENT)) == ["C0", "C1", "C2"]
    assert store.pending_intents("t") == []


def test_get_many_fetches_through_fetch_when_a_side_has_it():
    class Fetching(MemoryConnector):
        fetched: list[str]

        async def fetch(self, entity: EntityKind, record_id: str) -> Record | None:
            self.fetched.append(record_id)
            return self.get(entity, record_id)

        async def read(self, entity, since=None):
            raise ConnectorError("no listing wanted")
            yield  # pragma: no cover - makes this an async generator

    side = Fetching(entities=ENTITIES, fields=FIELDS)
    side.fetched = []
    side.put(company(CLIENT, "m1", "PL1"))
    side.put(company(CLIENT, "m2", "PL2"))
    found = asyncio.run(side.get_many(CLIENT, ["m2", "x", "m1", "m2"]))
    assert [r.id for r in found] == ["m2", "m1"]
    assert sorted(side.fetched) == ["m1", "m2", "x"]


def test_absent_from_a_listing_counts_only_what_a_complete_listing_proves():
    side = MemoryConnector(entities=ENTITIES, fields=FIELDS, batch_size=1)
    side.put(company(CLIENT, "m1", "PL1"))
    side.put(company(CLIENT, "m2", "PL2"))
    side.move("m2", CLIENT, SUPPLIER)
    assert asyncio.run(side.absent(CLIENT, ["m1", "x"])) == {"x"}
    # A company now of another kind still exists: it is not taken for deleted.
    assert asyncio.run(side.absent(CLIENT, ["m2"])) == set()
    # Its last page arrived empty: what it lacks may be there; nothing is called absent.
    side.put(company(CLIENT, "m3", "PL3"))
    side.garble_listing(CLIENT, ListingFault.DROP_PAGE)
    assert asyncio.run(side.absent(CLIENT, ["m3"])) is None
    # Ids seen before the broken page are held whatever comes after them.
    assert asyncio.run(side.absent(CLIENT, ["m1"])) == set()


def test_absent_reads_by_id_when_a_side_fetches():
    class Fetching(MemoryConnector):
        async def fetch(self, entity: EntityKind, record_id: str) -> Record | None:
            return self.get(entity, record_id)

        async def read(self, entity, since=None):
            raise ConnectorError("no listing wanted")
            yield  # pragma: no cover - makes this an async generator

    side = Fetching(entities=ENTITIES, fields=FIELDS)
    side.put(company(CLIENT, "m1", "PL1"))
    assert asyncio.run(side.absent(CLIENT, ["m1", "x"])) == {"x"}


def test_memory_reads_report_moves_and_expired_cursors():
    side = IncrementalMemoryConnector(entities=ENTITIES, fields=FIELDS)

    async def go():
        side.put(company(CLIENT, "m1", "PL1"))
        cursor = await _high_water(side, CLIENT)
        side.move("m1", CLIENT, SUPPLIER)
        [changes] = [b async for b in side.read(CLIENT, cursor)]
        assert list(changes.left_ids) == ["m1"]
        assert list(changes.records) == []
        [complete] = [b async for b in side.read(CLIENT)]
        assert list(complete.left_ids) == ["m1"]
        side.forget_history()
        with pytest.raises(CursorExpired):
            [b async for b in side.read(CLIENT, cursor)]

    asyncio.run(go())


def test_memory_without_a_deletes_feed_declares_none():
    side = IncrementalMemoryConnector(deletes_feed={CLIENT})
    assert Capability.DELETES_FEED in side.capabilities_for(CLIENT)
    assert Capability.DELETES_FEED not in side.capabilities_for(CONTACT)
    assert Capability.INCREMENTAL in side.capabilities_for(CONTACT)


# -- [sync] full_scan and concurrency --------------------------------------------------------


def _settings(tmp_path: Path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(
        "[flowtly]\nbase_url = 'sandbox://:memory:'\nconcurrency = 3\n"
        "[crm]\ntype = 'memory'\n" + text,
        encoding="utf-8",
    )
    return load_settings(path)


def test_sync_concurrency_and_full_scan_reach_the_job(tmp_path, store):
    settings = _settings(tmp_path, "[sync]\nconcurrency = 5\nfull_scan = '6h'\n")

    async def go() -> SyncJob:
        async with open_job(settings, store) as job:
            return job

    job = asyncio.run(go())
    # [flowtly] concurrency bounds Flowtly's requests; the engine's writes have their own.
    assert (job.concurrency, job.full_scan) == (5, timedelta(hours=6))
    defaults = _settings(tmp_path, "")
    assert (defaults.sync.concurrency, defaults.sync.full_scan_seconds()) == (8, 24 * 3600)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[sync]\nconcurrency = 0\n", "sync.concurrency"),
        ("[sync]\nconcurrency = 65\n", "sync.concurrency"),
        ("[sync]\nfull_scan = 'daily'\n", "sync.full_scan"),
    ],
)
def test_sync_settings_errors_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as caught:
        _settings(tmp_path, text)
    assert caught.value.key == key
