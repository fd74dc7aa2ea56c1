"""The engine state machine with an incremental CRM: cursors, periodic complete listings.

The CRM side reads only what changed since its cursor and has no deletes feed, so a
record deleted there is found by the next complete listing only (``full_scan`` after a
day of the machine's clock). Every rule of `SyncMachine` applies (edits, deletes, failing
writes, crashes, a lost store), plus the passing of time. The promises:
- after a clean run that listed the CRM completely, every promise of `SyncMachine` holds:
  deleted records are unlinked and their Flowtly records archived or deleted;
- after a clean run that read only changes, every live record is linked and agrees, and a
  link to a missing CRM record is one whose delete no complete listing has seen yet;
- a run is clean at least once: after the last rule, a day passes and a run must be clean
  (and then complete) with no fault injected. Clean runs are counted per example.

Edits are promised as `SyncMachine` promises them, with two refinements it lacks: an edit
synced by a run that was not checked (a failing write, a crash) is followed legitimately
by a later edit of the same field on the other side, and while the store is lost (until a
clean run relinks everything) only the CRM's edits to a value survive a conflict.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule
from test_engine_state_machine import (
    CLIENT,
    CLIENT_FIELDS,
    CONTACT,
    CONTACT_FIELDS,
    WORDS,
    SyncMachine,
)

from connectors.base import ChangeBatch, Cursor
from connectors.memory import IncrementalMemoryConnector, ListingFault
from sync.engine.detect import TOMBSTONE
from sync.engine.job import LAST_FULL_SCAN
from sync.engine.run import RunResult, SyncJob, run_sync
from sync.model import EntityKind, Record, Side

FULL_SCAN = timedelta(hours=24)
FIELDS = {CLIENT: CLIENT_FIELDS, CONTACT: CONTACT_FIELDS}


class WatchedCrm(IncrementalMemoryConnector):
    """Remembers, per entity, whether its last read was a complete listing; the listings
    `get_many` and `absent` make to look records up by id count neither as reads nor as
    broken listings served (nothing is inferred from them)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.complete: dict[EntityKind, bool] = {}
        self.fetching = False
        self.garbled_lookups = 0

    async def read(
        self, entity: EntityKind, since: Cursor | None = None
    ) -> AsyncIterator[ChangeBatch]:
        if not self.fetching:
            self.complete[entity] = since is None
        async for batch in super().read(entity, since):
            yield batch

    @property
    def garbled_listings(self) -> int:
        """Broken listings served to the engine's reads, not to its lookups by id."""
        return super().garbled_listings - self.garbled_lookups

    @contextlib.contextmanager
    def _lookup(self) -> Iterator[None]:
        served = super().garbled_listings
        self.fetching = True
        try:
            yield
        finally:
            self.fetching = False
            self.garbled_lookups += super().garbled_listings - served

    async def get_many(
        self, entity: EntityKind, ids: Sequence[str], *, limit: asyncio.Semaphore | None = None
    ) -> list[Record]:
        with self._lookup():
            return await super().get_many(entity, ids, limit=limit)

    async def absent(self, entity: EntityKind, ids: Sequence[str]) -> set[str] | None:
        with self._lookup():
            return await super().absent(entity, ids)


