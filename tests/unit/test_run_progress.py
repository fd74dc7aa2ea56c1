"""Long runs never look frozen: writes show done/total, rate and time left per entity; the
text report fits the terminal and summarises creates."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from rich.console import Console
from test_engine_run import company, sides
from test_report import result

from sync.cli.progress import RunProgress
from sync.engine.ops import Action, FieldChange, Operation
from sync.engine.run import SyncJob, run_sync
from sync.model import EntityKind, Record, Side
from sync.policy import SyncPolicy
from sync.report.render import OutputFormat, render
from sync.store import Store


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _shown(progress: RunProgress) -> str:
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=False, color_system=None)
    console.print(progress.display.make_tasks_table(progress.display.tasks))
    return out.getvalue()


def test_writes_show_done_of_total_rate_and_time_left() -> None:
    clock = Clock()
    progress = RunProgress(Console(file=io.StringIO()), clock=clock)
    progress.advance("read crm client", 1200)
    progress.expect("write client", 100)
    for _ in range(10):
        clock.now += 1.0
        progress.advance("write client", 5)
    shown = _shown(progress)
    assert "read crm client" in shown
    assert "1200 records" in shown
    assert "50/100" in shown
    assert "5.0/s" in shown
    assert "0:00:10" in shown  # 50 left at 5 per second
    for _ in range(10):
        clock.now += 1.0
        progress.advance("write client", 5)
    progress.expect("write client", 20)  # a second pass (after failures) adds its steps
    assert "100/120" in _shown(progress)


def test_a_run_announces_and_counts_its_writes_per_entity(tmp_path: Path) -> None:
    crm, flowtly = sides()
    for n in range(7):
        crm.put(company(f"C{n}", f"PL{n}"))
    crm.put(
        Record(EntityKind.CONTACT, "P1", {"company_id": "C1", "name": "Ann", "email": "a@x.eu"})
    )
    expected: list[tuple[str, int]] = []
    done: dict[str, int] = {}

    def advance(description: str, count: int) -> None:
        done[description] = done.get(description, 0) + count

    with Store.open(f"sqlite:///{tmp_path}/state.db") as store:
        job = SyncJob("t", crm, flowtly, store, SyncPolicy(), concurrency=2)
        asyncio.run(run_sync(job, progress=advance, expect=lambda d, n: expected.append((d, n))))
    assert ("write client", 7) in expected
    assert ("write contact", 1) in expected
    assert done["write client"] == 7
    assert done["write contact"] == 1
    assert done["read crm client"] == 7


def _update(n: int) -> Operation:
    return Operation(
        EntityKind.CLIENT,
        Action.UPDATE,
        Side.FLOWTLY,
        f"U{n}",
        str(n),
        (FieldChange("city", "Kraków", f"Wrocław {n}"),),
        outcome="ok",
    )


def test_the_text_report_counts_creates_and_lists_the_rest() -> None:
    run = result(700)
    run.operations += [_update(1), _update(2)]
    text = render(run, OutputFormat.TEXT, width=100)
    assert "700 client record(s) created in flowtly" in text
    assert "C1 " not in text
    assert "U1" in text
    assert "Wrocław 2" in text
    assert "contact P9 (crm) field email: invalid e-mail" in text
    assert len(text.splitlines()) < 20


def test_the_text_report_fits_the_width_it_is_given() -> None:
    run = result(0)
    run.operations = [_update(n) for n in range(5)]
    for width in (60, 80, 160):
        text = render(run, OutputFormat.TEXT, width=width)
        assert max(len(line) for line in text.splitlines()) <= width
