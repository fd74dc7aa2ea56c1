"""Rendering a run's result as text (a table of changes), JSON, or Markdown.

Sensitive fields (tax ids, and any configured) are masked unless the caller asks for them;
the JSON layout is an interface scripts rely on (DESIGN.md section 5).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table

from sync.engine.ops import FieldChange, Operation
from sync.engine.run import RunResult
from sync.errors import RecordError
from sync.model import SCHEMAS, Scalar

__all__ = ["OutputFormat", "mask", "render", "to_json"]

SENSITIVE = frozenset(
    name for schema in SCHEMAS.values() for name, spec in schema.items() if spec.sensitive
)


class OutputFormat(StrEnum):
    """How ``run`` prints its report."""

    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"


def mask(value: Scalar) -> Scalar:
    """Hide all but the last three characters of a sensitive value."""
    if value is None:
        return None
    text = str(value)
    return "•" * max(len(text) - 3, 3) + text[-3:] if len(text) > 3 else "•••"


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


def to_json(
    result: RunResult, *, show_sensitive: bool = False, sensitive: Iterable[str] = ()
) -> dict[str, Any]:
    """The JSON report as a dict."""
    masked = SENSITIVE | frozenset(sensitive)
    return {
        "sync": result.sync,
        "dry_run": result.dry_run,
        "run_id": result.run_id,
        "started_at": result.started_at.isoformat(),
        "finished_at": result.finished_at.isoformat() if result.finished_at else None,
        "summary": result.summary(),
        "operations": [_operation(op, show_sensitive, masked) for op in result.operations],
        "errors": [_error(e, show_sensitive, masked) for e in result.errors],
        "conflicts": [_operation(op, show_sensitive, masked) for op in result.conflicts],
        "warnings": [_error(w, show_sensitive, masked) for w in result.warnings],
        "waiting": {str(k): v for k, v in result.waiting.items() if v},
    }


def _fmt(value: Any) -> str:
    return "∅" if value is None else str(value)


def _changes_text(changes: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{c['field']}: {_fmt(c['old'])} -> {_fmt(c['new'])}"
        + (" (conflict)" if c["conflict"] else "")
        for c in changes
    )


def _headline(data: dict[str, Any]) -> str:
    verb = "would change" if data["dry_run"] else "changed"
    ops = len([op for op in data["operations"] if op["outcome"] != "error"])
    if not ops and not data["errors"] and not data["conflicts"]:
        return f"sync {data['sync']}: nothing to do" + (" (dry run)" if data["dry_run"] else "")
    parts = [
        f"{entity}: " + ", ".join(f"{n} {action}" for action, n in sorted(actions.items()))
        for entity, actions in sorted(data["summary"].items())
    ]
    return f"sync {data['sync']} {verb}: " + "; ".join(parts)


def _text(data: dict[str, Any], width: int | None) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width or 120, force_terminal=False, no_color=True)
    console.print(_headline(data))
    if data["operations"]:
        table = Table(
            "entity", "action", "target", "crm id", "flowtly id", "changes", show_lines=False
        )
        for op in data["operations"]:
            action = op["action"] if op["outcome"] != "error" else f"{op['action']} (failed)"
            table.add_row(
                op["entity"],
                action,
                op["target"] or "",
                op["crm_id"] or "",
                op["flowtly_id"] or "",
                _changes_text(op["changes"]),
            )
        console.print(table)
    if data["errors"]:
        console.print(f"{len(data['errors'])} record(s) rejected or skipped:")
        for error in data["errors"]:
            where = f"{error['entity']} {error['id']} ({error['side']})"
            if error["field"]:
                where += f" field {error['field']}"
            console.print(f"  - {where}: {error['reason']}", markup=False)
    for warning in data["warnings"]:
        field = f" field {warning['field']}" if warning["field"] else ""
        console.print(
            f"  {warning['entity']} {warning['id']} ({warning['side']}){field}: "
            f"{warning['reason']}",
            markup=False,
        )
    for entity, count in data["waiting"].items():
        console.print(f"{count} {entity} record(s) wait for their company to be linked")
    return buffer.getvalue()


def _markdown(data: dict[str, Any]) -> str:
    lines = [f"## {_headline(data)}", ""]
    if data["operations"]:
        lines += [
            "| entity | action | target | crm id | flowtly id | changes |",
            "|---|---|---|---|---|---|",
        ]
        for op in data["operations"]:
            changes = _changes_text(op["changes"]).replace("|", "\\|")
            lines.append(
                f"| {op['entity']} | {op['action']} | {op['target'] or ''} | "
                f"{op['crm_id'] or ''} | {op['flowtly_id'] or ''} | {changes} |"
            )
        lines.append("")
    if data["errors"]:
        lines += ["### Rejected records", ""]
        for error in data["errors"]:
            field = f" `{error['field']}`" if error["field"] else ""
            lines.append(
                f"- {error['entity']} `{error['id']}` ({error['side']}){field}: {error['reason']}"
            )
        lines.append("")
    return "\n".join(lines)


def render(
    result: RunResult,
    fmt: OutputFormat,
    *,
    show_sensitive: bool = False,
    sensitive: Iterable[str] = (),
    width: int | None = None,
) -> str:
    """The report as a string in ``fmt``."""
    data = to_json(result, show_sensitive=show_sensitive, sensitive=sensitive)
    if fmt is OutputFormat.JSON:
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt is OutputFormat.MARKDOWN:
        return _markdown(data)
    return _text(data, width)