class IncrementalSyncMachine(SyncMachine):
    def __init__(self) -> None:
        super().__init__()
        self.crm: WatchedCrm = WatchedCrm(
            entities=(CLIENT, CONTACT),
            fields=FIELDS,
            id_prefix="c",
            buffered=True,
            deletes_feed=(),
        )
        self.now = datetime(2024, 5, 1, tzinfo=UTC)
        self.clean_runs = 0
        self.runs = 0
        self.edited_at: dict[tuple[Side, EntityKind, str, str], int] = {}
        self.unbased = False

    def job(self) -> SyncJob:
        job = super().job()
        job.full_scan = FULL_SCAN
        job.clock = lambda: self.now
        return job

    def teardown(self) -> None:
        try:
            self.crm.clear_faults()
            self.flowtly.clear_faults()
            self.now += FULL_SCAN
            result = self.sync()
            assert result is not None
            assert result.clean, (result.errors, self.clean_runs)
            assert self.listed_whole(), "a day passed: the CRM was listed completely"
            self.clean_runs += 1
            self.check_clean_run()
            event(f"clean runs: {min(self.clean_runs, 5)}{'+' if self.clean_runs > 5 else ''}")
        finally:
            super().teardown()

    def sync(self, crash: str | None = None) -> RunResult | None:
        self.crm.complete.clear()
        self.runs += 1
        return super().sync(crash)

    @rule(
        side=st.sampled_from(Side),
        entity=st.sampled_from([CLIENT, CONTACT]),
        data=st.data(),
        value=WORDS,
    )
    def edit(self, side: Side, entity: EntityKind, data: st.DataObject, value: str | None) -> None:
        """`SyncMachine.edit`, remembering how many runs had happened before the edit."""
        before = dict(self.edits)
        super().edit(side, entity, data, value)
        for key, edited in self.edits.items():
            if key not in before or before[key] != edited:
                self.edited_at[key] = self.runs

    @rule()
    def lose_store(self) -> None:
        super().lose_store()
        self.unbased = True

    def check_no_lost_edit(self) -> None:
        """`SyncMachine.check_no_lost_edit` over the edits still promised (module docstring)."""
        promised = {}
        for key, value in self.edits.items():
            side, entity, ident, field = key
            if self.unbased and key not in self.based and (side is Side.FLOWTLY or value is None):
                continue  # made while the store was lost, on a record with no link yet
            other = (side.other, entity, ident, field)
            both = other in self.edits and self.edits[other] != value
            if both and self.edited_at.get(key) != self.edited_at.get(other):
                continue  # a run in between may have synced the first: either may stand
            promised[key] = value
        self.edits = promised
        super().check_no_lost_edit()
        self.unbased = False

    def listed_whole(self) -> bool:
        """Whether the last run read the CRM completely (every entity), and stored so."""
        for entity in (CLIENT, CONTACT):
            if not self.crm.complete.get(entity, False):
                return False
            saved = self.store.get_cursor("sm", Side.CRM, entity)
            assert saved is None or saved.get(LAST_FULL_SCAN) == self.now.isoformat()
        return True

    @rule(hours=st.integers(min_value=1, max_value=30))
    def time_passes(self, hours: int) -> None:
        self.now += timedelta(hours=hours)
        self.dirty = True  # a complete listing may be due, finding deletes

    def check_run(self, result: RunResult) -> None:
        """Replaces `SyncMachine.check_run`: its promises hold only after a complete listing."""
        if not result.clean:
            return
        self.clean_runs += 1
        if self.listed_whole():
            self.check_clean_run()
        else:
            self.check_changes_synced()

    def under_unseen_delete(self, entity: EntityKind) -> set[str]:
        """Flowtly contacts of a client whose CRM twin is gone though still linked: no
        complete listing has seen the delete yet, so they wait unlinked (not created in
        the CRM under the deleted id)."""
        if entity is not CONTACT:
            return set()
        live = {record.id for record in self.crm.records(CLIENT)}
        gone = {
            row.flowtly_id
            for crm_id, row in self.store.link_index("sm", CLIENT).items()
            if row.crm_fp != TOMBSTONE and crm_id not in live
        }
        return {r.id for r in self.flowtly.records(CONTACT) if r.get("company_id") in gone}

    def check_changes_synced(self) -> None:
        """What a clean run promises when it read only the CRM's changes."""
        for entity in (CLIENT, CONTACT):
            links = self.store.link_index("sm", entity)
            live = {record.id for record in self.crm.records(entity)}
            linked = {crm_id for crm_id, row in links.items() if row.crm_fp != TOMBSTONE}
            assert live <= linked, (entity, live - linked)
            # Linked but gone: deleted in the CRM since its last complete listing.
            for crm_id in linked - live:
                assert self.flowtly.get(entity, links[crm_id].flowtly_id) is not None
            assert {row.flowtly_id for row in links.values()} >= {
                r.id for r in self.flowtly.records(entity)
            } - self.orphaned(entity) - self.under_unseen_delete(entity)
        self.check_no_lost_edit()
        again = asyncio.run(run_sync(self.job(), dry_run=True))
        assert again.operations == [], again.operations
        self.edits.clear()
        self.dirty = False


