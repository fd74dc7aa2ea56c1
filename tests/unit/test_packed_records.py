"""New records kept packed (`PackedRecords`): the same records back, by id and in order,
whatever their layouts, and smaller than the records themselves."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.engine.packed import PackedRecords
from sync.model import EntityKind, Record, Scalar

CONTACT = EntityKind.CONTACT

_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text())


@given(
    st.lists(
        st.dictionaries(st.sampled_from(["name", "email", "phone", "title"]), _VALUES),
        max_size=12,
    )
)
def test_records_come_back_equal_in_the_order_stored(rows: list[dict[str, Scalar]]) -> None:
    records = {f"P{n}": Record(CONTACT, f"P{n}", values) for n, values in enumerate(rows)}
    packed = PackedRecords(records)
    assert list(packed) == list(records)
    assert len(packed) == len(records)
    assert dict(packed.items()) == records
    for record_id, record in records.items():
        assert record_id in packed
        assert packed[record_id] == record
        assert packed[record_id].fields == record.fields
    assert "nope" not in packed


def test_a_record_replaced_or_deleted() -> None:
    packed = PackedRecords()
    packed["P1"] = Record(CONTACT, "P1", {"name": "Ann"})
    packed["P1"] = Record(CONTACT, "P1", {"name": "Bea", "email": "b@x.example"})
    assert packed["P1"] == Record(CONTACT, "P1", {"name": "Bea", "email": "b@x.example"})
    del packed["P1"]
    assert len(packed) == 0
    with pytest.raises(KeyError):
        packed["P1"]


def test_a_record_must_be_stored_under_its_own_id_and_kind() -> None:
    packed = PackedRecords()
    with pytest.raises(ValueError, match="stored as"):
        packed["P2"] = Record(CONTACT, "P1", {"name": "Ann"})
    packed["P1"] = Record(CONTACT, "P1", {"name": "Ann"})
    with pytest.raises(ValueError, match="among contact"):
        packed["C1"] = Record(EntityKind.CLIENT, "C1", {"name": "Acme"})


def test_packed_values_take_less_than_the_records() -> None:
    def size(record: Record) -> int:
        values = record.fields.ordered  # type: ignore[attr-defined]
        strings = sum(sys.getsizeof(v) for v in values if isinstance(v, str))
        return (
            sys.getsizeof(record) + sys.getsizeof(record.fields) + sys.getsizeof(values) + strings
        )

    record = Record(
        CONTACT,
        "P1",
        {
            "name": "Anna Kowalska",
            "email": "anna.kowalska@example.com",
            "phone": "+48 601 234 567",
            "title": "CFO",
            "company_id": "C1",
            "position": 3,
        },
    )
    packed = PackedRecords({"P1": record})
    stored = packed._packed["P1"]
    assert sys.getsizeof(stored) * 2 < size(record)
