"""A hypothesis state machine over two in-memory sides and a real store.

Random creates, field edits and deletes on both sides, failing writes, crashes at named
points in apply, a lost store, and listings that arrive broken (a page without its
members, an id repeated in place of another). A run over a broken listing never deletes
or archives a record on the other side, and never duplicates one. After every run that
reported no errors:
- both sides agree on every synced field of every linked pair;
- links equal the live records (each live record linked once, no link to a missing one);
- the stored base and fingerprints equal the live records;
- no edit was lost: a field edited on one side only ends with that value, a field edited
  on both ends with the policy's winner (a conflict, reported as such), unless one side's
  edits only brought it back to its stored base (no change there: the other's stands);
- a second (dry) run plans nothing.
Records carry a unique, never-edited VAT number, which is also how a lost store relinks.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from connectors.memory import ListingFault, MemoryConnector, Op
from sync.engine.apply import CrashPoint
from sync.engine.detect import TOMBSTONE
from sync.engine.ops import Action
from sync.engine.run import RunResult, SyncJob, run_sync
from sync.errors import TransientError
from sync.model import EntityKind, Record, Side
from sync.normalize import fingerprint
from sync.policy import ConflictPolicy, SyncPolicy
from sync.store import Store

CLIENT, CONTACT = EntityKind.CLIENT, EntityKind.CONTACT
CLIENT_FIELDS = ("name", "country", "vat_number", "city", "status")
CONTACT_FIELDS = ("company_id", "name", "email", "title")
EDITABLE = {CLIENT: ("name", "city"), CONTACT: ("name", "title")}
WORDS = st.sampled_from(["alpha", "beta", "gamma", "delta", None])
CRASH_POINTS = (
    "after_intent",
    "after_write_flowtly",
    "after_write_crm",
    "after_store",
    "before_crm_commit",
    "after_crm_commit",
)
# Random deletes often remove the last record of an entity: the guard is out of the way.
POLICY = SyncPolicy(conflict_policy=ConflictPolicy.CRM, allow_mass_delete=True)


def _sides() -> tuple[MemoryConnector, MemoryConnector]:
    fields = {CLIENT: CLIENT_FIELDS, CONTACT: CONTACT_FIELDS}
    crm = MemoryConnector(entities=(CLIENT, CONTACT), fields=fields, id_prefix="c", buffered=True)
    flowtly = MemoryConnector(
        entities=(CLIENT, CONTACT),
        fields=fields,
        id_prefix="f",
        deletable=frozenset({CONTACT}),
        archive_status="archived",
    )
    return crm, flowtly


class SyncMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="fsync-sm-"))
        self.crm, self.flowtly = _sides()
        self.store = Store.open(f"sqlite:///{self.tmp}/state.db")
        self.serial = 0
        # (side, entity, identity, field) -> value, for edits since the last clean run
        self.edits: dict[tuple[Side, EntityKind, str, str], object] = {}
        self.dirty = True
        self.unlinked = False
        """The store was lost and no clean run has relinked the records since."""
        self.based: set[tuple[Side, EntityKind, str, str]] = set()
        """Edits made while the store lost held a link (and so a base) for the record:
        a run that was not clean relinked it."""
        self.returned: set[tuple[Side, EntityKind, str, str]] = set()
        """Edits that left their field as its stored base holds it: that side's value is
        no change the engine can see, so the other side's edit is no conflict with it."""

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers -------------------------------------------------------------------------
    def side(self, side: Side) -> MemoryConnector:
        return self.crm if side is Side.CRM else self.flowtly

    def identity(self, record: Record) -> str:
        key = record.get("vat_number") if record.entity is CLIENT else record.get("email")
        assert isinstance(key, str)
        return key

    def job(self) -> SyncJob:
        return SyncJob("sm", self.crm, self.flowtly, self.store, POLICY, concurrency=3)

    def sync(self, crash: str | None = None) -> RunResult | None:
        def hook(point: str) -> None:
            if point == crash:
                raise CrashPoint(point)

        try:
            return asyncio.run(run_sync(self.job(), crash=hook if crash else None))
        except CrashPoint:
            self.crm.crash()
            self.dirty = True
            return None

    def live_clients(self, side: Side) -> list[Record]:
        records = self.side(side).records(CLIENT)
        if side is Side.FLOWTLY:
            return [r for r in records if r.get("status") != "archived"]
        return records

    # -- rules: edits on either side ------------------------------------------------------
    @rule(side=st.sampled_from(Side), name=WORDS, city=WORDS)
    def create_client(self, side: Side, name: str | None, city: str | None) -> None:
        self.serial += 1
        vat = f"X{self.serial:04d}"
        self.side(side).put(
            Record(
                CLIENT,
                f"{side.value[0]}new{self.serial}",
                {
                    "name": name or "unnamed",
                    "country": "PL",
                    "vat_number": vat,
                    "city": city,
                    "status": "active",
                },
            )
        )
        self.dirty = True

    @rule(side=st.sampled_from(Side), data=st.data())
    def create_contact(self, side: Side, data: st.DataObject) -> None:
        parents = self.live_clients(side)
        if not parents:
            return
        parent = data.draw(st.sampled_from(parents))
        self.serial += 1
        self.side(side).put(
            Record(
                CONTACT,
                f"{side.value[0]}p{self.serial}",
                {
                    "company_id": parent.id,
                    "name": "Ann",
                    "email": f"p{self.serial}@x.eu",
                    "title": data.draw(WORDS),
                },
            )
        )
        self.dirty = True

    @rule(
        side=st.sampled_from(Side),
        entity=st.sampled_from([CLIENT, CONTACT]),
        data=st.data(),
        value=WORDS,
    )
    def edit(self, side: Side, entity: EntityKind, data: st.DataObject, value: str | None) -> None:
        records = self.live_clients(side) if entity is CLIENT else self.side(side).records(entity)
        if not records:
            return
        record = data.draw(st.sampled_from(records))
        field = data.draw(st.sampled_from(EDITABLE[entity]))
        if field == "name" and value is None:
            value = "cleared"
        self.side(side).put(record.replace(**{field: value}))
        key = (side, entity, self.identity(record), field)
        own = [self.edits[key]] if key in self.edits else []
        if self.back_to_base(side, entity, record, field, value, own):
            self.returned.add(key)
        else:
            self.returned.discard(key)
        based = self.unlinked and self.linked(side, entity, record.id)
        if not self.unlinked or based or self.promised_without_base(side, value):
            self.edits[key] = value
        if based:
            self.based.add(key)
        else:
            self.based.discard(key)
        self.dirty = True

    def back_to_base(
        self,
        side: Side,
        entity: EntityKind,
        record: Record,
        field: str,
        value: object,
        own: list[object],
    ) -> bool:
        """Whether the edit of ``record`` to ``value`` leaves ``field`` as the stored base
        has it, from a value that was the base too or this side's own edit (``own``), not
        one a run wrote there and never stored as agreed."""
        links = self.store.link_index("sm", entity)
        if side is Side.CRM:
            crm_id = record.id if record.id in links else None
        else:
            crm_id = next((c for c, row in links.items() if row.flowtly_id == record.id), None)
        if crm_id is None or links[crm_id].crm_fp == TOMBSTONE:
            return False
        base = self.store.load_bases("sm", entity, [crm_id])[crm_id].get(field)
        return value == base and record.get(field) in (base, *own)

    def linked(self, side: Side, entity: EntityKind, record_id: str) -> bool:
        """Whether the store holds a live link of ``side``'s record ``record_id``."""
        links = self.store.link_index("sm", entity)
        if side is Side.CRM:
            row = links.get(record_id)
            return row is not None and row.crm_fp != TOMBSTONE
        return any(row.flowtly_id == record_id for row in links.values())

    @rule(side=st.sampled_from(Side), entity=st.sampled_from([CLIENT, CONTACT]), data=st.data())
    def delete(self, side: Side, entity: EntityKind, data: st.DataObject) -> None:
        records = self.live_clients(side) if entity is CLIENT else self.side(side).records(entity)
        if not records:
            return
        record = data.draw(st.sampled_from(records))
        if entity is CLIENT:
            for contact in self.side(side).records(CONTACT):
                if contact.get("company_id") == record.id:
                    self.side(side).remove(CONTACT, contact.id)
        if entity is CLIENT and side is Side.FLOWTLY:
            self.flowtly.put(record.replace(status="archived"))
        else:
            self.side(side).remove(entity, record.id)
        # A delete wins over an edit only when the other side did not edit; drop tracking.
        ident = self.identity(record)
        self.edits = {k: v for k, v in self.edits.items() if k[2] != ident}
        self.dirty = True

    # -- rules: runs, faults, crashes, a lost store ----------------------------------------
    @rule()
    def run(self) -> None:
        result = self.sync()
        assert result is not None
        self.check_run(result)

    def check_run(self, result: RunResult) -> None:
        """What a run that finished promises."""
        if result.clean:
            self.check_clean_run()

    @rule(side=st.sampled_from(Side), op=st.sampled_from([Op.CREATE, Op.UPDATE]))
    def run_with_failing_write(self, side: Side, op: Op) -> None:
        self.side(side).fail_next(op, exc=TransientError("injected"))
        result = self.sync()
        self.side(side).clear_faults()
        assert result is not None
        self.dirty = True

    @rule(
        side=st.sampled_from(Side),
        entity=st.sampled_from([CLIENT, CONTACT]),
        fault=st.sampled_from(ListingFault),
    )
    def run_with_broken_listing(self, side: Side, entity: EntityKind, fault: ListingFault) -> None:
        listed = self.side(side)
        held = len(listed.records(entity))
        served = listed.garbled_listings
        listed.garble_listing(entity, fault)
        try:
            result = self.sync()
        finally:
            listed.clear_faults()
        assert result is not None
        self.dirty = True
        self.check_unique_identities()
        if held < (2 if fault is ListingFault.REPEAT_ID else 1):
            return  # too few records for the fault to break anything: deletes may be due
        if listed.garbled_listings == served:
            return  # an incremental read: only complete listings arrive broken
        removed = [
            op
            for op in result.operations
            if op.entity is entity
            and op.target is side.other
            and op.action in (Action.DELETE, Action.ARCHIVE)
        ]
        assert not removed, removed
        assert any(
            w.entity == entity and w.side == side and w.reason.startswith("incomplete listing")
            for w in result.warnings
        ), result.warnings

    @rule(point=st.sampled_from(CRASH_POINTS))
    def run_and_crash(self, point: str) -> None:
        result = self.sync(crash=point)
        self.dirty = True
        if result is not None:
            # The run never reached the point (no write of that kind was due): it finished
            # like any run and relinked what it read, so it is held to the same promises.
            # Left unchecked, edits made after it would still be judged as if the store
            # were lost, and a later edit on Flowtly taken as a lost edit of the CRM.
            self.check_run(result)

    @rule()
    def lose_store(self) -> None:
        self.store.close()
        (self.tmp / "state.db").unlink()
        for extra in self.tmp.glob("state.db*"):
            extra.unlink()
        self.store = Store.open(f"sqlite:///{self.tmp}/state.db")
        # Until a clean run has relinked every record, edits meet no base (see below).
        self.unlinked = True
        self.based.clear()
        self.returned.clear()  # no base left to have come back to
        self.edits = {k: v for k, v in self.edits.items() if self.promised_without_base(k[0], v)}
        self.dirty = True

    @staticmethod
    def promised_without_base(side: Side, value: object) -> bool:
        # Without a base, two different values are a conflict, which the policy hands to
        # the CRM, and an empty field is filled from the other side: only the CRM's edits
        # to a value are still promised to survive.
        return side is Side.CRM and value is not None

    # -- the promises ---------------------------------------------------------------------
    def check_clean_run(self) -> None:
        self.check_unique_identities()
        for entity, names in ((CLIENT, CLIENT_FIELDS), (CONTACT, CONTACT_FIELDS)):
            self.check_links(entity, frozenset(names))
        self.check_no_lost_edit()
        again = asyncio.run(run_sync(self.job(), dry_run=True))
        assert again.operations == [], again.operations
        self.edits.clear()
        self.based.clear()
        self.dirty = False
        self.unlinked = False

    def check_unique_identities(self) -> None:
        for side in Side:
            for entity in (CLIENT, CONTACT):
                idents = [self.identity(r) for r in self.side(side).records(entity)]
                assert len(idents) == len(set(idents)), (side, entity, sorted(idents))

    def check_links(self, entity: EntityKind, names: frozenset[str]) -> None:
        links = self.store.link_index("sm", entity)
        bases = self.store.load_bases("sm", entity, links)
        crm_linked = {row.crm_id for row in links.values() if row.crm_fp != TOMBSTONE}
        fl_linked = {row.flowtly_id for row in links.values()}
        assert crm_linked == {r.id for r in self.crm.records(entity)}
        flowtly_ids = {r.id for r in self.flowtly.records(entity)}
        assert fl_linked <= flowtly_ids
        assert flowtly_ids - fl_linked <= self.orphaned(entity), flowtly_ids - fl_linked
        fl_to_crm_client = {
            row.flowtly_id: crm_id for crm_id, row in self.store.link_index("sm", CLIENT).items()
        }
        for crm_id, row in links.items():
            fl = self.flowtly.get(entity, row.flowtly_id)
            assert fl is not None
            assert row.flowtly_fp == fingerprint(entity, fl.fields, names)
            if row.crm_fp == TOMBSTONE:
                assert entity is CLIENT
                assert fl.get("status") == "archived"
                continue
            crm = self.crm.get(entity, crm_id)
            assert crm is not None
            assert row.crm_fp == fingerprint(entity, crm.fields, names)
            fl_values = dict(fl.fields)
            if entity is CONTACT:
                fl_values["company_id"] = fl_to_crm_client[str(fl.get("company_id"))]
            for name in names:
                assert crm.get(name) == fl_values.get(name), (entity, crm_id, name)
                assert bases[crm_id].get(name) == crm.get(name), (entity, crm_id, name)

    def orphaned(self, entity: EntityKind) -> set[str]:
        """Flowtly contacts of a client whose CRM twin was deleted (the client archived,
        its link a tombstone): there is no CRM company to create them under."""
        if entity is not CONTACT:
            return set()
        gone = {
            row.flowtly_id
            for row in self.store.link_index("sm", CLIENT).values()
            if row.crm_fp == TOMBSTONE
        }
        return {r.id for r in self.flowtly.records(CONTACT) if r.get("company_id") in gone}

    def check_no_lost_edit(self) -> None:
        by_identity: dict[tuple[EntityKind, str], Record] = {}
        for entity in (CLIENT, CONTACT):
            for record in self.crm.records(entity):
                by_identity[(entity, self.identity(record))] = record
        for (side, entity, ident, field), value in self.edits.items():
            record = by_identity.get((entity, ident))
            if record is None:
                continue  # deleted since; the delete rules apply
            other = (side.other, entity, ident, field)
            if other in self.edits and self.edits[other] != value:
                # POLICY: the CRM wins conflicts; but a side whose edit only brought the
                # field back to its base changed nothing, and the other side's edit stands.
                crm_key, fl_key = (
                    (Side.CRM, entity, ident, field),
                    (Side.FLOWTLY, entity, ident, field),
                )
                winner = (
                    Side.FLOWTLY
                    if crm_key in self.returned and fl_key not in self.returned
                    else Side.CRM
                )
                expected = self.edits[(winner, entity, ident, field)]
            else:
                expected = value
            assert record.get(field) == expected, (side, entity, ident, field)

    @precondition(lambda self: not self.dirty)
    @invariant()
    def quiet_when_clean(self) -> None:
        result = asyncio.run(run_sync(self.job(), dry_run=True))
        assert result.operations == []


TestEngineStateMachine = SyncMachine.TestCase
TestEngineStateMachine.settings = settings(
    max_examples=30,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