TestIncrementalStateMachine = IncrementalSyncMachine.TestCase
TestIncrementalStateMachine.settings = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class _Drawn:
    """Stands in for hypothesis' ``data()`` in a replayed sequence: draws given values."""

    def __init__(self, *values: object) -> None:
        self.values = list(values)

    def draw(self, strategy: object) -> object:
        return self.values.pop(0)


def test_an_edit_after_a_run_that_never_reached_its_crash_point_is_promised() -> None:
    """A sequence the machine once judged wrongly, replayed step by step.

    The store is lost, a CRM client is created and its city edited to gamma; a run meant
    to crash after a CRM write has no CRM write to make, so it finishes and links the
    pair with gamma as their base. Flowtly then edits the city to alpha: a later edit on
    the other side, which the next run rightly carries to the CRM.
    """
    machine = IncrementalSyncMachine()
    try:
        machine.lose_store()
        machine.create_client(side=Side.CRM, name="alpha", city="alpha")
        (client,) = machine.crm.records(CLIENT)
        machine.edit(Side.CRM, CLIENT, _Drawn(client, "city"), "gamma")
        machine.run_and_crash(point="after_write_crm")
        (twin,) = machine.flowtly.records(CLIENT)
        machine.edit(Side.FLOWTLY, CLIENT, _Drawn(twin, "city"), "alpha")
        machine.run()
        assert machine.crm.records(CLIENT)[0].get("city") == "alpha"
    finally:
        # Only the files: the machine's own teardown records hypothesis events.
        SyncMachine.teardown(machine)


def test_a_lost_store_and_broken_listings_never_duplicate_crm_contacts() -> None:
    """A sequence the machine once found duplicating CRM contacts, replayed step by step.

    Three CRM contacts reach Flowtly in a run that crashes right after those writes; the
    store (with its links and intents) is then lost. A run over a Flowtly listing missing
    its last page, a CRM edit, and a run over a CRM listing with an id repeated in place
    of another follow. Neither listing is evidence enough to create a contact in the CRM:
    every Flowtly contact is a twin of a CRM one.
    """
    machine = IncrementalSyncMachine()
    try:
        machine.create_client(side=Side.CRM, name="alpha", city="alpha")
        machine.run()
        for _ in range(3):
            machine.create_contact(Side.CRM, _Drawn(machine.crm.records(CLIENT)[0], None))
        machine.run_and_crash(point="after_write_flowtly")
        machine.lose_store()
        machine.run_with_broken_listing(Side.FLOWTLY, CONTACT, ListingFault.DROP_PAGE)
        (first, *_) = machine.crm.records(CONTACT)
        machine.edit(Side.CRM, CONTACT, _Drawn(first, "title"), "alpha")
        machine.run_with_broken_listing(Side.CRM, CONTACT, ListingFault.REPEAT_ID)
        emails = sorted(str(record.get("email")) for record in machine.crm.records(CONTACT))
        assert emails == ["p2@x.eu", "p3@x.eu", "p4@x.eu"]
    finally:
        SyncMachine.teardown(machine)


