"""Planning is pure: given both sides' views, links and policy, the steps are exact."""

from __future__ import annotations

from dataclasses import dataclass

from sync.engine.detect import TOMBSTONE, SideView
from sync.engine.inputs import PlanInput, SideRules, StoredRejection
from sync.engine.match import PendingIntent
from sync.engine.ops import Action, Step
from sync.engine.plan import payload_fingerprint, plan_entity
from sync.model import EntityKind, Record, Side
from sync.normalize import fingerprint
from sync.policy import ConflictPolicy, SyncPolicy

CLIENT, CONTACT = EntityKind.CLIENT, EntityKind.CONTACT
NAMES = frozenset({"name", "country", "vat_number", "city", "status"})
CONTACT_NAMES = frozenset({"company_id", "name", "email"})


@dataclass(frozen=True)
class Link:
    crm_id: str
    flowtly_id: str
    crm_fp: str = "fp-crm"
    flowtly_fp: str = "fp-fl"


def client(rid: str, **fields: object) -> Record:
    values = {"name": None, "country": None, "vat_number": None, "city": None, "status": None}
    values.update(fields)  # type: ignore[arg-type]
    return Record(CLIENT, rid, values)  # type: ignore[arg-type]


def view(
    side: Side,
    entity: EntityKind = CLIENT,
    *,
    new=(),
    changed=(),
    deleted=(),
    names=NAMES,
    seen=0,
) -> SideView:
    v = SideView(side, entity, seen=seen)
    for record in new:
        v.new[record.id] = record
        v.fps[record.id] = fingerprint(entity, record.fields, names)
    for record in changed:
        v.changed[record.id] = record
        v.fps[record.id] = fingerprint(entity, record.fields, names)
    v.deleted = set(deleted)
    return v


def plan(
    crm: SideView,
    flowtly: SideView,
    *,
    links=None,
    bases=None,
    policy=None,
    names=NAMES,
    entity=CLIENT,
    linked=None,
    **extra,
):
    links = links or {}
    return plan_entity(
        PlanInput(
            entity,
            names,
            links,
            len(links) if linked is None else linked,
            bases or {},
            crm,
            flowtly,
            policy or SyncPolicy(),
            **extra,
        )
    )


def only(steps: tuple[Step, ...]) -> Step:
    assert len(steps) == 1, steps
    return steps[0]


def test_new_on_one_side_is_created_on_the_other():
    result = plan(
        view(Side.CRM, new=[client("C1", name="Acme", country="PL")]),
        view(Side.FLOWTLY, new=[client("7", name="Globex", country="DE")]),
    )
    creates = {(s.writes[0].target, s.crm_id, s.flowtly_id) for s in result.steps}
    assert creates == {(Side.FLOWTLY, "C1", None), (Side.CRM, None, "7")}
    to_flowtly = next(s for s in result.steps if s.crm_id == "C1")
    assert to_flowtly.writes[0].action is Action.CREATE
    assert to_flowtly.writes[0].values() == {"name": "Acme", "country": "PL"}
    assert to_flowtly.link


def test_new_on_both_sides_link_by_vat_number_with_or_without_prefix():
    result = plan(
        view(Side.CRM, new=[client("C1", name="Acme", country="PL", vat_number="PL5260250995")]),
        view(
            Side.FLOWTLY, new=[client("7", name="ACME sp.", country="PL", vat_number="5260250995")]
        ),
        policy=SyncPolicy(conflict_policy=ConflictPolicy.CRM),
    )
    step = only(result.steps)
    assert (step.crm_id, step.flowtly_id, step.link) == ("C1", "7", True)
    # Differing fields of a first link are conflicts, here decided by the crm policy.
    assert [(w.target, w.values()) for w in step.writes] == [
        (Side.FLOWTLY, {"name": "Acme", "vat_number": "PL5260250995"})
    ]
    assert [op.action for op in step.operations()] == [Action.UPDATE, Action.LINK]


