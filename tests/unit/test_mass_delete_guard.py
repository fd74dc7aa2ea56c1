"""The mass-delete guard: small entities, empty listings, clients and suppliers together."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.memory import MemoryConnector
from sync.engine.detect import SideView
from sync.engine.guard import DeleteCount
from sync.engine.inputs import PlanInput
from sync.engine.ops import Action
from sync.engine.plan import plan_entity
from sync.engine.run import RunResult, SyncJob, run_sync
from sync.model import EntityKind, Record, Side
from sync.normalize import fingerprint
from sync.policy import SyncPolicy
from sync.store import Store

CLIENT, SUPPLIER = EntityKind.CLIENT, EntityKind.COUNTERPARTY
NAMES = frozenset({"name", "country", "vat_number"})


@dataclass(frozen=True)
class Link:
    crm_id: str
    flowtly_id: str
    crm_fp: str = "fp-crm"
    flowtly_fp: str = "fp-fl"


def links(count: int) -> dict[str, Link]:
    return {f"S{i}": Link(f"S{i}", str(i)) for i in range(count)}


def side(which: Side, *, deleted=(), seen=0, complete=True, new=(), entity=SUPPLIER) -> SideView:
    view = SideView(which, entity, complete=complete, seen=seen)
    view.deleted = set(deleted)
    for record in new:
        view.new[record.id] = record
        view.fps[record.id] = fingerprint(entity, record.fields, NAMES)
    return view


def plan(crm: SideView, flowtly: SideView, linked: dict[str, Link], **extra):
    policy = extra.pop("policy", SyncPolicy())
    return plan_entity(
        PlanInput(SUPPLIER, NAMES, linked, len(linked), {}, crm, flowtly, policy, **extra)
    )


def deletes(result) -> list[str]:
    return sorted(s.crm_id for s in result.steps if s.unlink)


def test_six_suppliers_all_missing_are_refused_with_the_way_out():
    linked = links(6)
    result = plan(side(Side.CRM, deleted=set(linked)), side(Side.FLOWTLY, seen=6), linked)
    assert result.steps == ()
    [error] = result.errors
    assert (error.entity, error.side, error.record_id) == ("counterparty", "crm", "*")
    assert "mass-delete guard: 6 of 6 linked counterparty records" in error.reason
    assert "lists none" in error.reason
    assert "--allow-mass-delete" in error.reason


def test_a_single_linked_record_gone_from_an_empty_listing_is_refused():
    linked = links(1)
    result = plan(side(Side.FLOWTLY, deleted={"0"}), side(Side.CRM, seen=1), linked)
    assert result.steps == ()
    assert "1 of 1" in result.errors[0].reason


def test_more_than_half_of_a_small_entity_is_refused_a_third_is_not():
    linked = links(6)
    refused = plan(
        side(Side.CRM, deleted={"S0", "S1", "S2", "S3"}, seen=2), side(Side.FLOWTLY), linked
    )
    assert refused.steps == ()
    assert "4 of 6" in refused.errors[0].reason
    allowed = plan(side(Side.CRM, deleted={"S0", "S1"}, seen=4), side(Side.FLOWTLY), linked)
    assert deletes(allowed) == ["S0", "S1"]
    assert allowed.errors == ()


def test_suppliers_are_counted_together_with_the_clients_of_the_same_file():
    linked = links(6)
    crm = side(Side.CRM, deleted={"S0", "S1"}, seen=4)
    alone = plan(crm, side(Side.FLOWTLY), linked)
    assert deletes(alone) == ["S0", "S1"]
    # The companies file also lost 14 of its 20 clients: 16 of 26 rows, one event.
    together = plan(
        crm, side(Side.FLOWTLY), linked, sibling_deletes={Side.CRM: DeleteCount(14, 20)}
    )
    assert together.steps == ()
    assert "16 of 26 linked companies (clients and counterparties together)" in (
        together.errors[0].reason
    )
    # The clients' deletes on the other side are no reason to refuse these.
    other_side = plan(
        crm, side(Side.FLOWTLY), linked, sibling_deletes={Side.FLOWTLY: DeleteCount(14, 20)}
    )
    assert deletes(other_side) == ["S0", "S1"]


def test_a_refusal_holds_back_deletes_only_and_only_on_that_side():
    linked = links(6)
    newcomer = Record(SUPPLIER, "S9", {"name": "New Supplier", "country": "PL", "vat_number": None})
    result = plan(
        side(Side.CRM, deleted=set(linked), new=[newcomer], seen=1),
        side(Side.FLOWTLY, deleted={"5"}, seen=5),
        linked,
    )
    [error] = result.errors
    assert error.side == "crm"
    created = [s for s in result.steps if s.writes and s.writes[0].action is Action.CREATE]
    assert [s.crm_id for s in created] == ["S9"]
    assert [w.action for s in result.steps if s.crm_id == "S5" for w in s.writes] == [Action.DELETE]


def test_a_deletes_feed_of_an_incremental_read_is_held_to_the_ratio_only():
    linked = links(1)
    result = plan(side(Side.CRM, deleted={"S0"}, complete=False), side(Side.FLOWTLY), linked)
    assert deletes(result) == ["S0"]


def test_allow_mass_delete_lets_it_through_and_still_says_so():
    linked = links(6)
    result = plan(
        side(Side.CRM, deleted=set(linked)),
        side(Side.FLOWTLY, seen=6),
        linked,
        policy=SyncPolicy(allow_mass_delete=True),
    )
    assert len(deletes(result)) == 6
    assert result.errors == ()
    [warning] = result.warnings
    assert "overridden by --allow-mass-delete" in warning.reason
    assert "6 of 6" in warning.reason


# -- a whole run: the counts of both company entities travel across their planning ---------

FIELDS = {CLIENT: tuple(sorted(NAMES)), SUPPLIER: tuple(sorted(NAMES))}


@pytest.fixture
def store(tmp_path: Path):
    opened = Store.open(f"sqlite:///{tmp_path}/state.db")
    yield opened
    opened.close()


def company(entity: EntityKind, rid: str) -> Record:
    return Record(entity, rid, {"name": f"Co {rid}", "country": "PL", "vat_number": None})


def synced(store: Store, clients: int, suppliers: int) -> tuple[MemoryConnector, MemoryConnector]:
    crm = MemoryConnector(entities=(CLIENT, SUPPLIER), fields=FIELDS, id_prefix="c")
    flowtly = MemoryConnector(
        entities=(CLIENT, SUPPLIER),
        fields=FIELDS,
        id_prefix="f",
        deletable=frozenset({SUPPLIER}),
        archive_status="archived",
    )
    for i in range(clients):
        crm.put(company(CLIENT, f"C{i}"))
    for i in range(suppliers):
        crm.put(company(SUPPLIER, f"S{i}"))
    assert run(crm, flowtly, store).clean
    return crm, flowtly


def run(crm, flowtly, store, policy: SyncPolicy | None = None) -> RunResult:
    job = SyncJob("t", crm, flowtly, store, policy or SyncPolicy())
    return asyncio.run(run_sync(job))


def test_a_companies_file_losing_60_percent_deletes_no_supplier(store):
    crm, flowtly = synced(store, clients=20, suppliers=6)
    for i in range(14):
        crm.remove(CLIENT, f"C{i}")
    for i in range(2):
        crm.remove(SUPPLIER, f"S{i}")
    result = run(crm, flowtly, store)
    assert not [op for op in result.operations if op.action in (Action.DELETE, Action.ARCHIVE)]
    assert sorted(e.entity for e in result.errors) == ["client", "counterparty"]
    assert len(flowtly.records(SUPPLIER)) == 6
    assert store.link_count("t", SUPPLIER) == 6
    # Counted once per run: the suppliers read ahead for the clients' guard are not read again.
    assert result.seen[(SUPPLIER, Side.CRM)] == 4


def test_clients_see_the_suppliers_lost_after_them_in_the_same_file(store):
    crm, flowtly = synced(store, clients=6, suppliers=20)
    for i in range(2):
        crm.remove(CLIENT, f"C{i}")
    for i in range(14):
        crm.remove(SUPPLIER, f"S{i}")
    result = run(crm, flowtly, store)
    assert not [op for op in result.operations if op.action in (Action.DELETE, Action.ARCHIVE)]
    client_error = next(e for e in result.errors if e.entity == "client")
    assert "16 of 26 linked companies" in client_error.reason


def test_allow_mass_delete_applies_the_same_deletes(store):
    crm, flowtly = synced(store, clients=20, suppliers=6)
    for i in range(14):
        crm.remove(CLIENT, f"C{i}")
    for i in range(2):
        crm.remove(SUPPLIER, f"S{i}")
    result = run(crm, flowtly, store, SyncPolicy(allow_mass_delete=True))
    assert result.errors == []
    actions = sorted((str(op.entity), str(op.action)) for op in result.operations)
    assert actions == [("client", "archive")] * 14 + [("counterparty", "delete")] * 2
    assert len(flowtly.records(SUPPLIER)) == 4