def test_a_client_recreated_in_the_crm_by_a_crashed_run_is_not_created_again() -> None:
    """A sequence the machine once found duplicating a CRM client, replayed step by step.

    A client deleted in the CRM is archived in Flowtly by a run that crashes before
    storing so; the next run took the archive for a Flowtly edit, recreated the client in
    the CRM and crashed after the CRM committed it. The run after that neither knew the
    recreated client (its link was never stored) nor looked at the recreate's intent, and
    created it once more. Now the archive agrees with the delete, and a recreate that
    landed is linked through its intent.
    """
    machine = IncrementalSyncMachine()
    try:
        machine.create_client(side=Side.CRM, name="alpha", city="alpha")
        machine.run()
        machine.create_client(side=Side.FLOWTLY, name="alpha", city="alpha")
        (client,) = machine.crm.records(CLIENT)
        machine.delete(Side.CRM, CLIENT, _Drawn(client))
        machine.time_passes(hours=34)
        (twin, _) = machine.flowtly.records(CLIENT)
        machine.create_contact(Side.FLOWTLY, _Drawn(twin, "alpha"))
        machine.time_passes(hours=1)
        machine.run_and_crash(point="after_intent")
        machine.run_and_crash(point="after_intent")
        machine.run_and_crash(point="after_write_crm")
        machine.run_and_crash(point="after_crm_commit")
        machine.run()
    finally:
        SyncMachine.teardown(machine)


def _contact_added_to_a_twin_the_crm_deleted(machine: IncrementalSyncMachine, title: str) -> None:
    """A client synced, then deleted in the CRM, then given a contact in Flowtly."""
    machine.create_client(side=Side.CRM, name="alpha", city="alpha")
    machine.run()
    (client,) = machine.crm.records(CLIENT)
    machine.delete(Side.CRM, CLIENT, _Drawn(client))
    (twin,) = machine.flowtly.records(CLIENT)
    machine.create_contact(Side.FLOWTLY, _Drawn(twin, title))


def test_a_flowtly_contact_of_a_client_deleted_in_the_crm_is_not_created_there() -> None:
    """The CRM deletes a client; a contact is added to its Flowtly twin before the run.
    The run archives the twin, and the contact has no CRM company to go under: it is named
    in a warning, not created under the deleted company's id, and holds no cursor back."""
    machine = IncrementalSyncMachine()
    try:
        _contact_added_to_a_twin_the_crm_deleted(machine, "alpha")
        machine.time_passes(hours=25)
        result = machine.sync()
        assert result is not None
        assert result.clean, result.errors
        assert machine.crm.records(CONTACT) == []
        (contact,) = machine.flowtly.records(CONTACT)
        assert [(w.record_id, w.field) for w in result.warnings if w.entity == "contact"] == [
            (contact.id, "company_id")
        ]
        assert machine.listed_whole()
        machine.check_clean_run()
    finally:
        SyncMachine.teardown(machine)


def test_a_contact_of_a_client_the_crm_deleted_unseen_waits_and_follows_its_recreate() -> None:
    """As above, but the run after the contact is added reads the CRM from its cursor and
    does not see the delete yet. The contact's company is confirmed by id: it is gone, so
    the contact is not created in the CRM under the deleted id, but named in a warning. A
    full scan then sees the delete, the twin's edit wins, and the client is created in the
    CRM again, under a new id: the contact goes to the CRM under that client."""
    machine = IncrementalSyncMachine()
    try:
        _contact_added_to_a_twin_the_crm_deleted(machine, "beta")
        result = machine.sync()
        assert result is not None
        assert result.clean, result.errors
        assert not machine.listed_whole()
        assert machine.crm.records(CONTACT) == []
        (contact,) = machine.flowtly.records(CONTACT)
        assert [(w.record_id, w.field) for w in result.warnings if w.entity == "contact"] == [
            (contact.id, "company_id")
        ]
        machine.check_changes_synced()
        (twin,) = machine.flowtly.records(CLIENT)
        machine.edit(Side.FLOWTLY, CLIENT, _Drawn(twin, "city"), "delta")
        machine.time_passes(hours=25)
        machine.run()
        (client,) = machine.crm.records(CLIENT)
        (crm_contact,) = machine.crm.records(CONTACT)
        assert crm_contact.get("company_id") == client.id
    finally:
        SyncMachine.teardown(machine)


