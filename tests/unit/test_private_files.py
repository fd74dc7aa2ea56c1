"""The files holding tax ids are their owner's alone, whatever the umask; the audit trail
keeps tax ids masked (links keep them in clear: the sync compares them).

Every test runs under umask 000, where a file created without an explicit mode would be
world-readable (and world-writable).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from sync.cli.main import main
from sync.model import EntityKind, Side
from sync.privacy.redact import mask
from sync.store import EventOutcome, RecordedChange, Store
from sync.store._lock import lock_file_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _open_umask() -> Iterator[None]:
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_store_its_journals_directory_and_locks_are_private(tmp_path: Path) -> None:
    db = tmp_path / ".flowtly-sync" / "state.db"
    with Store.open(f"sqlite:///{db}") as store, store.lock("s"):
        store.start_run("s", dry_run=False)
        files = [db, db.with_name("state.db-wal"), db.with_name("state.db-shm")]
        files += [lock_file_path(db, "s"), db.with_name("state.db.migrate.lock")]
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    assert mode(db.parent) == 0o700


def test_an_existing_world_readable_store_is_narrowed(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    Store.open(f"sqlite:///{db}").close()
    stale_wal = db.with_name("state.db-wal")
    stale_wal.write_bytes(b"")
    for path in (db, stale_wal):
        path.chmod(0o644)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    with Store.open(f"sqlite:///{db}") as store:
        store.start_run("s", dry_run=False)
        assert (mode(db), mode(stale_wal)) == (0o600, 0o600)
    # A directory that already exists is someone's choice: it is left alone.
    Store.open(f"sqlite:///{shared / 'state.db'}").close()
    assert mode(shared) == 0o750


def test_the_audit_trail_keeps_tax_ids_masked(tmp_path: Path) -> None:
    vat, phone = "PL9295973794", "+48 22 202 15 14"
    db = tmp_path / "state.db"
    with Store.open(f"sqlite:///{db}", sensitive=["phone"]) as store:
        run_id = store.start_run("s", dry_run=False)
        with store.transaction() as tx:
            tx.add_event(
                run_id,
                EntityKind.CLIENT,
                "update",
                Side.FLOWTLY,
                "c1",
                "f1",
                EventOutcome.OK,
                [
                    RecordedChange("vat_number", None, vat),
                    RecordedChange("phone", phone, None),
                    RecordedChange("name", "A", "B"),
                ],
                None,
            )
            tx.save_link("s", EntityKind.CLIENT, "c1", "f1", {"vat_number": vat}, "a", "b")
        [event] = store.run_events(run_id)
        assert event.changes == (
            RecordedChange("vat_number", None, mask(vat)),
            RecordedChange("phone", mask(phone), None),
            RecordedChange("name", "A", "B"),
        )
        # The base is what the next run compares against: it must stay the real value.
        assert store.load_bases("s", EntityKind.CLIENT, ["c1"]) == {"c1": {"vat_number": vat}}


def test_a_cli_run_leaves_only_private_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(ROOT / "examples" / "crm", tmp_path / "crm")
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(text.replace('path = "examples/crm"', 'path = "crm"'), encoding="utf-8")
    report = tmp_path / "report.json"
    report.write_text("{}", encoding="utf-8")
    report.chmod(0o644)
    monkeypatch.chdir(tmp_path)

    assert main(["run", "--config", str(config), "--report", str(report)]) == 0
    capsys.readouterr()

    data = tmp_path / ".flowtly-sync"
    assert mode(data) == 0o700
    made = sorted(data.iterdir())
    assert {p.name for p in made} >= {"state.db", "sandbox.db"}
    assert {p.name: mode(p) for p in made} == {p.name: 0o600 for p in made}
    assert mode(report) == 0o600
    assert json.loads(report.read_text(encoding="utf-8"))["summary"]["client"]["create"] == 30

    # Tax ids went to Flowtly and into the links' bases, not into the audit trail.
    lines = (tmp_path / "crm" / "companies.csv").read_text(encoding="utf-8").splitlines()
    vats = [line.split(",")[8] for line in lines[1:]]
    conn = sqlite3.connect(data / "state.db")
    try:
        changes = " ".join(c for (c,) in conn.execute("SELECT changes FROM run_event"))
        bases = " ".join(b for (b,) in conn.execute("SELECT base FROM link"))
    finally:
        conn.close()
    assert "vat_number" in changes
    assert [v for v in vats if v and v in changes] == []
    assert all(v in bases for v in vats if v)
