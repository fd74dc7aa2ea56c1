"""Every row of the three-way decision table (docs/reference.md), per policy and owner."""

from __future__ import annotations

import pytest

from sync.engine.merge import Outcome, merge_fields
from sync.model import Side
from sync.policy import ConflictPolicy, Direction, SyncPolicy

MANUAL = SyncPolicy(conflict_policy=ConflictPolicy.MANUAL)
CRM_WINS = SyncPolicy(conflict_policy=ConflictPolicy.CRM)
FLOWTLY_WINS = SyncPolicy(conflict_policy=ConflictPolicy.FLOWTLY)


@pytest.mark.parametrize(
    ("base", "crm", "flowtly", "policy", "outcome", "to_crm", "to_flowtly", "new_base"),
    [
        # same / same -> nothing
        ("a", "a", "a", MANUAL, Outcome.KEEP, {}, {}, "a"),
        # changed / same -> write A to Flowtly
        ("a", "b", "a", MANUAL, Outcome.TO_FLOWTLY, {}, {"f": "b"}, "b"),
        # same / changed -> write B to the CRM
        ("a", "a", "c", MANUAL, Outcome.TO_CRM, {"f": "c"}, {}, "c"),
        # changed / changed, equal -> nothing to write, base := A
        ("a", "d", "d", MANUAL, Outcome.AGREED, {}, {}, "d"),
        # changed / changed, different -> conflict, by policy
        ("a", "b", "c", MANUAL, Outcome.PARKED, {}, {}, "a"),
        ("a", "b", "c", CRM_WINS, Outcome.CONFLICT_TO_FLOWTLY, {}, {"f": "b"}, "b"),
        ("a", "b", "c", FLOWTLY_WINS, Outcome.CONFLICT_TO_CRM, {"f": "c"}, {}, "c"),
        # None is a value like any other: clearing a field is a change
        ("a", None, "a", MANUAL, Outcome.TO_FLOWTLY, {}, {"f": None}, None),
        (None, None, "x", MANUAL, Outcome.TO_CRM, {"f": "x"}, {}, "x"),
    ],
)
def test_decision_table(base, crm, flowtly, policy, outcome, to_crm, to_flowtly, new_base):
    result = merge_fields(["f"], {"f": base}, {"f": crm}, {"f": flowtly}, policy)
    assert [d.outcome for d in result.decisions] == [outcome]
    assert result.to_crm == to_crm
    assert result.to_flowtly == to_flowtly
    assert result.base == {"f": new_base}
    assert bool(result.parked) == (outcome is Outcome.PARKED)


@pytest.mark.parametrize(
    ("owner", "outcome"),
    [
        (Side.CRM, Outcome.CONFLICT_TO_FLOWTLY),
        (Side.FLOWTLY, Outcome.CONFLICT_TO_CRM),
    ],
)
def test_field_owner_overrides_policy(owner, outcome):
    policy = SyncPolicy(conflict_policy=ConflictPolicy.MANUAL, field_owners={"tin": owner})
    result = merge_fields(
        ["tin", "name"],
        {"tin": "1", "name": "n"},
        {"tin": "2", "name": "x"},
        {"tin": "3", "name": "y"},
        policy,
    )
    by_field = {d.field: d.outcome for d in result.decisions}
    assert by_field == {"tin": outcome, "name": Outcome.PARKED}


def test_edits_to_different_fields_merge_without_conflict():
    base = {"name": "Acme", "city": "Berlin"}
    result = merge_fields(
        ["name", "city"],
        base,
        {"name": "Acme AG", "city": "Berlin"},
        {"name": "Acme", "city": "Munich"},
        MANUAL,
    )
    assert result.to_flowtly == {"name": "Acme AG"}
    assert result.to_crm == {"city": "Munich"}
    assert result.base == {"name": "Acme AG", "city": "Munich"}
    assert not result.parked


def test_without_base_equal_fields_agree_and_different_fields_conflict():
    result = merge_fields(
        ["name", "city"],
        None,
        {"name": "Acme", "city": "Berlin"},
        {"name": "Acme", "city": "Munich"},
        MANUAL,
    )
    assert {d.field: d.outcome for d in result.decisions} == {
        "name": Outcome.AGREED,
        "city": Outcome.PARKED,
    }
    assert result.base == {"name": "Acme", "city": None}


@pytest.mark.parametrize(
    ("direction", "to_crm", "to_flowtly"),
    [
        (Direction.CRM_TO_FLOWTLY, {}, {"status": "active"}),
        (Direction.FLOWTLY_TO_CRM, {"status": "blocked"}, {}),
    ],
)
def test_one_way_field_belongs_to_its_source(direction, to_crm, to_flowtly):
    policy = SyncPolicy(directions={"status": direction})
    # Both changed: no conflict for a one-way field, the source side wins.
    result = merge_fields(
        ["status"], {"status": "new"}, {"status": "active"}, {"status": "blocked"}, policy
    )
    assert result.to_crm == to_crm
    assert result.to_flowtly == to_flowtly
    assert not result.parked


def test_first_link_fills_empty_fields_from_the_other_side():
    result = merge_fields(
        ["city", "phone"],
        None,
        {"city": None, "phone": "+48 1"},
        {"city": "Lodz", "phone": None},
        MANUAL,
    )
    assert result.to_crm == {"city": "Lodz"}
    assert result.to_flowtly == {"phone": "+48 1"}
    assert not result.parked