def test_companies_a_broken_listing_cannot_confirm_are_not_taken_for_gone() -> None:
    """A sequence the machine found holding a contact back wrongly, replayed step by step.

    Two clients are linked by a first run after the store was lost; a contact is added to
    one's Flowtly twin. The next run reads the CRM's clients from their cursor, so the
    contact's company is looked up in a complete listing, which arrives with its last page
    empty. That listing proves nothing either way: the contact waits, named in a warning
    that does not call its company gone, and the next run creates it under its company.
    """
    machine = IncrementalSyncMachine()
    try:
        machine.create_client(side=Side.FLOWTLY, name="alpha", city="alpha")
        machine.create_client(side=Side.CRM, name="alpha", city="alpha")
        machine.lose_store()
        machine.run()
        twin = machine.flowtly.get(CLIENT, "fnew1")
        assert twin is not None
        machine.create_contact(Side.FLOWTLY, _Drawn(twin, "alpha"))
        machine.crm.garble_listing(CLIENT, ListingFault.DROP_PAGE)
        result = machine.sync()
        machine.crm.clear_faults()
        assert result is not None
        assert machine.crm.records(CONTACT) == []
        (contact,) = machine.flowtly.records(CONTACT)
        waiting = [w for w in result.warnings if w.entity == "contact"]
        assert [(w.record_id, w.field) for w in waiting] == [(contact.id, "company_id")]
        assert "could not confirm" in waiting[0].reason
        assert any(
            w.entity == "client" and w.reason.startswith("incomplete listing")
            for w in result.warnings
        )
        machine.run()
        (created,) = machine.crm.records(CONTACT)
        assert created.get("company_id") in machine.store.link_index("sm", CLIENT)
    finally:
        SyncMachine.teardown(machine)


def test_a_contact_whose_company_a_broken_listing_cannot_confirm_is_not_duplicated() -> None:
    """A sequence the machine found duplicating a CRM contact, replayed step by step.

    The CRM deletes a client; its Flowtly twin is given a contact. A run that reads the
    CRM's clients from their cursor looks the contact's company up in a listing that
    arrives broken. Had the contact been created under that (deleted) company, it would
    have stayed there; the store is then lost, a run with no links to go by creates the
    client in the CRM again, and the Flowtly contact, matched only within its company,
    would have been created a second time. It waits instead, and is created once, under
    the new client.
    """
    machine = IncrementalSyncMachine()

    def record(side: Side, entity: EntityKind, record_id: str) -> Record:
        found = machine.side(side).get(entity, record_id)
        assert found is not None, record_id
        return found

    try:
        machine.create_client(side=Side.FLOWTLY, name="alpha", city="alpha")
        machine.create_client(side=Side.CRM, name="alpha", city="alpha")
        machine.lose_store()
        machine.run()
        machine.delete(Side.CRM, CLIENT, _Drawn(record(Side.CRM, CLIENT, "c1")))
        machine.run()
        machine.create_contact(Side.FLOWTLY, _Drawn(record(Side.FLOWTLY, CLIENT, "fnew1"), "a"))
        machine.time_passes(hours=14)
        machine.run_with_broken_listing(Side.CRM, CLIENT, ListingFault.DROP_PAGE)
        assert machine.crm.records(CONTACT) == []
        machine.lose_store()
        machine.run_and_crash(point="after_crm_commit")
        machine.time_passes(hours=26)
        machine.run_and_crash(point="after_crm_commit")
        machine.time_passes(hours=24)
        machine.run()
        (contact,) = machine.crm.records(CONTACT)
        assert contact.get("company_id") in {r.id for r in machine.crm.records(CLIENT)}
    finally:
        SyncMachine.teardown(machine)


