"""The live progress of a run on a terminal: records read per side and entity, and writes
per entity as done/total with their rate and the time left, so a long first run (1,000
companies at Flowtly's 10 requests/s is minutes of writing) never looks frozen."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["RunProgress"]


class _Count(ProgressColumn):
    """``12/300`` for writes (a total is known), ``1200 records`` for reads."""

    def render(self, task: Task) -> Text:
        done = int(task.completed)
        if task.total is None:
            return Text(f"{done} records")
        return Text(f"{done}/{int(task.total)}")


class _Rate(ProgressColumn):
    """Records per second, once rich has measured some."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f}/s")


class _Remaining(TimeRemainingColumn):
    """The time left, for writes only (reads have no total to count down to)."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return super().render(task)


class RunProgress:
    """One task per description; `expect` gives a write pass its total."""

    def __init__(self, console: Console, clock: Callable[[], float] | None = None) -> None:
        self.display = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            _Count(),
            _Rate(),
            _Remaining(),
            console=console,
            transient=True,
            get_time=clock,
        )
        self._tasks: dict[str, TaskID] = {}

    def _task(self, description: str) -> TaskID:
        if description not in self._tasks:
            self._tasks[description] = self.display.add_task(description, total=None)
        return self._tasks[description]

    def advance(self, description: str, count: int) -> None:
        """``count`` more records read or written."""
        self.display.advance(self._task(description), count)

    def expect(self, description: str, count: int) -> None:
        """``count`` more steps are about to be written under ``description``."""
        task = self._task(description)
        done = next(t.completed for t in self.display.tasks if t.id == task)
        self.display.update(task, total=done + count)
