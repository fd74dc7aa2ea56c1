"""Applying a plan as a pipeline of chunks: two chunks in flight, one store commit per
chunk, intents durable before their requests, failures and interrupts mid-pipeline."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from connectors.memory import MemoryConnector, Op
from sync.engine.job import RunResult
from sync.engine.run import SyncJob, run_sync
from sync.errors import ValidationFailed, Violation
from sync.model import EntityKind, Record, Scalar
from sync.normalize import natural_key
from sync.policy import SyncPolicy
from sync.store import Store
from sync.store.tx import StoreTx

CLIENT, CONTACT = EntityKind.CLIENT, EntityKind.CONTACT
FIELDS = {CLIENT: ("name", "country", "vat_number", "status"), CONTACT: ("company_id", "name")}
CONCURRENCY = 4
CHUNK = 32  # max(16, concurrency * 8, write_batch) steps per chunk at concurrency 4


class CountingStore:
    """The store, counting the transactions opened on it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.transactions = 0

    def transaction(self) -> AbstractContextManager[StoreTx]:
        self.transactions += 1
        return self.store.transaction()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class Flowtly(MemoryConnector):
    """A Flowtly side that sees each create as it is sent."""

    def __init__(self, on_create: Callable[[Mapping[str, Scalar]], None]) -> None:
        super().__init__(entities=(CLIENT, CONTACT), fields=FIELDS, id_prefix="f")
        self.on_create = on_create

    async def create(self, entity: EntityKind, values: Mapping[str, Scalar]) -> Record:
        self.on_create(values)
        return await super().create(entity, values)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CountingStore]:
    opened = Store.open(f"sqlite:///{tmp_path}/state.db")
    yield CountingStore(opened)
    opened.close()


def _crm(clients: int, contacts_each: int = 0) -> MemoryConnector:
    crm = MemoryConnector(entities=(CLIENT, CONTACT), fields=FIELDS, id_prefix="c")
    for n in range(clients):
        values: dict[str, Scalar] = {
            "name": f"Co {n}",
            "country": "PL",
            "vat_number": f"PL{n:010d}",
            "status": "active",
        }
        crm.put(Record(CLIENT, f"c{n}", values))
        for k in range(contacts_each):
            crm.put(Record(CONTACT, f"p{n}-{k}", {"company_id": f"c{n}", "name": f"P {n}.{k}"}))
    return crm


def _run(
    crm: MemoryConnector,
    flowtly: MemoryConnector,
    store: CountingStore,
    stopping: Callable[[], bool] | None = None,
) -> RunResult:
    job = SyncJob(
        "t",
        crm,
        flowtly,
        store,
        SyncPolicy(),
        concurrency=CONCURRENCY,  # type: ignore[arg-type]
    )
    return asyncio.run(run_sync(job, stopping=stopping))


def _nothing(values: Mapping[str, Scalar]) -> None:
    return None


def test_each_chunk_costs_one_store_commit(tmp_path: Path) -> None:
    counts = []
    for chunks in (2, 6):
        with _fresh(tmp_path / f"{chunks}") as fresh:
            result = _run(_crm(CHUNK * chunks), Flowtly(_nothing), fresh)
            assert result.clean
            assert fresh.link_count("t", CLIENT) == CHUNK * chunks
            counts.append(fresh.transactions)
    # Four more chunks, four more commits: a chunk's links are stored in the commit that
    # makes a later chunk's intents durable, not in one of their own.
    assert counts[1] - counts[0] == 4


def test_every_create_is_sent_after_its_intent_is_durable(store: CountingStore) -> None:
    clients = CHUNK * 3 + 5
    vat_to_id = {f"PL{n:010d}": f"c{n}" for n in range(clients)}
    sent: list[str] = []

    def check(values: Mapping[str, Scalar]) -> None:
        source = vat_to_id[str(values["vat_number"])]
        pending = {row.source_id: row.natural_key for row in store.pending_intents("t")}
        assert source in pending, f"{source} was sent before its intent was committed"
        # The key a later run finds a landed create by, derived from the step's values.
        assert pending[source] == natural_key(values, CLIENT) is not None
        sent.append(source)

    result = _run(_crm(clients), Flowtly(check), store)
    assert result.clean
    assert sorted(sent) == sorted(vat_to_id.values())
    assert store.pending_intents("t") == []