def test_a_contact_held_back_from_the_crm_is_still_matched_to_its_twin() -> None:
    """A sequence the plain machine found duplicating Flowtly contacts, replayed.

    A client and its contact are synced; the store is lost. The next run's CRM client
    listing arrives broken, so the company of the Flowtly contact (unlinked now) cannot be
    confirmed and the contact must not be created in the CRM. It must still be matched:
    taken out of the run, it let its CRM twin be created in Flowtly a second time.
    """
    machine = IncrementalSyncMachine()
    try:
        machine.create_client(side=Side.CRM, name="alpha", city="alpha")
        machine.create_client(side=Side.CRM, name="beta", city="beta")
        machine.run()
        first = machine.crm.records(CLIENT)[0]
        machine.create_contact(Side.CRM, _Drawn(first, "alpha"))
        machine.run()
        machine.lose_store()
        # The first client listed stands in for the last: the listing is incomplete.
        machine.run_with_broken_listing(Side.CRM, CLIENT, ListingFault.REPEAT_ID)
        assert len(machine.flowtly.records(CONTACT)) == 1
        assert len(machine.crm.records(CONTACT)) == 1
    finally:
        SyncMachine.teardown(machine)


def test_a_crm_edit_back_to_the_base_after_a_run_stopped_mid_update_is_not_lost() -> None:
    """A sequence the machine found losing a CRM edit, replayed step by step.

    A contact's title, synced as beta, is edited to delta in the CRM; the run that carries
    it to Flowtly stops right after Flowtly took the update, before the link (and its new
    base) was stored. The CRM's title is then edited back to beta, the stored base. Flowtly's
    delta is the run's own write, not an edit made there: the CRM's beta must win.
    """
    machine = IncrementalSyncMachine()
    try:
        machine.create_client(side=Side.CRM, name="alpha", city="alpha")
        (client,) = machine.crm.records(CLIENT)
        machine.create_contact(Side.CRM, _Drawn(client, "beta"))
        machine.run()
        (contact,) = machine.crm.records(CONTACT)
        machine.edit(Side.CRM, CONTACT, _Drawn(contact, "title"), "delta")
        machine.run_and_crash(point="after_write_flowtly")
        (twin,) = machine.flowtly.records(CONTACT)
        assert twin.get("title") == "delta"
        (contact,) = machine.crm.records(CONTACT)
        machine.edit(Side.CRM, CONTACT, _Drawn(contact, "title"), "beta")
        machine.run()
        assert [r.get("title") for r in machine.flowtly.records(CONTACT)] == ["beta"]
    finally:
        SyncMachine.teardown(machine)


def test_an_edit_back_to_the_synced_value_is_no_conflict_with_the_other_sides_edit() -> None:
    """A sequence the machines judged wrongly, replayed step by step.

    A synced client's city is edited in the CRM and then back to its synced value, and
    edited in Flowtly too. The CRM holds what both last agreed: only Flowtly changed, and
    its value is synced to the CRM. No conflict, so the policy's winner (the CRM) does not
    come into it.
    """
    machine = IncrementalSyncMachine()
    try:
        machine.create_client(side=Side.CRM, name="alpha", city="alpha")
        machine.run()
        machine.edit(Side.CRM, CLIENT, _Drawn(machine.crm.records(CLIENT)[0], "city"), "beta")
        machine.edit(Side.CRM, CLIENT, _Drawn(machine.crm.records(CLIENT)[0], "city"), "alpha")
        (twin,) = machine.flowtly.records(CLIENT)
        machine.edit(Side.FLOWTLY, CLIENT, _Drawn(twin, "city"), "gamma")
        machine.run()
        assert machine.crm.records(CLIENT)[0].get("city") == "gamma"
    finally:
        SyncMachine.teardown(machine)
