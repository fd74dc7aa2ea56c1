"""The engine over in-memory sides whose listings arrive broken (`ListingFault`): nothing is
inferred deleted, nothing duplicated, no unseen edit overwritten, no cursor skips ahead."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.memory import IncrementalMemoryConnector, ListingFault, MemoryConnector
from sync.engine.detect import read_side
from sync.engine.ops import Action
from sync.engine.run import RunResult, SyncJob, run_sync
from sync.model import EntityKind, Record, Side
from sync.store import Store

CLIENT, CONTACT = EntityKind.CLIENT, EntityKind.CONTACT
FIELDS = {CLIENT: ("name", "country", "vat_number"), CONTACT: ("company_id", "name", "email")}


def _sides(
    crm_cls: type[MemoryConnector] = MemoryConnector,
) -> tuple[MemoryConnector, MemoryConnector]:
    crm = crm_cls(entities=(CLIENT, CONTACT), fields=FIELDS, id_prefix="c", batch_size=2)
    flowtly = MemoryConnector(
        entities=(CLIENT, CONTACT), fields=FIELDS, id_prefix="f", deletable=frozenset({CONTACT})
    )
    return crm, flowtly


def _company(rid: str, vat: str) -> Record:
    return Record(CLIENT, rid, {"name": f"Co {vat}", "country": "PL", "vat_number": vat})


def _person(rid: str, company: str, email: str, name: str = "Ann") -> Record:
    return Record(CONTACT, rid, {"company_id": company, "name": name, "email": email})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/state.db")
    yield opened
    opened.close()


def _run(crm: MemoryConnector, flowtly: MemoryConnector, store: Store) -> RunResult:
    return asyncio.run(run_sync(SyncJob("t", crm, flowtly, store, concurrency=2)))


def _removals(result: RunResult) -> list[object]:
    return [op for op in result.operations if op.action in (Action.DELETE, Action.ARCHIVE)]


def test_a_dropped_page_deletes_nothing_and_names_the_shortfall(store: Store) -> None:
    crm, flowtly = _sides()
    for n in range(1, 6):
        crm.put(_company(f"c{n}", f"PL{n}"))
    assert _run(crm, flowtly, store).clean
    crm.garble_listing(CLIENT, ListingFault.DROP_PAGE)
    result = _run(crm, flowtly, store)
    assert not _removals(result)
    (warning,) = result.warnings
    assert (warning.entity, warning.side, warning.record_id) == ("client", "crm", "*")
    assert "memory:memory client stated total 5 but its pages held 4 records" in warning.reason
    assert "1 linked record(s) missing from it are left as they are" in warning.reason
    crm.clear_faults()
    assert not _removals(_run(crm, flowtly, store))
    assert len(flowtly.records(CLIENT)) == 5


def test_a_repeated_id_holds_what_it_hid_and_creates_on_that_side(store: Store) -> None:
    crm, flowtly = _sides()
    crm.put(_company("c1", "PL1"))
    for n in range(1, 4):
        crm.put(_person(f"p{n}", "c1", f"p{n}@x.eu"))
    assert _run(crm, flowtly, store).clean
    by_email = {r.get("email"): r for r in flowtly.records(CONTACT)}
    hidden = by_email["p3@x.eu"]  # listed last: the repeat takes its place
    crm.put(_person("p2", "c1", "p2@x.eu", name="Seen edit"))
    crm.put(_person("p3", "c1", "p3@x.eu", name="Overwrites nothing"))
    flowtly.put(hidden.replace(name="Unseen edit"))
    crm.put(_person("p4", "c1", "p4@x.eu"))
    flowtly.garble_listing(CONTACT, ListingFault.REPEAT_ID)

    result = _run(crm, flowtly, store)

    assert not _removals(result)
    (warning,) = result.warnings
    assert warning.side == "flowtly"
    assert "repeated 1 id listed before" in warning.reason
    assert "1 new record(s) are not created on this side" in warning.reason
    names = {r.get("email"): r.get("name") for r in flowtly.records(CONTACT)}
    assert names["p2@x.eu"] == "Seen edit"
    assert names["p3@x.eu"] == "Unseen edit"  # not overwritten by a CRM edit planned blind
    assert "p4@x.eu" not in names
    flowtly.clear_faults()
    healed = _run(crm, flowtly, store)
    assert not healed.warnings
    assert not _removals(healed)
    assert {r.get("email") for r in flowtly.records(CONTACT)} == {
        f"p{n}@x.eu" for n in (1, 2, 3, 4)
    }


def test_a_broken_listing_after_a_lost_store_duplicates_nothing(tmp_path: Path) -> None:
    crm, flowtly = _sides()
    crm.put(_company("c1", "PL1"))
    crm.put(_company("c2", "PL2"))
    crm.put(_company("c3", "PL3"))
    first = Store.open(f"sqlite:///{tmp_path}/first.db")
    assert _run(crm, flowtly, first).clean
    first.close()
    fresh = Store.open(f"sqlite:///{tmp_path}/fresh.db")  # every link forgotten
    crm.garble_listing(CLIENT, ListingFault.DROP_PAGE)
    result = _run(crm, flowtly, fresh)
    assert [op.action for op in result.operations if op.target is Side.CRM] == []
    assert len(crm.records(CLIENT)) == 3
    crm.clear_faults()
    assert _run(crm, flowtly, fresh).clean
    assert len(crm.records(CLIENT)) == len(flowtly.records(CLIENT)) == 3
    fresh.close()


def test_an_incomplete_first_listing_keeps_the_cursor_where_it_was(store: Store) -> None:
    crm, flowtly = _sides(IncrementalMemoryConnector)
    crm.put(_company("c1", "PL1"))
    crm.put(_company("c2", "PL2"))
    crm.put(_company("c3", "PL3"))
    crm.garble_listing(CLIENT, ListingFault.DROP_PAGE)
    _run(crm, flowtly, store)
    assert store.get_cursor("t", Side.CRM, CLIENT) is None
    crm.clear_faults()
    assert _run(crm, flowtly, store).clean
    assert store.get_cursor("t", Side.CRM, CLIENT) is not None
    assert len(flowtly.records(CLIENT)) == 3


def test_creates_held_by_the_other_sides_broken_listing_keep_the_cursor(
    tmp_path: Path,
) -> None:
    """The CRM is listed completely, but Flowtly's listing of the twins arrives broken,
    so the CRM's contacts are held back. Had the CRM's cursor passed them, the next
    (incremental) run would miss them and create their Flowtly twins in the CRM again."""
    crm, flowtly = _sides(IncrementalMemoryConnector)
    crm.put(_company("c1", "PL1"))
    flowtly.put(_company("f1", "PL1"))
    for n in (1, 2, 3):
        crm.put(_person(f"cp{n}", "c1", f"p{n}@x.eu"))
        flowtly.put(_person(f"fp{n}", "f1", f"p{n}@x.eu"))
    store = Store.open(f"sqlite:///{tmp_path}/state.db")
    flowtly.garble_listing(CONTACT, ListingFault.DROP_PAGE)
    held = _run(crm, flowtly, store)
    assert [op for op in held.operations if op.entity is CONTACT] == []
    assert store.get_cursor("t", Side.CRM, CONTACT) is None
    flowtly.clear_faults()
    assert _run(crm, flowtly, store).clean
    assert sorted(r.id for r in crm.records(CONTACT)) == ["cp1", "cp2", "cp3"]
    assert len(store.link_index("t", CONTACT)) == 3
    store.close()


async def test_read_side_infers_no_delete_from_an_incomplete_listing() -> None:
    side = MemoryConnector(entities=(CLIENT,), fields=FIELDS, batch_size=2)
    for n in range(1, 4):
        side.put(_company(f"m{n}", f"PL{n}"))
    side.garble_listing(CLIENT, ListingFault.DROP_PAGE)
    stored = {"m1": "fp", "m2": "fp", "m3": "fp", "gone": "fp"}
    view = await read_side(side, Side.CRM, CLIENT, frozenset(FIELDS[CLIENT]), stored)
    assert (view.complete, view.deleted, view.cursor) == (False, set(), None)
    assert view.unseen == {"m3", "gone"}
    assert view.incomplete == "memory:memory client stated total 3 but its pages held 2 records"
    side.clear_faults()
    whole = await read_side(side, Side.CRM, CLIENT, frozenset(FIELDS[CLIENT]), stored)
    assert (whole.complete, whole.deleted, whole.unseen, whole.incomplete) == (
        True,
        {"gone"},
        set(),
        None,
    )
