"""A run's operations on disk (`OperationSpool`): the same sequence, the same reports, a
private scratch file that leaves nothing behind, and a memory that does not grow with them."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import stat
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.memory import MemoryConnector
from sync.engine import scratch
from sync.engine.job import RunResult
from sync.engine.ops import Action, FieldChange, Operation
from sync.engine.run import SyncJob, run_sync
from sync.engine.scratch import ScratchFile
from sync.engine.spool import OperationSpool
from sync.errors import RecordError
from sync.model import EntityKind, Record, Side
from sync.privacy.redact import Scrubber
from sync.report.redaction import scrubbed
from sync.report.render import OutputFormat, render
from sync.store import Store

CLIENT = EntityKind.CLIENT
TOKEN = "s3cr3t-token-0123456789"


def _operations() -> list[Operation]:
    ops = [
        Operation(
            CLIENT,
            Action.CREATE,
            Side.FLOWTLY,
            f"C{n}",
            None,
            (FieldChange("name", None, f"Co {n}"), FieldChange("vat_number", None, "PL5260250995")),
        )
        for n in range(7)
    ]
    ops.insert(
        3,
        Operation(
            CLIENT,
            Action.UPDATE,
            Side.CRM,
            "C9",
            "9",
            (FieldChange("city", "Kraków", "Wrocław"),),
            message=f"update on crm refused: Authorization: Bearer {TOKEN}",
            outcome="error",
        ),
    )
    ops.append(
        Operation(
            CLIENT,
            Action.CONFLICT,
            None,
            "C8",
            "8",
            (FieldChange("city", "Gdańsk", "Poznań"),),
            message="both sides changed city",
        )
    )
    ops.append(Operation(CLIENT, Action.UPDATE, Side.FLOWTLY, "C2", "2", ()))
    return ops


def _result(operations: list[Operation] | OperationSpool) -> RunResult:
    run = RunResult("acme", dry_run=True, started_at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC))
    run.operations = operations
    run.errors = [RecordError("client", "crm", "C9", f"refused: {TOKEN}", field="city")]
    return run


def _spooled(ops: list[Operation]) -> OperationSpool:
    spool = OperationSpool(chunk=3)  # several chunks on disk, and a tail in memory
    spool.extend(ops[:5])
    spool += ops[5:]
    return spool


def test_the_spool_is_the_same_sequence_as_the_list() -> None:
    ops = _operations()
    spool = _spooled(ops)
    assert spool == ops
    assert list(spool) == ops
    assert len(spool) == len(ops)
    assert [spool[i] for i in range(-len(ops), len(ops))] == ops + ops
    assert spool[2:9:3] == ops[2:9:3]
    assert spool.conflicts() == [ops[8]]
    with pytest.raises(IndexError):
        spool[len(ops)]


def test_a_sibling_spool_is_taken_over_without_being_read_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ops = _operations()
    run = OperationSpool(chunk=3)
    run.extend(ops[:2])  # a tail not yet written, flushed before the sibling's chunks
    applied = [run.sibling(), run.sibling()]
    applied[0].extend(ops[2:7])
    applied[1].extend(ops[7:])
    loaded: list[int] = []
    load = ScratchFile.load
    monkeypatch.setattr(ScratchFile, "load", lambda f, at: loaded.append(at) or load(f, at))
    for spool in applied:
        run.extend(spool)
    assert loaded == []  # no chunk was read to take them over
    assert run == ops
    assert run.conflicts() == [ops[8]]
    assert run.counts() == _spooled(ops).counts()
    assert run[3].message == ops[3].message  # kept in memory, never written


def test_a_short_sibling_is_taken_over_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = _spooled(_operations()).counts()
    opened: list[object] = []
    real = scratch.private_temporary_file
    monkeypatch.setattr(scratch, "private_temporary_file", lambda: opened.append(1) or real())
    ops = _operations()
    run = OperationSpool(chunk=len(ops) + 1)
    applied = run.sibling()
    applied.extend(ops)
    run.extend(applied)
    assert run == ops
    assert run.counts() == counts
    assert opened == []  # no file for a run this short


def test_a_spool_of_another_file_is_copied() -> None:
    ops = _operations()
    run = OperationSpool(chunk=3)
    run.extend(ops[:4])
    run.extend(_spooled(ops)[4:])  # a list: copied item by item
    other = _spooled(ops)
    run.extend(other)
    assert run == ops[:4] + ops[4:] + ops


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_reports_rendered_from_the_spool_equal_the_in_memory_ones(fmt: OutputFormat) -> None:
    ops = _operations()
    scrub = Scrubber([TOKEN])
    listed = scrubbed(_result(ops), scrub)
    spooled = scrubbed(_result(_spooled(ops)), scrub)
    assert isinstance(spooled.operations, OperationSpool)
    assert spooled.summary() == listed.summary()
    assert spooled.conflicts == listed.conflicts
    assert render(spooled, fmt, width=160) == render(listed, fmt, width=160)
    for shown in (True, False):
        text = render(spooled, fmt, width=160, show_sensitive=shown)
        assert TOKEN not in text
        assert ("PL5260250995" in text) is (shown and fmt is not OutputFormat.TEXT)
    if fmt is OutputFormat.JSON:
        data = json.loads(render(spooled, fmt))
        assert [op["action"] for op in data["operations"]] == [str(op.action) for op in ops]
        assert data["operations"][0]["changes"][0] == {
            "field": "name",
            "old": None,
            "new": "Co 0",
            "conflict": False,
        }
        assert len(data["conflicts"]) == 1


def test_a_dry_run_reports_every_field_change_from_its_spool(tmp_path: Path) -> None:
    crm = MemoryConnector(entities=(CLIENT,), fields={CLIENT: ("name", "country", "vat_number")})
    flowtly = MemoryConnector(
        entities=(CLIENT,), fields={CLIENT: ("name", "country", "vat_number")}, id_prefix="f"
    )
    for n in range(1, 2500):
        fields = {"name": f"Co {n}", "country": "PL", "vat_number": f"PL{n:010d}"}
        crm.put(Record(CLIENT, f"C{n}", fields))  # type: ignore[arg-type]
    with Store.open(f"sqlite:///{tmp_path}/state.db") as store:
        result = asyncio.run(run_sync(SyncJob("t", crm, flowtly, store), dry_run=True))
    assert isinstance(result.operations, OperationSpool)
    assert len(result.operations) == 2499
    # Only the chunk not written yet is held: not a list of every operation.
    assert result.operations.held() < 1024
    data = json.loads(render(result, OutputFormat.JSON, show_sensitive=True))
    assert data["summary"] == {"client": {"create": 2499}}
    last = data["operations"][-1]
    assert (last["crm_id"], last["action"], last["target"]) == ("C2499", "create", "flowtly")
    assert {c["field"]: c["new"] for c in last["changes"]} == {
        "name": "Co 2499",
        "country": "PL",
        "vat_number": "PL0000002499",
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
def test_the_scratch_file_is_private_nameless_and_closed_with_the_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def scratch_fds() -> list[int]:
        fds = []
        for name in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{name}").startswith(str(tmp_path)):
                    fds.append(int(name))
            except OSError:
                continue  # closed meanwhile
        return fds

    spool = _spooled(_operations())
    assert list(tmp_path.iterdir()) == []
    [fd] = scratch_fds()
    assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o600
    assert os.fstat(fd).st_nlink == 0
    scrubbed_view = spool.with_kept(lambda op: op)
    del spool
    gc.collect()
    assert len(scratch_fds()) == 1  # still read by the view that shares it
    assert len(list(scrubbed_view)) == len(_operations())
    del scrubbed_view
    gc.collect()
    assert scratch_fds() == []


def test_messages_never_reach_the_scratch_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[bytes] = []
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    spool = OperationSpool(chunk=2)
    spool.extend(_operations())
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith(str(tmp_path)):
            written.append(os.pread(int(name), 1 << 20, 0))
    assert written
    assert b"Co 0" in written[0]
    assert TOKEN.encode() not in written[0]
    assert b"both sides changed" not in written[0]
