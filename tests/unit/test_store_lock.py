"""The per-sync run lock: flock next to a SQLite file, advisory lock on PostgreSQL.

Another process takes the lock (a child Python that prints "locked" once it holds it and
keeps it until its stdin closes), so no test sleeps or polls.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from sync.errors import LockHeld, StoreError
from sync.store import Store
from sync.store._lock import lock_file_path, pg_lock_key

_HOLDER = """
import sys
from sync.store import Store

store = Store.open(sys.argv[1])
with store.lock(sys.argv[2]):
    print("locked", flush=True)
    sys.stdin.read()
store.close()
print("released", flush=True)
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with Store.open(url) as opened:
        yield opened


@contextmanager
def holder_process(url: str, sync: str) -> Iterator[subprocess.Popen[str]]:
    """A child process holding ``sync``'s lock until its stdin is closed."""
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url, sync],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line != "locked\n":
            proc.kill()
            pytest.fail(f"the lock holder did not start: {line!r} {proc.communicate()[1]}")
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


def _lock_rows(url: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [(r.sync, r.holder) for r in conn.execute(sa.text("SELECT * FROM lock"))]
    finally:
        engine.dispose()


def test_lock_held_by_another_process_names_it(store: Store, url: str) -> None:
    with holder_process(url, "nightly") as proc:
        with pytest.raises(LockHeld) as info, store.lock("nightly"):
            pass
        assert info.value.sync_name == "nightly"
        assert f"pid {proc.pid} since" in info.value.holder
        assert f"pid {proc.pid}" in str(info.value)
        # Other syncs are not blocked by it.
        with store.lock("weekly"):
            pass

        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.stdout is not None
        assert proc.stdout.read() == "released\n"
        assert proc.wait(timeout=30) == 0
    with store.lock("nightly"):
        assert [sync for sync, _ in _lock_rows(url)] == ["nightly"]
    assert _lock_rows(url) == []


def test_lock_dies_with_its_holder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with Store.open(url) as store:
        with holder_process(url, "nightly") as proc:
            with pytest.raises(LockHeld), store.lock("nightly"):
                pass
            proc.kill()
            proc.wait(timeout=30)
        with store.lock("nightly"):
            holder = lock_file_path(tmp_path / "state.db", "nightly").read_text()
            assert f"pid {os.getpid()} since" in holder


def test_lock_in_one_process_excludes_a_second_holder(store: Store, url: str) -> None:
    with store.lock("nightly"):
        with pytest.raises(LockHeld) as info, store.lock("nightly"):
            pass
        assert f"pid {os.getpid()}" in info.value.holder
        assert [sync for sync, _ in _lock_rows(url)] == ["nightly"]
    with store.lock("nightly"):
        pass


def test_lock_is_released_when_the_block_raises(store: Store) -> None:
    def fail_inside() -> None:
        with store.lock("nightly"):
            raise RuntimeError("run failed")

    with pytest.raises(RuntimeError, match="run failed"):
        fail_inside()
    with store.lock("nightly"):
        pass


def test_in_memory_store_locks_within_the_process() -> None:
    with Store.open("sqlite://") as store:
        with store.lock("a"):
            with pytest.raises(LockHeld, match=f"pid {os.getpid()}"), store.lock("a"):
                pass
            with store.lock("b"):
                pass
        with store.lock("a"):
            pass


def test_sqlite_lock_file_sits_next_to_the_database(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    assert lock_file_path(db, "nightly") == tmp_path / "state.db.nightly.lock"
    odd = lock_file_path(db, "../a b/c")
    assert odd.parent == tmp_path
    assert odd.name.startswith("state.db..._a_b_c-")
    assert lock_file_path(db, "../a b/c") != lock_file_path(db, "../a_b/c")
    with Store.open(f"sqlite:///{db}") as store, store.lock("../a b/c"):
        assert odd.is_file()


def test_pg_lock_key_is_stable_64_bit_and_per_schema() -> None:
    key = pg_lock_key("public", "nightly")
    assert key == pg_lock_key("public", "nightly")
    assert -(2**63) <= key < 2**63
    assert key != pg_lock_key("other", "nightly")
    assert key != pg_lock_key("public", "weekly")


def test_unsupported_backend_has_no_lock(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        # Pretend the database were neither a SQLite file, memory nor PostgreSQL.
        db = store._db
        store._db = type(db)(db.engine, db.url.set(drivername="mysql"), None)
        with pytest.raises(StoreError, match="no run lock for mysql"), store.lock("x"):
            pass
    finally:
        store.close()
