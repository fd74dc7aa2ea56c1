"""Rendering a run's result as text (a table of changes), JSON, or Markdown.

Sensitive fields (tax ids, and any configured) are masked unless the caller asks for them;
the JSON layout is an interface scripts rely on (docs/reference.md). Values are shown
literally in every format (`sync.report.literal`): data never becomes markup, a link or a
terminal control sequence.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from enum import StrEnum
from itertools import islice
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sync.engine.ops import FieldChange, Operation
from sync.engine.run import RunResult
from sync.errors import RecordError
from sync.model import SCHEMAS, Scalar
from sync.privacy.redact import mask
from sync.report.literal import json_visible, markdown, visible

__all__ = ["OutputFormat", "mask", "render", "write_plain", "write_report"]

SENSITIVE = frozenset(
    name for schema in SCHEMAS.values() for name, spec in schema.items() if spec.sensitive
)


class OutputFormat(StrEnum):
    """How ``run`` prints its report."""

    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"


def _value(
    field_name: str, value: Scalar, show_sensitive: bool, sensitive: frozenset[str]
) -> Scalar:
    return value if show_sensitive or field_name not in sensitive else mask(value)


def _change(change: FieldChange, show: bool, sensitive: frozenset[str]) -> dict[str, Any]:
    return {
        "field": change.field,
        "old": _value(change.field, change.old, show, sensitive),
        "new": _value(change.field, change.new, show, sensitive),
        "conflict": change.conflict,
    }


def _operation(op: Operation, show: bool, sensitive: frozenset[str]) -> dict[str, Any]:
    return {
        "entity": str(op.entity),
        "action": str(op.action),
        "target": str(op.target) if op.target else None,
        "crm_id": op.crm_id,
        "flowtly_id": op.flowtly_id,
        "outcome": op.outcome,
        "message": op.message,
        "changes": [_change(c, show, sensitive) for c in op.changes],
    }


def _error(error: RecordError, show: bool, sensitive: frozenset[str]) -> dict[str, Any]:
    value = error.value
    if value is not None and error.field in sensitive and not show:
        value = str(mask(value))
    return {
        "entity": error.entity,
        "side": error.side,
        "id": error.record_id,
        "field": error.field,
        "value": value,
        "reason": error.reason,
    }


TEXT_ROWS = 500
"""Operations shown in a text report; the JSON report always lists every one."""


def _fmt(value: Any) -> str:
    return "∅" if value is None else str(value)


def _changes_text(changes: list[dict[str, Any]], literal: Callable[[object], str] = str) -> str:
    """``field: old -> new; ...``, each name and value passed through ``literal``."""
    return "; ".join(
        f"{literal(c['field'])}: {literal(_fmt(c['old']))} -> {literal(_fmt(c['new']))}"
        + (" (conflict)" if c["conflict"] else "")
        for c in changes
    )


class _View:
    """The report's pieces, converted one at a time so a huge run never sits in memory
    twice (as operations and again as their JSON)."""

    def __init__(self, result: RunResult, show: bool, sensitive: Iterable[str]) -> None:
        self.result = result
        self.show = show
        self.masked = SENSITIVE | frozenset(sensitive)
        self.summary = result.summary()

    def operations(self) -> Iterator[dict[str, Any]]:
        return (_operation(op, self.show, self.masked) for op in self.result.operations)

    def errors(self) -> list[dict[str, Any]]:
        return [_error(e, self.show, self.masked) for e in self.result.errors]

    def warnings(self) -> list[dict[str, Any]]:
        return [_error(w, self.show, self.masked) for w in self.result.warnings]

    def conflicts(self) -> list[dict[str, Any]]:
        return [_operation(op, self.show, self.masked) for op in self.result.conflicts]

    def headline(self) -> str:
        result = self.result
        verb = "would change" if result.dry_run else "changed"
        done = sum(n for per in self.summary.values() for a, n in per.items() if a != "error")
        if not done and not result.errors and not result.conflicts:
            return f"sync {result.sync}: nothing to do" + (" (dry run)" if result.dry_run else "")
        parts = [
            f"{entity}: " + ", ".join(f"{n} {action}" for action, n in sorted(actions.items()))
            for entity, actions in sorted(self.summary.items())
        ]
        return f"sync {result.sync} {verb}: " + "; ".join(parts)


def _dump(value: Any) -> str:
    return json_visible(json.dumps(value, ensure_ascii=False))


def _write_json(view: _View, out: TextIO) -> None:
    result = view.result
    head = {
        "sync": result.sync,
        "status": "ok" if result.clean else "partial",
        "dry_run": result.dry_run,
        "run_id": result.run_id,
        "started_at": result.started_at.isoformat(),
        "finished_at": result.finished_at.isoformat() if result.finished_at else None,
        "summary": view.summary,
    }
    out.write("{\n")
    for key, value in head.items():
        out.write(f"  {_dump(key)}: {_dump(value)},\n")
    lists: list[tuple[str, Iterable[dict[str, Any]]]] = [
        ("operations", view.operations()),
        ("errors", view.errors()),
        ("conflicts", view.conflicts()),
        ("warnings", view.warnings()),
    ]
    for key, items in lists:
        out.write(f"  {_dump(key)}: [")
        for index, item in enumerate(items):
            out.write(("\n" if index == 0 else ",\n") + "    " + _dump(item))
        out.write("\n  ],\n")
    waiting = {str(k): v for k, v in result.waiting.items() if v}
    out.write(f'  "waiting": {_dump(waiting)}\n}}\n')


def _literal(value: Any) -> Text:
    return Text(visible(value))


def _write_text(view: _View, out: TextIO, width: int | None) -> None:
    # Rendered whole before a byte is written (the table is bounded): a report is never
    # left half printed. Strings are never read as markup or emoji codes.
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width or 120,
        force_terminal=False,
        no_color=True,
        markup=False,
        emoji=False,
        highlight=False,
    )
    console.print(_literal(view.headline()))
    # Creates are counted, not listed: a first run creates everything, and a table of it
    # would bury the updates, conflicts and errors that need reading.
    created: Counter[tuple[str, str]] = Counter()
    listed: list[dict[str, Any]] = []
    total = 0
    for op in view.operations():
        if op["action"] == "create" and op["outcome"] != "error":
            created[op["entity"], op["target"] or ""] += 1
            continue
        total += 1
        if len(listed) < TEXT_ROWS:
            listed.append(op)
    verb = "would be created" if view.result.dry_run else "created"
    for (entity, target), count in sorted(created.items()):
        console.print(_literal(f"{count} {entity} record(s) {verb} in {target}"))
    if created:
        console.print("(each create: --output json, --output markdown or --report FILE)")
    if total:
        table = Table(
            "entity", "action", "target", "crm id", "flowtly id", "changes", show_lines=False
        )
        for op in listed:
            action = op["action"] if op["outcome"] != "error" else f"{op['action']} (failed)"
            table.add_row(
                *map(
                    _literal,
                    (
                        op["entity"],
                        action,
                        op["target"] or "",
                        op["crm_id"] or "",
                        op["flowtly_id"] or "",
                        _changes_text(op["changes"]),
                    ),
                )
            )
        console.print(table)
        if total > TEXT_ROWS:
            console.print(
                f"... and {total - TEXT_ROWS} more operations "
                "(all of them: --output json, --output markdown or --report FILE)"
            )
    errors = view.errors()
    if errors:
        console.print(f"{len(errors)} record(s) rejected or skipped:")
        for error in errors:
            where = f"{error['entity']} {error['id']} ({error['side']})"
            if error["field"]:
                where += f" field {error['field']}"
            console.print(_literal(f"  - {where}: {error['reason']}"))
    for warning in view.warnings():
        field = f" field {warning['field']}" if warning["field"] else ""
        console.print(
            _literal(
                f"  {warning['entity']} {warning['id']} ({warning['side']}){field}: "
                f"{warning['reason']}"
            )
        )
    for entity, count in view.result.waiting.items():
        if count:
            console.print(f"{count} {entity} record(s) wait for their company to be linked")
    out.write(buffer.getvalue())


def _write_markdown(view: _View, out: TextIO) -> None:
    out.write(f"## {markdown(view.headline())}\n\n")
    if view.result.operations:
        out.write("| entity | action | target | crm id | flowtly id | changes |\n")
        out.write("|---|---|---|---|---|---|\n")
        for op in view.operations():
            cells = [
                markdown(op[key] or "")
                for key in ("entity", "action", "target", "crm_id", "flowtly_id")
            ]
            cells.append(_changes_text(op["changes"], markdown))
            out.write("| " + " | ".join(cells) + " |\n")
        out.write("\n")
    for title, findings in (("Rejected records", view.errors()), ("Warnings", view.warnings())):
        if findings:
            out.write(f"### {title}\n\n")
            for finding in findings:
                field = f" field {markdown(finding['field'])}" if finding["field"] else ""
                out.write(
                    f"- {markdown(finding['entity'])} {markdown(finding['id'])} "
                    f"({markdown(finding['side'])}){field}: {markdown(finding['reason'])}\n"
                )
            out.write("\n")


def write_plain(
    result: RunResult,
    out: TextIO,
    *,
    show_sensitive: bool = False,
    sensitive: Iterable[str] = (),
) -> None:
    """The report as plain lines, with no table and no rich: what is printed when the
    text report cannot be rendered."""
    view = _View(result, show_sensitive, sensitive)
    out.write(visible(view.headline()) + "\n")
    for op in islice(view.operations(), TEXT_ROWS):
        failed = " (failed)" if op["outcome"] == "error" else ""
        where = " ".join(str(op[key]) for key in ("target", "crm_id", "flowtly_id") if op[key])
        line = f"  {op['entity']} {op['action']}{failed} {where}: {_changes_text(op['changes'])}"
        out.write(visible(line) + "\n")
    for finding in [*view.errors(), *view.warnings()]:
        where = f"{finding['entity']} {finding['id']} ({finding['side']})"
        out.write(visible(f"  - {where}: {finding['reason']}") + "\n")


def write_report(
    result: RunResult,
    fmt: OutputFormat,
    out: TextIO,
    *,
    show_sensitive: bool = False,
    sensitive: Iterable[str] = (),
    width: int | None = None,
) -> None:
    """Write the report in ``fmt`` to ``out``, streaming operation by operation."""
    view = _View(result, show_sensitive, sensitive)
    if fmt is OutputFormat.JSON:
        _write_json(view, out)
    elif fmt is OutputFormat.MARKDOWN:
        _write_markdown(view, out)
    else:
        _write_text(view, out, width)


def render(
    result: RunResult,
    fmt: OutputFormat,
    *,
    show_sensitive: bool = False,
    sensitive: Iterable[str] = (),
    width: int | None = None,
) -> str:
    """The report as a string in ``fmt``."""
    buffer = io.StringIO()
    write_report(
        result, fmt, buffer, show_sensitive=show_sensitive, sensitive=sensitive, width=width
    )
    return buffer.getvalue()