def test_new_on_both_sides_link_by_name_and_country():
    step = only(
        plan(
            view(Side.CRM, new=[client("C1", name="Acme  Ltd", country="IE")]),
            view(Side.FLOWTLY, new=[client("7", name="acme ltd", country="IE")]),
        ).steps
    )
    assert (step.crm_id, step.flowtly_id) == ("C1", "7")


def test_same_name_in_another_country_is_not_a_match():
    result = plan(
        view(Side.CRM, new=[client("C1", name="Acme", country="IE")]),
        view(Side.FLOWTLY, new=[client("7", name="Acme", country="GB")]),
    )
    assert {s.writes[0].action for s in result.steps} == {Action.CREATE}
    assert len(result.steps) == 2


def test_ambiguous_candidates_are_reported_and_nothing_is_created():
    result = plan(
        view(Side.CRM, new=[client("C1", name="Acme", country="DE", vat_number="DE136695976")]),
        view(
            Side.FLOWTLY,
            new=[
                client("7", name="Acme", country="DE", vat_number="DE136695976"),
                client("8", name="Acme 2", country="DE", vat_number="136695976"),
            ],
        ),
    )
    assert result.steps == ()
    assert sorted((e.side, e.record_id) for e in result.errors) == [
        ("crm", "C1"),
        ("flowtly", "7"),
        ("flowtly", "8"),
    ]
    assert all("ambiguous match" in e.reason for e in result.errors)


def test_linked_record_changed_on_crm_updates_flowtly_only_changed_fields():
    base = {"name": "Acme", "country": "PL", "vat_number": None, "city": "Krakow", "status": None}
    crm = client("C1", **{**base, "city": "Warsaw"})
    step = only(
        plan(
            view(Side.CRM, changed=[crm]),
            view(Side.FLOWTLY),
            links={"C1": Link("C1", "7")},
            bases={"C1": base},
        ).steps
    )
    write = only_write(step)
    assert (write.target, write.action, write.record_id) == (Side.FLOWTLY, Action.UPDATE, "7")
    assert [(c.field, c.old, c.new) for c in write.changes] == [("city", "Krakow", "Warsaw")]
    assert step.base["city"] == "Warsaw"
    assert step.flowtly_fp == "fp-fl"


def only_write(step: Step):
    assert len(step.writes) == 1, step.writes
    return step.writes[0]


def test_same_field_changed_differently_is_parked_under_manual():
    base = {"name": "Acme", "country": "PL", "vat_number": None, "city": "Krakow", "status": None}
    step = only(
        plan(
            view(Side.CRM, changed=[client("C1", **{**base, "city": "Warsaw"})]),
            view(Side.FLOWTLY, changed=[client("7", **{**base, "city": "Gdansk"})]),
            links={"C1": Link("C1", "7")},
            bases={"C1": base},
        ).steps
    )
    assert step.writes == ()
    assert [(c.field, c.base, c.crm, c.flowtly) for c in step.conflicts] == [
        ("city", "Krakow", "Warsaw", "Gdansk")
    ]
    assert [op.action for op in step.operations()] == [Action.CONFLICT]


def test_client_deleted_in_crm_is_archived_in_flowtly_and_kept_linked():
    base = {"name": "Acme", "country": "PL", "vat_number": None, "city": None, "status": "active"}
    step = only(
        plan(
            view(Side.CRM, deleted={"C1"}, seen=4),
            view(Side.FLOWTLY),
            links={"C1": Link("C1", "7")},
            linked=5,
            bases={"C1": base},
            flowtly_rules=SideRules(can_delete=False, archive_status="archived"),
        ).steps
    )
    write = only_write(step)
    assert (write.target, write.action, write.values()) == (
        Side.FLOWTLY,
        Action.ARCHIVE,
        {"status": "archived"},
    )
    assert step.crm_fp == TOMBSTONE
    assert not step.unlink


def test_archived_client_is_left_alone_on_later_runs():
    result = plan(
        view(Side.CRM),
        view(Side.FLOWTLY),
        links={"C1": Link("C1", "7", crm_fp=TOMBSTONE)},
        flowtly_rules=SideRules(can_delete=False, archive_status="archived"),
    )
    assert result.steps == ()