def test_contacts_are_written_only_once_their_company_has_its_flowtly_id(
    store: CountingStore,
) -> None:
    flowtly_ids: set[str] = set()
    orphans: list[object] = []

    def check(values: Mapping[str, Scalar]) -> None:
        if "company_id" in values and values["company_id"] not in flowtly_ids:
            orphans.append(values["company_id"])

    flowtly = Flowtly(check)
    original = flowtly.create

    async def create(entity: EntityKind, values: Mapping[str, Scalar]) -> Record:
        record = await original(entity, values)
        if entity is CLIENT:
            flowtly_ids.add(record.id)
        return record

    flowtly.create = create  # type: ignore[method-assign]
    result = _run(_crm(CHUNK * 2 + 3, contacts_each=2), flowtly, store)
    assert result.clean
    assert store.link_count("t", CONTACT) == (CHUNK * 2 + 3) * 2
    assert orphans == []


def test_a_refusal_in_one_chunk_is_reported_and_the_other_chunks_are_linked(
    store: CountingStore,
) -> None:
    refused = f"PL{CHUNK + 7:010d}"  # in the second chunk

    def refuse(values: Mapping[str, Scalar]) -> None:
        if values["vat_number"] == refused:
            raise ValidationFailed("422", violations=(Violation("vatNumber", "bad"),))

    result = _run(_crm(CHUNK * 3), Flowtly(refuse), store)
    assert [(e.record_id, e.field) for e in result.errors] == [(f"c{CHUNK + 7}", "vatNumber")]
    assert store.link_count("t", CLIENT) == CHUNK * 3 - 1
    assert store.pending_intents("t") == []  # the refused create's intent is settled too


def test_an_interrupt_mid_pipeline_stores_what_was_in_flight_and_sends_nothing_more(
    store: CountingStore,
) -> None:
    sent: list[Mapping[str, Scalar]] = []
    crm = _crm(CHUNK * 5)
    result = _run(crm, Flowtly(sent.append), store, stopping=lambda: bool(sent))
    assert result.interrupted
    # The two chunks already under way finish and are stored; no later one is sent.
    assert len(sent) == CHUNK * 2
    assert store.link_count("t", CLIENT) == CHUNK * 2
    assert store.pending_intents("t") == []


@contextmanager
def _fresh(folder: Path) -> Iterator[CountingStore]:
    folder.mkdir()
    opened = Store.open(f"sqlite:///{folder}/state.db")
    try:
        yield CountingStore(opened)
    finally:
        opened.close()


def test_a_step_whose_first_write_is_refused_sends_none_after_it(
    store: CountingStore,
) -> None:
    crm = _crm(2)
    flowtly = Flowtly(_nothing)
    assert _run(crm, flowtly, store).clean
    twin = {r.fields["vat_number"]: r.id for r in flowtly.records(CLIENT)}["PL0000000000"]
    # Each side edits a different field: the merge writes to Flowtly first, then the CRM.
    crm.put(Record(CLIENT, "c0", {**crm.records(CLIENT)[0].fields, "name": "Co Zero"}))
    flowtly.put(Record(CLIENT, twin, {**flowtly.get(CLIENT, twin).fields, "country": "DE"}))  # type: ignore[union-attr]
    flowtly.fail_next(
        Op.UPDATE, CLIENT, ValidationFailed("422", violations=(Violation("name", "too long"),))
    )
    crm.reset_calls()
    result = _run(crm, flowtly, store)
    assert [(e.record_id, e.field) for e in result.errors] == [("c0", "name")]
    # The CRM keeps its own values: its half of a merge Flowtly refused is not written.
    assert [call for call in crm.calls if call.op is Op.UPDATE] == []
    assert crm.get(CLIENT, "c0").fields["country"] == "PL"  # type: ignore[union-attr]
    outcomes = [(e.target, e.outcome) for e in store.run_events(result.run_id)]
    assert ("flowtly", "error") in outcomes


def test_a_chunk_is_committed_while_the_loop_sends_the_chunk_before_it(
    tmp_path: Path,
) -> None:
    sent = threading.Event()
    off_loop: list[bool] = []

    class WaitingStore(CountingStore):
        """Holds the commit of the second chunk's intents until a request of the first
        goes out meanwhile: only a commit made off the event loop lets the loop send
        while it lasts (on the loop, it would wait the whole timeout and fail)."""

        @contextmanager
        def transaction(self) -> Iterator[StoreTx]:
            if threading.current_thread() is not threading.main_thread():
                off_loop.append(len(off_loop) == 1 and sent.wait(timeout=30))
            with super().transaction() as tx:
                yield tx

    def note(values: Mapping[str, Scalar]) -> None:
        sent.set()

    with _fresh(tmp_path / "s") as fresh:
        store = WaitingStore(fresh.store)
        result = _run(_crm(CHUNK * 4), Flowtly(note), store)
        assert result.clean
        assert store.link_count("t", CLIENT) == CHUNK * 4
    # The first commit (the first chunk's intents) has nothing in flight beside it; the
    # second overlaps the sending of the first chunk.
    assert off_loop[:2] == [False, True]
