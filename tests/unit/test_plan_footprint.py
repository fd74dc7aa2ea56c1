"""What a run holds while it applies: a create's values once, and no records read."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

import sync.engine.run as engine_run
from connectors.memory import MemoryConnector
from sync.engine.detect import SideView
from sync.engine.inputs import PlanInput
from sync.engine.match import record_key, values_key
from sync.engine.ops import Action, FieldChange, Plan
from sync.engine.run import SyncJob, run_sync
from sync.model import SCHEMAS, EntityKind, FieldValues, Record, Side
from sync.normalize import fingerprint, normalize_value
from sync.policy import SyncPolicy
from sync.store import Store

CLIENT, CONTACT = EntityKind.CLIENT, EntityKind.CONTACT
FIELDS = {CLIENT: ("name", "country", "city"), CONTACT: ("company_id", "name", "email")}
NAMES = frozenset(FIELDS[CLIENT])


@pytest.fixture
def store(tmp_path: Path):
    opened = Store.open(f"sqlite:///{tmp_path}/state.db")
    yield opened
    opened.close()


RECORD = Record(CLIENT, "C1", {"name": "Acme", "country": "PL", "city": None})


def _plan_one_new(side: Side, record: Record = RECORD) -> Plan:
    views = {s: SideView(s, CLIENT) for s in Side}
    views[side].new["C1"] = record
    views[side].fps["C1"] = fingerprint(CLIENT, record.fields, NAMES)
    inp = PlanInput(CLIENT, NAMES, {}, 0, {}, views[Side.CRM], views[Side.FLOWTLY], SyncPolicy())
    return engine_run.plan_entity(inp)


@pytest.mark.parametrize("side", list(Side))
def test_a_create_holds_its_values_once_and_reports_the_same_changes(side: Side) -> None:
    (step,) = _plan_one_new(side).steps
    (write,) = step.writes
    assert write.action is Action.CREATE
    assert write.target is side.other
    assert write.payload is step.base
    assert step.base == RECORD.fields  # the record read, unpacked (`PackedRecords`)
    assert write.field_changes == ()
    assert write.changes == (
        FieldChange("country", None, "PL"),
        FieldChange("name", None, "Acme"),
    )
    assert write.values() == {"country": "PL", "name": "Acme"}
    (op,) = step.operations()
    assert op.changes == write.changes


def test_a_record_lacking_a_synced_field_is_planned_with_it_empty() -> None:
    partial = Record(CLIENT, "C1", {"name": "Acme"})
    (step,) = _plan_one_new(Side.CRM, partial).steps
    assert step.base == {"name": "Acme", "country": None, "city": None}
    assert step.writes[0].changes == (FieldChange("name", None, "Acme"),)


def test_a_create_holds_no_natural_key_its_values_give_the_same_one() -> None:
    (step,) = _plan_one_new(Side.CRM).steps
    assert step.key_from_base
    assert step.natural_key is None
    assert values_key(CLIENT, step.base) == record_key(RECORD) is not None
    # Values cut down to the synced fields might give another key: the source's is kept.
    wider = Record(CLIENT, "C1", {**RECORD.fields, "vat_number": "PL5260250274"})
    (step,) = _plan_one_new(Side.CRM, wider).steps
    assert not step.key_from_base
    assert step.natural_key == record_key(wider) != values_key(CLIENT, step.base)


def test_records_read_are_let_go_before_the_plan_is_applied(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    crm = MemoryConnector(entities=(CLIENT, CONTACT), fields=FIELDS, id_prefix="c")
    flowtly = MemoryConnector(entities=(CLIENT, CONTACT), fields=FIELDS, id_prefix="f")
    crm.put(Record(CLIENT, "C1", {"name": "Acme", "country": "PL", "city": "Gdańsk"}))
    crm.put(Record(CONTACT, "P1", {"company_id": "C1", "name": "Ann", "email": "a@x.eu"}))
    flowtly.put(Record(CLIENT, "9", {"name": "Bolt", "country": "PL", "city": None}))
    planned: list[SideView] = []
    plan_entity = engine_run.plan_entity

    def spy(inp: PlanInput) -> Plan:
        planned.extend((inp.crm, inp.flowtly))
        return plan_entity(inp)

    held: list[int] = []

    def expect(description: str, count: int) -> None:
        held.append(sum(len(view.new) + len(view.changed) for view in planned))

    monkeypatch.setattr(engine_run, "plan_entity", spy)
    job = SyncJob("t", crm, flowtly, store, SyncPolicy(), concurrency=2)
    result = asyncio.run(run_sync(job, expect=expect))
    assert result.clean
    assert sorted((str(op.entity), str(op.target)) for op in result.operations) == [
        ("client", "crm"),
        ("client", "flowtly"),
        ("contact", "flowtly"),
    ]
    assert held == [0, 0]
    assert all(view.fps for view in planned if view.side is Side.CRM)


def test_a_child_create_keeps_its_values_and_sends_its_parent_as_flowtly_knows_it() -> None:
    names = frozenset(FIELDS[CONTACT])
    contact = Record(CONTACT, "P1", {"company_id": "C1", "name": "Ann", "email": "a@x.eu"})
    crm = SideView(Side.CRM, CONTACT)
    crm.new["P1"] = contact
    crm.fps["P1"] = fingerprint(CONTACT, contact.fields, names)
    inp = PlanInput(
        CONTACT,
        names,
        {},
        0,
        {},
        crm,
        SideView(Side.FLOWTLY, CONTACT),
        SyncPolicy(),
        parent_links={"C1": "77"},
    )
    (step,) = engine_run.plan_entity(inp).steps
    (write,) = step.writes
    assert write.payload is step.base
    assert step.base["company_id"] == "C1"
    assert write.values() == {"company_id": "77", "email": "a@x.eu", "name": "Ann"}
    assert write.changes[0] == FieldChange("company_id", None, "77")


def test_record_values_are_a_compact_read_only_mapping_equal_to_a_dict() -> None:
    values = {"company_id": "C1", "name": "Ann", "email": None}
    record = Record(CONTACT, "P1", values)
    assert isinstance(record.fields, FieldValues)
    assert record.fields == values
    assert values == record.fields
    assert record.fields != {**values, "email": "ann@example.com"}
    assert dict(record.fields) == values
    assert list(record.fields) == list(values)
    assert record.get("email") is None
    assert record.get("title") is None
    assert record.fields.get("title", "none") == "none"
    assert "email" in record.fields
    assert "title" not in record.fields
    assert record.replace(email="ann@example.com").get("email") == "ann@example.com"
    with pytest.raises(TypeError):
        record.fields["name"] = "Bob"  # type: ignore[index]  # the point: read-only
    values["name"] = "Bob"
    assert record.get("name") == "Ann", "a record copies the mapping it is given"
    # Records of one layout share the index of names: only the values are their own.
    other = Record(CONTACT, "P2", {"company_id": "C1", "name": "Eve", "email": None})
    assert other.fields._index is record.fields._index  # the sharing itself
    held = sys.getsizeof(record.fields) + sys.getsizeof(record.fields._values)
    assert held < sys.getsizeof(dict(values))


def test_short_texts_of_fields_that_repeat_are_held_once() -> None:
    # Titles, cities, a parent's id under each child: the same text on many records.
    first = normalize_value(SCHEMAS[CONTACT]["title"], "".join(["Sales ", "manager "]))
    again = normalize_value(SCHEMAS[CONTACT]["title"], " ".join(["Sales", "manager"]))
    assert first == again == "Sales manager"
    assert first is again
    parent = normalize_value(SCHEMAS[CONTACT]["company_id"], "".join(["C", "000001"]))
    name = normalize_value(SCHEMAS[CONTACT]["name"], "".join(["Ann ", "Lee"]))
    assert name is not normalize_value(SCHEMAS[CONTACT]["name"], "Ann" + " Lee"), "mostly unique"
    assert parent is normalize_value(SCHEMAS[CONTACT]["company_id"], "C0" + "00001")
    long_text = "x" * 65
    assert normalize_value(SCHEMAS[CONTACT]["title"], long_text) is long_text