def test_contact_deleted_in_flowtly_is_deleted_in_crm_and_unlinked():
    step = only(
        plan(
            view(Side.CRM, CONTACT),
            view(Side.FLOWTLY, CONTACT, deleted={"70"}, seen=4),
            links={"P1": Link("P1", "70")},
            linked=5,
            names=CONTACT_NAMES,
            entity=CONTACT,
        ).steps
    )
    assert [(w.target, w.action, w.record_id) for w in step.writes] == [
        (Side.CRM, Action.DELETE, "P1")
    ]
    assert step.unlink


def test_deleted_on_one_side_changed_on_the_other_recreates():
    base = {"name": "Acme", "country": "PL", "vat_number": None, "city": None, "status": None}
    changed = client("7", **{**base, "city": "Lodz"})
    step = only(
        plan(
            view(Side.CRM, deleted={"C1"}, seen=4),
            view(Side.FLOWTLY, changed=[changed]),
            links={"C1": Link("C1", "7")},
            linked=5,
            bases={"C1": base},
        ).steps
    )
    write = only_write(step)
    assert (write.target, write.action) == (Side.CRM, Action.CREATE)
    assert write.values()["city"] == "Lodz"
    assert step.replaces == "C1"


def test_a_recreate_that_landed_before_a_crash_is_linked_not_sent_again():
    """The CRM record a recreate made is new and unlinked after a crash; its intent ties
    it to the Flowtly record, so it is linked in the old link's place and neither side
    gets another copy."""
    base = {"name": "Acme", "country": "PL", "vat_number": None, "city": None, "status": None}
    changed = client("7", **{**base, "city": "Lodz"})
    landed = client("C9", **changed.fields)
    intent = PendingIntent("7", None, payload_fingerprint(CLIENT, changed.fields), NAMES)
    result = plan(
        view(Side.CRM, new=[landed], deleted={"C1"}, seen=4),
        view(Side.FLOWTLY, changed=[changed]),
        links={"C1": Link("C1", "7")},
        linked=5,
        bases={"C1": base},
        flowtly_intents=(intent,),
    )
    step = only(result.steps)
    assert (step.crm_id, step.flowtly_id, step.link, step.replaces) == ("C9", "7", True, "C1")
    assert step.writes == ()


def test_a_flowtly_recreate_that_landed_before_a_crash_is_linked_not_sent_again():
    base = {"name": "Acme", "country": "PL", "vat_number": None, "city": None, "status": None}
    changed = client("C1", **{**base, "city": "Lodz"})
    landed = client("12", **changed.fields)
    intent = PendingIntent("C1", None, payload_fingerprint(CLIENT, changed.fields), NAMES)
    result = plan(
        view(Side.CRM, changed=[changed]),
        view(Side.FLOWTLY, new=[landed], deleted={"7"}, seen=4),
        links={"C1": Link("C1", "7")},
        linked=5,
        bases={"C1": base},
        crm_intents=(intent,),
    )
    step = only(result.steps)
    assert (step.crm_id, step.flowtly_id, step.link) == ("C1", "12", True)
    assert step.writes == ()


def test_an_edit_made_after_a_create_landed_is_merged_not_taken_for_a_conflict():
    """A Flowtly client's create landed in the CRM before a crash; Flowtly edited it
    before the next run. The twins match by VAT, and the landed record (still holding the
    create's payload) is their base: the edit goes to the CRM, the CRM's winning
    conflicts do not undo it."""
    sent = client("7", name="Acme", country="PL", vat_number="PL1", city="Lodz")
    landed = client("C9", **sent.fields)
    edited = sent.replace(city="Gdansk")
    intent = PendingIntent("7", None, payload_fingerprint(CLIENT, sent.fields), NAMES)
    step = only(
        plan(
            view(Side.CRM, new=[landed]),
            view(Side.FLOWTLY, new=[edited]),
            policy=SyncPolicy(conflict_policy=ConflictPolicy.CRM),
            flowtly_intents=(intent,),
        ).steps
    )
    assert (step.crm_id, step.flowtly_id, step.link, step.conflicts) == ("C9", "7", True, ())
    write = only_write(step)
    assert (write.target, write.action, write.record_id) == (Side.CRM, Action.UPDATE, "C9")
    assert [(c.field, c.old, c.new, c.conflict) for c in write.changes] == [
        ("city", "Lodz", "Gdansk", False)
    ]
    assert step.base["city"] == "Gdansk"


