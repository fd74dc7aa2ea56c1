"""The state store: migrations, links, intents, cursors, conflicts, rejections, runs.

Every store test runs on SQLite and on PostgreSQL (each PG test in its own schema, dropped
afterwards; skipped when the server is unreachable, except in CI where it must run).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from sync.errors import StoreError
from sync.model import EntityKind, Scalar, Side
from sync.store import (
    ConflictResolution,
    EventOutcome,
    RecordedChange,
    RunOutcome,
    Store,
)
from sync.store._migrate import head_revision
from sync.store.tables import metadata

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CLIENT = EntityKind.CLIENT
CONTACT = EntityKind.CONTACT


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Opened:
    url: str
    clock: FakeClock
    store: Store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def opened(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opened]:
    clock = FakeClock()
    url = (
        request.getfixturevalue("pg_url")
        if request.param == "postgres"
        else f"sqlite:///{tmp_path / 'state' / 'nested' / 'store.db'}"  # created on open
    )
    store = Store.open(url, clock=clock)
    try:
        yield Opened(url, clock, store)
    finally:
        store.close()


@pytest.fixture
def store(opened: Opened) -> Store:
    return opened.store


@pytest.fixture
def clock(opened: Opened) -> FakeClock:
    return opened.clock


def _schema_diffs(url: str) -> list[object]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


# -- migrations ----------------------------------------------------------------------------


def test_fresh_database_is_migrated_to_head(opened: Opened) -> None:
    assert _revision(opened.url) == head_revision() == "0003"
    assert opened.store.integrity_check() == "ok"


def test_the_head_revision_is_the_newest_script() -> None:
    from alembic.script import ScriptDirectory

    from sync.store._migrate import alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == head_revision()


def test_a_store_at_head_opens_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    Store.open(url).close()  # migrated: alembic runs
    probe = (
        "import sys\n"
        "from sync.store import Store\n"
        f"store = Store.open({url!r})\n"
        "assert store.integrity_check() == 'ok', store.integrity_check()\n"
        "store.close()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'mako'}))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert found.strip() == "[]"


def test_a_store_at_a_newer_revision_is_refused_by_name(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    Store.open(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    engine.dispose()
    with pytest.raises(StoreError, match=r"cannot migrate the store at .*0099"):
        Store.open(url)


def test_migrated_schema_matches_the_models(opened: Opened) -> None:
    assert _schema_diffs(opened.url) == []


def test_schema_comparison_detects_drift(opened: Opened) -> None:
    # The no-drift test above is only worth something if a drift shows up as a diff.
    drifted = sa.MetaData()
    for table in metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["link"].append_column(sa.Column("extra", sa.Text(), nullable=True))
    engine = sa.create_engine(opened.url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), drifted)
    finally:
        engine.dispose()
    assert [diff[0] for diff in diffs] == ["add_column"]


def test_reopening_is_idempotent_and_keeps_data(opened: Opened) -> None:
    with opened.store.transaction() as tx:
        tx.save_link("s", CLIENT, "c1", "f1", {"name": "Acme"}, "a", "b")
    opened.store.close()
    again = Store.open(opened.url, clock=opened.clock)
    try:
        assert _revision(opened.url) == head_revision()
        assert set(again.link_index("s", CLIENT)) == {"c1"}
        assert again.integrity_check() == "ok"
    finally:
        again.close()


def test_integrity_check_reports_a_schema_behind_head(opened: Opened) -> None:
    engine = sa.create_engine(opened.url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0000'")
    finally:
        engine.dispose()
    assert opened.store.integrity_check() == "schema at revision 0000, expected 0003"


def test_sqlite_pragmas_and_parent_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.db"
    with Store.open(f"sqlite:///{path}") as store:
        assert path.is_file()
        engine = store._db.engine
        with engine.connect() as conn:
            pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
        assert pragmas == {
            "journal_mode": "wal",
            "synchronous": 2,  # FULL
            "foreign_keys": 1,
            "busy_timeout": 15_000,
        }


def test_in_memory_store_works_across_calls() -> None:
    with Store.open("sqlite://") as store:
        with store.transaction() as tx:
            tx.save_link("s", CLIENT, "c1", "f1", {}, "a", "b")
        assert set(store.link_index("s", CLIENT)) == {"c1"}
        assert store.integrity_check() == "ok"


def test_open_reports_an_unusable_url() -> None:
    with pytest.raises(StoreError, match="not a valid SQLAlchemy URL"):
        Store.open("not a url")


def test_open_refuses_a_database_from_a_newer_version(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    Store.open(url).close()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match="9999"):
        Store.open(url)


# -- links ---------------------------------------------------------------------------------


def test_save_link_inserts_then_updates(store: Store, clock: FakeClock) -> None:
    with store.transaction() as tx:
        tx.save_link("s", CLIENT, "c1", "f1", {"name": "Acme", "due_days": 14}, "fa", "fb")
    first = store.link_index("s", CLIENT)["c1"]
    assert (first.entity, first.flowtly_id, first.crm_fp, first.flowtly_fp) == (
        CLIENT,
        "f1",
        "fa",
        "fb",
    )

    clock.advance(60)
    with store.transaction() as tx:
        tx.save_link("s", CLIENT, "c1", "f9", {"name": "Acme SA"}, "fa2", "fb2")
    second = store.link_index("s", CLIENT)["c1"]
    assert second.id == first.id
    assert (second.flowtly_id, second.crm_fp, second.flowtly_fp) == ("f9", "fa2", "fb2")
    assert store.load_bases("s", CLIENT, ["c1"]) == {"c1": {"name": "Acme SA"}}


def test_flowtly_id_linked_twice_is_an_error_and_changes_nothing(store: Store) -> None:
    with store.transaction() as tx:
        tx.save_link("s", CLIENT, "c1", "f1", {"name": "A"}, "a", "b")

    def link_twice() -> None:
        with store.transaction() as tx:
            tx.save_link("s", CLIENT, "c0", "f0", {}, "x", "y")
            tx.save_link("s", CLIENT, "c2", "f1", {}, "x", "y")

    with pytest.raises(StoreError, match="'f1' is already linked to crm id 'c1'"):
        link_twice()
    assert set(store.link_index("s", CLIENT)) == {"c1"}
    # The same flowtly id is free in another sync and in another entity.
    with store.transaction() as tx:
        tx.save_link("other", CLIENT, "c2", "f1", {}, "x", "y")
        tx.save_link("s", CONTACT, "c2", "f1", {}, "x", "y")


def test_delete_link(store: Store) -> None:
    with store.transaction() as tx:
        tx.save_link("s", CLIENT, "c1", "f1", {}, "a", "b")
        tx.save_link("s", CLIENT, "c2", "f2", {}, "a", "b")
    with store.transaction() as tx:
        tx.delete_link("s", CLIENT, "c1")
        tx.delete_link("s", CLIENT, "never-linked")
    assert set(store.link_index("s", CLIENT)) == {"c2"}
    with store.transaction() as tx:
        tx.save_link("s", CLIENT, "c3", "f1", {}, "a", "b")  # f1 is free again
    assert store.link_index("s", CLIENT)["c3"].flowtly_id == "f1"


def test_values_sent_to_a_link_are_kept_until_it_is_stored_again(store: Store) -> None:
    """What updates sent is noted before they go out and read back for the links asked;
    storing a link again (one at a time or many) forgets it."""
    from sync.store import LinkValues

    with store.transaction() as tx:
        tx.save_link("s", CLIENT, "c1", "f1", {"city": "A"}, "a", "b")
        tx.save_link("s", CLIENT, "c2", "f2", {"city": "A"}, "a", "b")
        tx.save_link("s", CLIENT, "c3", "f3", {"city": "A"}, "a", "b")
    sent = {Side.FLOWTLY: {"city": ("B", None)}, Side.CRM: {"due_days": (14,)}}
    with store.transaction() as tx:
        tx.note_sent("s", CLIENT, [("c1", sent), ("c2", sent), ("c3", sent)])
    assert store.load_sent("s", CLIENT, ["c1", "c2", "never-linked"]) == {"c1": sent, "c2": sent}
    with store.transaction() as tx:
        tx.save_link("s", CLIENT, "c1", "f1", {"city": "B"}, "a2", "b2")
        tx.save_links("s", CLIENT, [LinkValues("c2", "f2", {"city": "B"}, "a2", "b2")])
    assert store.load_sent("s", CLIENT, ["c1", "c2", "c3"]) == {"c3": sent}


def test_link_index_is_per_sync_and_entity(store: Store) -> None:
    with store.transaction() as tx:
        tx.save_link("s", CLIENT, "c1", "f1", {}, "a", "b")
        tx.save_link("s", CONTACT, "k1", "g1", {}, "a", "b")
        tx.save_link("t", CLIENT, "c2", "f2", {}, "a", "b")
    assert set(store.link_index("s", CLIENT)) == {"c1"}
    assert set(store.link_index("s", CONTACT)) == {"k1"}
    assert store.link_index("s", CONTACT)["k1"].entity is CONTACT
    assert store.link_index("nobody", CLIENT) == {}


def test_load_bases_round_trips_scalars_and_chunks(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sync.store.store._CHUNK", 7)  # several IN queries for 31 ids
    base: dict[str, Scalar] = {"name": "Zürich AG", "due_days": 0, "cyclic": False, "tin": None}
    with store.transaction() as tx:
        for n in range(60):
            tx.save_link("s", CLIENT, f"c{n}", f"f{n}", {**base, "position": n}, "a", "b")
    wanted = [f"c{n}" for n in range(0, 60, 2)] + ["unknown", "c0"]
    bases = store.load_bases("s", CLIENT, iter(wanted))
    assert len(bases) == 30
    assert "unknown" not in bases
    assert bases["c58"] == {**base, "position": 58}
    assert type(bases["c0"]["cyclic"]) is bool
    assert type(bases["c0"]["due_days"]) is int
    assert store.load_bases("s", CONTACT, ["c0"]) == {}


def test_transaction_rolls_back_everything_on_exception(store: Store) -> None:
    run_id = store.start_run("s", dry_run=False)

    def write_then_fail() -> None:
        with store.transaction() as tx:
            tx.save_link("s", CLIENT, "c1", "f1", {}, "a", "b")
            tx.add_intent("s", CLIENT, Side.FLOWTLY, "c2", None, "fp", run_id)
            tx.set_cursor("s", Side.CRM, CLIENT, {"id": "9"})
            tx.record_conflict("s", CLIENT, "c1", "f1", "name", "a", "b", "c")
            tx.record_rejection("s", CLIENT, Side.FLOWTLY, "c3", None, None, "bad", "fp")
            tx.add_event(
                run_id, CLIENT, "create", Side.FLOWTLY, "c1", "f1", EventOutcome.OK, [], None
            )
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()
    assert store.link_index("s", CLIENT) == {}
    assert store.pending_intents("s") == []
    assert store.get_cursor("s", Side.CRM, CLIENT) is None
    assert store.open_conflicts("s") == []
    assert store.rejections("s") == []
    assert store.run_events(run_id) == []


def test_transaction_object_is_dead_after_its_block(store: Store) -> None:
    with store.transaction() as tx:
        pass
    with pytest.raises(StoreError, match="after its block"):
        tx.delete_link("s", CLIENT, "c1")


# -- intents and cursors -------------------------------------------------------------------


def test_intents_are_pending_until_cleared(store: Store, clock: FakeClock) -> None:
    with store.transaction() as tx:
        first = tx.add_intent("s", CLIENT, Side.FLOWTLY, "c1", "vat:PL123", "p1", 7)
        second = tx.add_intent("s", CONTACT, Side.CRM, "f5", None, "p2", 7)
        third = tx.add_intent("s", CLIENT, Side.FLOWTLY, "c1", "vat:PL123", "p3", 8)
        tx.add_intent("other", CLIENT, Side.FLOWTLY, "c1", None, "p4", 9)
    pending = store.pending_intents("s")
    assert [i.id for i in pending] == [first, second, third]
    assert pending[0].entity is CLIENT
    assert pending[0].target is Side.FLOWTLY
    assert (pending[0].source_id, pending[0].natural_key, pending[0].payload_fp) == (
        "c1",
        "vat:PL123",
        "p1",
    )
    assert pending[0].run_id == 7
    assert pending[1].natural_key is None
    assert pending[0].created_at == T0

    with store.transaction() as tx:
        tx.clear_intent(second)
    assert [i.id for i in store.pending_intents("s")] == [first, third]
    with store.transaction() as tx:
        tx.clear_intents_for("s", CLIENT, Side.CRM, "c1")  # other target: untouched
    assert len(store.pending_intents("s")) == 2
    with store.transaction() as tx:
        tx.clear_intents_for("s", CLIENT, Side.FLOWTLY, "c1")
    assert store.pending_intents("s") == []
    assert len(store.pending_intents("other")) == 1


def test_cursors(store: Store) -> None:
    assert store.get_cursor("s", Side.CRM, CLIENT) is None
    with store.transaction() as tx:
        tx.set_cursor("s", Side.CRM, CLIENT, {"timestamp": "2024-05-01T00:00:00+00:00", "id": "7"})
        tx.set_cursor("s", Side.FLOWTLY, CLIENT, {"page": 3, "ids": ["a", "b"], "x": None})
    with store.transaction() as tx:
        tx.set_cursor("s", Side.CRM, CLIENT, {"timestamp": None, "id": "8"})
    assert store.get_cursor("s", Side.CRM, CLIENT) == {"timestamp": None, "id": "8"}
    assert store.get_cursor("s", Side.FLOWTLY, CLIENT) == {"page": 3, "ids": ["a", "b"], "x": None}
    assert store.get_cursor("s", Side.CRM, CONTACT) is None
    assert store.get_cursor("t", Side.CRM, CLIENT) is None


# -- conflicts and rejections --------------------------------------------------------------


def test_conflict_is_recorded_once_while_open(store: Store, clock: FakeClock) -> None:
    with store.transaction() as tx:
        cid = tx.record_conflict("s", CLIENT, "c1", "f1", "due_days", 14, 30, None)
        other = tx.record_conflict("s", CLIENT, "c1", "f1", "name", "A", "B", "C")
    clock.advance(3600)
    with store.transaction() as tx:
        again = tx.record_conflict("s", CLIENT, "c1", "f2", "due_days", 14, 45, True)
    assert again == cid != other
    conflicts = store.open_conflicts("s")
    assert [c.id for c in conflicts] == [cid, other]
    first = conflicts[0]
    assert (first.base_value, first.crm_value, first.flowtly_value) == (14, 45, True)
    assert first.flowtly_id == "f2"
    assert first.detected_at == T0  # first detection is kept
    assert first.is_open
    assert first.resolution is None
    assert store.open_conflicts("s", CONTACT) == []
    assert [c.id for c in store.open_conflicts("s", CLIENT)] == [cid, other]


def test_conflict_values_keep_their_json_type(store: Store) -> None:
    with store.transaction() as tx:
        cid = tx.record_conflict("s", CLIENT, "c1", "f1", "x", None, "1", 1)
        bid = tx.record_conflict("s", CLIENT, "c1", "f1", "y", "", True, "true")
    by_id = {c.id: c for c in store.open_conflicts("s")}
    assert (by_id[cid].base_value, by_id[cid].crm_value, by_id[cid].flowtly_value) == (
        None,
        "1",
        1,
    )
    assert type(by_id[cid].flowtly_value) is int
    assert by_id[bid].base_value == ""
    assert by_id[bid].crm_value is True
    assert by_id[bid].flowtly_value == "true"


def test_resolve_conflict(store: Store, clock: FakeClock) -> None:
    with store.transaction() as tx:
        by_crm = tx.record_conflict("s", CLIENT, "c1", "f1", "name", "A", "B", "C")
        by_value = tx.record_conflict("s", CLIENT, "c1", "f1", "city", "X", "Y", "Z")
        by_flowtly = tx.record_conflict("s", CLIENT, "c2", "f2", "city", "X", "Y", None)
    clock.advance(10)
    store.resolve_conflict(by_crm, ConflictResolution.CRM, None, "alice")
    store.resolve_conflict(by_value, ConflictResolution.VALUE, "Kraków", "bob")
    store.resolve_conflict(by_flowtly, ConflictResolution.FLOWTLY, "ignored", "carol")
    assert store.open_conflicts("s") == []

    crm = store.get_conflict(by_crm)
    assert crm is not None
    assert not crm.is_open
    assert crm.resolution is ConflictResolution.CRM
    assert (crm.resolved_value, crm.resolved_by) == ("B", "alice")
    assert crm.resolved_at == T0 + timedelta(seconds=10)
    value = store.get_conflict(by_value)
    assert value is not None
    assert value.resolved_value == "Kraków"
    flowtly = store.get_conflict(by_flowtly)
    assert flowtly is not None
    assert flowtly.resolved_value is None

    with pytest.raises(StoreError, match="already resolved"):
        store.resolve_conflict(by_crm, ConflictResolution.FLOWTLY, None, "mallory")
    with pytest.raises(StoreError, match="no conflict"):
        store.resolve_conflict(999_999, ConflictResolution.CRM, None, "x")
    assert store.get_conflict(999_999) is None

    # Detected again after resolution: a new open conflict, the resolved one stays.
    with store.transaction() as tx:
        reopened = tx.record_conflict("s", CLIENT, "c1", "f1", "name", "B", "D", "E")
    assert reopened != by_crm
    assert [c.id for c in store.open_conflicts("s")] == [reopened]


def test_rejections(store: Store, clock: FakeClock) -> None:
    with store.transaction() as tx:
        tx.record_rejection("s", CLIENT, Side.FLOWTLY, "c1", "tin", "123", "bad TIN", "fp1")
        tx.record_rejection("s", CONTACT, Side.CRM, "k1", None, None, "no email", "fp2")
    clock.advance(5)
    with store.transaction() as tx:
        tx.record_rejection("s", CLIENT, Side.FLOWTLY, "c1", "name", None, "too long", "fp3")
    rows = store.rejections("s")
    assert [(r.entity, r.side, r.record_id) for r in rows] == [
        (CLIENT, Side.FLOWTLY, "c1"),
        (CONTACT, Side.CRM, "k1"),
    ]
    assert (rows[0].field, rows[0].value, rows[0].reason, rows[0].source_fp) == (
        "name",
        None,
        "too long",
        "fp3",
    )
    assert rows[0].detected_at == T0 + timedelta(seconds=5)
    assert [r.record_id for r in store.rejections("s", CONTACT)] == ["k1"]
    assert store.rejection_fps("s", CLIENT, Side.FLOWTLY) == {"c1": "fp3"}
    assert store.rejection_fps("s", CLIENT, Side.CRM) == {}
    with store.transaction() as tx:
        tx.clear_rejection("s", CLIENT, Side.FLOWTLY, "c1")
    assert store.rejection_fps("s", CLIENT, Side.FLOWTLY) == {}
    assert [r.record_id for r in store.rejections("s")] == ["k1"]


# -- runs and events -----------------------------------------------------------------------


def test_runs_and_events(store: Store, clock: FakeClock) -> None:
    first = store.start_run("s", dry_run=True)
    clock.advance(30)
    store.finish_run(first, RunOutcome.OK, {"client": {"create": 2}}, None)
    clock.advance(30)
    second = store.start_run("s", dry_run=False)
    other = store.start_run("t", dry_run=False)

    runs = store.recent_runs("s")
    assert [r.id for r in runs] == [second, first]
    assert runs[0].outcome is RunOutcome.RUNNING
    assert runs[0].finished_at is None
    assert runs[0].summary == {}
    assert runs[0].pid == os.getpid()
    assert runs[0].host
    done = runs[1]
    assert done.dry_run is True
    assert done.outcome is RunOutcome.OK
    assert done.summary == {"client": {"create": 2}}
    assert (done.started_at, done.finished_at) == (T0, T0 + timedelta(seconds=30))
    assert [r.id for r in store.recent_runs(limit=2)] == [other, second]
    assert len(store.recent_runs()) == 3

    store.finish_run(second, RunOutcome.FAILED, {}, "Flowtly said 401")
    assert store.recent_runs("s", limit=1)[0].error == "Flowtly said 401"
    with pytest.raises(StoreError, match="no run"):
        store.finish_run(999_999, RunOutcome.OK, {}, None)

    with store.transaction() as tx:
        tx.add_event(
            second,
            CLIENT,
            "update",
            Side.FLOWTLY,
            "c1",
            "f1",
            EventOutcome.OK,
            [RecordedChange("name", "A", "B"), RecordedChange("due_days", None, 14)],
            None,
        )
        tx.add_event(second, CONTACT, "conflict", None, "k1", None, EventOutcome.SKIPPED, [], "x")
    events = store.run_events(second)
    assert [(e.entity, e.action, e.target, e.outcome) for e in events] == [
        (CLIENT, "update", Side.FLOWTLY, EventOutcome.OK),
        (CONTACT, "conflict", None, EventOutcome.SKIPPED),
    ]
    assert events[0].changes == (
        RecordedChange("name", "A", "B"),
        RecordedChange("due_days", None, 14),
    )
    assert (events[1].flowtly_id, events[1].message) == (None, "x")
    assert events[0].at == T0 + timedelta(seconds=60)
    assert store.run_events(first) == []


def test_event_for_an_unknown_run_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="store write failed"), store.transaction() as tx:
        tx.add_event(424242, CLIENT, "create", Side.CRM, None, None, EventOutcome.OK, [], None)


def test_timestamps_are_utc_whatever_the_clock_zone(store: Store, clock: FakeClock) -> None:
    clock.now = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    run_id = store.start_run("s", dry_run=False)
    started = store.recent_runs("s")[0].started_at
    assert started == T0
    assert started.utcoffset() == timedelta(0)
    clock.now = datetime(2024, 5, 1, 12, 0)  # naive: refused rather than guessed
    with pytest.raises(StoreError, match="naive datetime"):
        store.finish_run(run_id, RunOutcome.OK, {}, None)


def test_save_links_upserts_many_in_one_go_and_refuses_a_clash(store: Store) -> None:
    from sync.errors import StoreError as _StoreError
    from sync.store import LinkValues

    client = EntityKind.CLIENT
    with store.transaction() as tx:
        tx.save_links(
            "s",
            client,
            [
                LinkValues("C1", "1", {"name": "A"}, "a1", "b1"),
                LinkValues("C2", "2", {"name": "B"}, "a2", "b2"),
            ],
        )
    with store.transaction() as tx:
        tx.save_links("s", client, [LinkValues("C1", "1", {"name": "A2"}, "a3", "b3")])
    index = store.link_index("s", client)
    assert {k: (v.flowtly_id, v.crm_fp) for k, v in index.items()} == {
        "C1": ("1", "a3"),
        "C2": ("2", "a2"),
    }
    assert store.load_bases("s", client, ["C1"]) == {"C1": {"name": "A2"}}
    with pytest.raises(_StoreError), store.transaction() as tx:
        tx.save_links("s", client, [LinkValues("C3", "2", {}, "x", "y")])
    assert set(store.link_index("s", client)) == {"C1", "C2"}


# -- binding -------------------------------------------------------------------------------


def test_binding_is_empty_until_bound_then_replaced_per_side(
    store: Store, clock: FakeClock
) -> None:
    assert store.binding("s") == {}
    store.bind("s", {Side.CRM: "files:/crm", Side.FLOWTLY: "flowtly:api.example/organizations/1"})
    clock.advance(60)
    store.bind("other", {Side.CRM: "files:/elsewhere"})
    bound = store.binding("s")
    assert {side: row.identity for side, row in bound.items()} == {
        Side.CRM: "files:/crm",
        Side.FLOWTLY: "flowtly:api.example/organizations/1",
    }
    assert {row.recorded_at for row in bound.values()} == {T0}
    assert all(row.sync == "s" and row.side is side for side, row in bound.items())

    store.bind("s", {Side.FLOWTLY: "flowtly:api.example/organizations/2"})
    again = store.binding("s")
    assert again[Side.CRM] == bound[Side.CRM]
    assert again[Side.FLOWTLY].identity == "flowtly:api.example/organizations/2"
    assert again[Side.FLOWTLY].recorded_at == T0 + timedelta(seconds=60)
    assert {row.identity for row in store.binding("other").values()} == {"files:/elsewhere"}


def test_a_store_of_the_first_schema_keeps_its_links_and_has_no_binding(
    opened: Opened,
) -> None:
    # As a store made before bindings existed: schema 0001, links, no binding table.
    from alembic import command

    from sync.store._migrate import alembic_config

    opened.store.close()
    engine = sa.create_engine(opened.url)
    try:
        with engine.begin() as conn:
            for table in ("binding", "lock", "run_event", "run", "rejection", "conflict"):
                conn.exec_driver_sql(f"DROP TABLE {table}")
            for table in ("cursor", "intent", "link", "alembic_version"):
                conn.exec_driver_sql(f"DROP TABLE {table}")
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0001")
            conn.exec_driver_sql(
                "INSERT INTO link (sync, entity, crm_id, flowtly_id, base, crm_fp, flowtly_fp,"
                " created_at, updated_at) VALUES ('s', 'client', 'C1', '1', '{}', 'a', 'b',"
                " '2024-05-01 12:00:00', '2024-05-01 12:00:00')"
            )
    finally:
        engine.dispose()
    assert _revision(opened.url) == "0001"
    upgraded = Store.open(opened.url, clock=opened.clock)
    try:
        assert _revision(opened.url) == head_revision()
        assert set(upgraded.link_index("s", CLIENT)) == {"C1"}
        assert upgraded.binding("s") == {}
    finally:
        upgraded.close()
