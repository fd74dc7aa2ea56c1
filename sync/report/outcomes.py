"""The reports of one ``run`` command: every sync's result or failure, in one document.

Scripts read ``--report FILE`` and ``--output json`` after every run, so a run that fails
still writes a report (``"status": "failed"`` with the error) instead of leaving
yesterday's in place, and several syncs make one JSON document (``{"syncs": [...]}``)
rather than several back to back. One sync keeps the single report's shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from sync.engine.run import RunResult
from sync.report.literal import json_visible, markdown, visible
from sync.report.render import OutputFormat, write_report

__all__ = ["Outcome", "RunFailure", "report_format", "status_of", "write_outcomes"]

_BY_EXTENSION = {
    ".json": OutputFormat.JSON,
    ".md": OutputFormat.MARKDOWN,
    ".markdown": OutputFormat.MARKDOWN,
    ".txt": OutputFormat.TEXT,
    ".text": OutputFormat.TEXT,
}


@dataclass(frozen=True)
class RunFailure:
    """A sync whose run stopped with an error: no result, only what went wrong."""

    sync: str
    dry_run: bool
    error_type: str
    message: str
    """Scrubbed of secrets already."""
    started_at: datetime
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))


Outcome = RunResult | RunFailure


def status_of(outcome: Outcome) -> str:
    """``ok`` (clean), ``partial`` (records rejected or conflicts parked) or ``failed``."""
    if isinstance(outcome, RunFailure):
        return "failed"
    return "ok" if outcome.clean else "partial"


def report_format(path: Path, explicit: OutputFormat | None) -> OutputFormat:
    """The format of a ``--report`` file: its extension's (``.json``, ``.md``, ``.txt``),
    else ``--output`` when given, else JSON.

    The file's name is the most specific thing said about it: ``--output text --report
    run.json`` shows text and keeps JSON for the script that reads the file.
    """
    by_name = _BY_EXTENSION.get(path.suffix.lower())
    if by_name is not None:
        return by_name
    return explicit if explicit is not None else OutputFormat.JSON


def _dump(value: object) -> str:
    return json_visible(json.dumps(value, ensure_ascii=False))


def _write_failure(failure: RunFailure, fmt: OutputFormat, out: TextIO) -> None:
    if fmt is OutputFormat.JSON:
        # The keys of a result, empty, so a script reading "summary" or "errors" still can.
        document = {
            "sync": failure.sync,
            "status": "failed",
            "dry_run": failure.dry_run,
            "run_id": None,
            "started_at": failure.started_at.isoformat(),
            "finished_at": failure.finished_at.isoformat(),
            "error": {"type": failure.error_type, "message": failure.message},
            "summary": {},
            "operations": [],
            "errors": [],
            "conflicts": [],
            "warnings": [],
            "waiting": {},
        }
        out.write(json_visible(json.dumps(document, indent=2, ensure_ascii=False)) + "\n")
    elif fmt is OutputFormat.MARKDOWN:
        out.write(f"## sync {markdown(failure.sync)} failed\n\n{markdown(failure.message)}\n\n")
    else:
        out.write(visible(f"sync {failure.sync} failed: {failure.message}") + "\n")


def write_outcomes(
    outcomes: Sequence[Outcome],
    fmt: OutputFormat,
    out: TextIO,
    *,
    show_sensitive: bool,
    sensitive: Iterable[str],
    write_result: Callable[[RunResult, TextIO], None] | None = None,
) -> None:
    """Every outcome in ``fmt``: JSON as one document (a single sync's report, or
    ``{"status": ..., "syncs": [...]}``), text and Markdown one report after the other.

    ``write_result`` renders one result (default: `sync.report.render.write_report`).
    """

    def result_writer(result: RunResult, into: TextIO) -> None:
        write_report(result, fmt, into, show_sensitive=show_sensitive, sensitive=sensitive)

    write_one = write_result or result_writer
    several = fmt is OutputFormat.JSON and len(outcomes) != 1
    if several:
        statuses = {status_of(outcome) for outcome in outcomes}
        overall = next((s for s in ("failed", "partial") if s in statuses), "ok")
        out.write(f'{{"status": {_dump(overall)}, "syncs": [\n')
    for index, outcome in enumerate(outcomes):
        if several and index:
            out.write(",\n")
        if isinstance(outcome, RunFailure):
            _write_failure(outcome, fmt, out)
        else:
            write_one(outcome, out)
    if several:
        out.write("]}\n")