def test_an_edit_made_after_a_recreate_landed_is_merged_into_it():
    base = {"name": "Acme", "country": "PL", "vat_number": None, "city": None, "status": None}
    changed = client("7", **{**base, "city": "Lodz"})
    landed = client("C9", **changed.fields)
    intent = PendingIntent("7", None, payload_fingerprint(CLIENT, changed.fields), NAMES)
    result = plan(
        view(Side.CRM, new=[landed], deleted={"C1"}, seen=4),
        view(Side.FLOWTLY, changed=[changed.replace(city="Gdansk")]),
        links={"C1": Link("C1", "7")},
        linked=5,
        bases={"C1": base},
        policy=SyncPolicy(conflict_policy=ConflictPolicy.CRM),
        flowtly_intents=(intent,),
    )
    step = only(result.steps)
    assert (step.crm_id, step.flowtly_id, step.replaces) == ("C9", "7", "C1")
    write = only_write(step)
    assert (write.target, write.action, write.record_id) == (Side.CRM, Action.UPDATE, "C9")
    assert [(c.field, c.new, c.conflict) for c in write.changes] == [("city", "Gdansk", False)]


def test_a_recreate_whose_create_did_not_land_is_sent_again():
    base = {"name": "Acme", "country": "PL", "vat_number": None, "city": None, "status": None}
    changed = client("7", **{**base, "city": "Lodz"})
    other = client("C9", **{**base, "name": "Other", "city": "Lodz"})
    intent = PendingIntent("7", None, payload_fingerprint(CLIENT, changed.fields), NAMES)
    result = plan(
        view(Side.CRM, new=[other], deleted={"C1"}, seen=4),
        view(Side.FLOWTLY, changed=[changed]),
        links={"C1": Link("C1", "7")},
        linked=5,
        bases={"C1": base},
        flowtly_intents=(intent,),
    )
    writes = sorted((w.target, w.action) for step in result.steps for w in step.writes)
    assert writes == [(Side.CRM, Action.CREATE), (Side.FLOWTLY, Action.CREATE)]


def test_a_twin_archived_since_agrees_with_its_delete_and_is_not_recreated():
    """Archived after its CRM twin was deleted (by a run that then crashed, or by hand):
    that is where the delete leads, not an edit that brings the CRM record back."""
    base = {"name": "Acme", "country": "PL", "vat_number": None, "city": None, "status": "active"}
    archived = client("7", **{**base, "status": "archived"})
    step = only(
        plan(
            view(Side.CRM, deleted={"C1"}, seen=4),
            view(Side.FLOWTLY, changed=[archived]),
            links={"C1": Link("C1", "7")},
            linked=5,
            bases={"C1": base},
            flowtly_rules=SideRules(can_delete=False, archive_status="archived"),
        ).steps
    )
    assert step.writes == ()
    assert (step.crm_fp, step.flowtly_fp) == (
        TOMBSTONE,
        fingerprint(CLIENT, archived.fields, NAMES),
    )


def test_a_twin_archived_and_edited_since_its_delete_is_recreated():
    base = {"name": "Acme", "country": "PL", "vat_number": None, "city": None, "status": "active"}
    edited = client("7", **{**base, "status": "archived", "city": "Lodz"})
    step = only(
        plan(
            view(Side.CRM, deleted={"C1"}, seen=4),
            view(Side.FLOWTLY, changed=[edited]),
            links={"C1": Link("C1", "7")},
            linked=5,
            bases={"C1": base},
            flowtly_rules=SideRules(can_delete=False, archive_status="archived"),
        ).steps
    )
    assert [(w.target, w.action) for w in step.writes] == [(Side.CRM, Action.CREATE)]


def test_deleted_on_both_sides_drops_the_link():
    step = only(
        plan(
            view(Side.CRM, deleted={"C1"}, seen=4),
            view(Side.FLOWTLY, deleted={"7"}, seen=4),
            links={"C1": Link("C1", "7")},
            linked=5,
        ).steps
    )
    assert step.unlink
    assert step.writes == ()


def test_mass_delete_guard_refuses_every_delete():
    links = {f"C{i}": Link(f"C{i}", str(i)) for i in range(20)}
    result = plan(
        view(Side.CRM, deleted=set(links)),
        view(Side.FLOWTLY),
        links=links,
        policy=SyncPolicy(mass_delete_ratio=0.5, mass_delete_min=5),
    )
    assert result.steps == ()
    assert len(result.errors) == 1
    assert "mass-delete guard" in result.errors[0].reason
    assert "20 of 20" in result.errors[0].reason


def test_few_deletes_pass_the_guard():
    links = {f"C{i}": Link(f"C{i}", str(i)) for i in range(20)}
    result = plan(
        view(Side.CRM, CONTACT, deleted={"C1", "C2"}, seen=18),
        view(Side.FLOWTLY, CONTACT),
        links=links,
        names=CONTACT_NAMES,
        entity=CONTACT,
        policy=SyncPolicy(mass_delete_ratio=0.5, mass_delete_min=5),
    )
    assert sorted(s.crm_id for s in result.steps if s.unlink) == ["C1", "C2"]


def test_contact_waits_until_its_company_is_linked():
    contact = Record(CONTACT, "P1", {"company_id": "C9", "name": "Ann", "email": "a@x.eu"})
    result = plan(
        view(Side.CRM, CONTACT, new=[contact], names=CONTACT_NAMES),
        view(Side.FLOWTLY, CONTACT),
        names=CONTACT_NAMES,
        entity=CONTACT,
        parent_links={"C1": "7"},
    )
    assert result.steps == ()
    assert result.waiting == 1


def test_contact_is_created_under_the_linked_company_and_matched_by_email():
    mine = Record(CONTACT, "P1", {"company_id": "C1", "name": "Ann", "email": "a@x.eu"})
    twin = Record(CONTACT, "70", {"company_id": "C1", "name": "Ann", "email": "a@x.eu"})
    other = Record(CONTACT, "P2", {"company_id": "C1", "name": "Bob", "email": "b@x.eu"})
    result = plan(
        view(Side.CRM, CONTACT, new=[mine, other], names=CONTACT_NAMES),
        view(Side.FLOWTLY, CONTACT, new=[twin], names=CONTACT_NAMES),
        names=CONTACT_NAMES,
        entity=CONTACT,
        parent_links={"C1": "7"},
    )
    by_crm = {s.crm_id: s for s in result.steps}
    assert by_crm["P1"].flowtly_id == "70"
    assert by_crm["P1"].writes == ()
    create = only_write(by_crm["P2"])
    assert create.values()["company_id"] == "7"  # translated into Flowtly's id space
    assert by_crm["P2"].base["company_id"] == "C1"  # the base stays in the CRM's


def test_rejected_record_is_skipped_until_it_changes():
    record = client("C1", name="Acme", country="PL")
    fp = fingerprint(CLIENT, record.fields, NAMES)
    rejected = {
        (Side.CRM, "C1"): StoredRejection(fp, "This value should not be blank.", "tin_type", None)
    }
    skipped = plan(view(Side.CRM, new=[record]), view(Side.FLOWTLY), rejections=rejected)
    assert skipped.steps == ()
    assert "still rejected" in skipped.errors[0].reason
    assert skipped.errors[0].field == "tin_type"
    changed = client("C1", name="Acme S.A.", country="PL")
    retried = plan(view(Side.CRM, new=[changed]), view(Side.FLOWTLY), rejections=rejected)
    assert only(retried.steps).writes[0].action is Action.CREATE
