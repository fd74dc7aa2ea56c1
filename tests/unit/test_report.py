"""Reports: the JSON interface, masking, and text output that stays readable when huge."""

from __future__ import annotations

import json
from dataclasses import replace

from sync.engine.ops import Action, FieldChange, Operation
from sync.engine.run import RunResult
from sync.errors import RecordError
from sync.model import EntityKind, Side
from sync.report.render import TEXT_ROWS, OutputFormat, render


def result(operations: int) -> RunResult:
    run = RunResult("acme", dry_run=False, run_id=7)
    run.operations = [
        Operation(
            EntityKind.CLIENT,
            Action.CREATE,
            Side.FLOWTLY,
            f"C{i}",
            str(i),
            (FieldChange("name", None, f"Co {i}"), FieldChange("vat_number", None, "PL5260250995")),
            outcome="ok",
        )
        for i in range(operations)
    ]
    run.errors = [
        RecordError("contact", "crm", "P9", "invalid e-mail", field="email", value="nope")
    ]
    return run


def test_json_report_has_the_documented_shape_and_masks_tax_ids():
    data = json.loads(render(result(3), OutputFormat.JSON))
    assert set(data) >= {"dry_run", "summary", "operations", "errors", "conflicts"}
    assert data["summary"] == {"client": {"create": 3}, "contact": {"error": 1}}
    first = data["operations"][0]
    assert {k: first[k] for k in ("entity", "action", "target", "crm_id", "flowtly_id")} == {
        "entity": "client",
        "action": "create",
        "target": "flowtly",
        "crm_id": "C0",
        "flowtly_id": "0",
    }
    assert first["changes"][1]["new"].endswith("995")
    assert "PL5260250995" not in json.dumps(data)
    assert data["errors"] == [
        {
            "entity": "contact",
            "side": "crm",
            "id": "P9",
            "field": "email",
            "value": "nope",
            "reason": "invalid e-mail",
        }
    ]
    shown = render(result(1), OutputFormat.JSON, show_sensitive=True)
    assert "PL5260250995" in shown


def test_text_report_shows_a_bounded_table_and_says_how_to_see_the_rest():
    run = result(TEXT_ROWS + 25)
    run.operations = [replace(op, action=Action.UPDATE) for op in run.operations]
    text = render(run, OutputFormat.TEXT, width=200)
    assert text.startswith(f"sync acme changed: client: {TEXT_ROWS + 25} update")
    assert f"C{TEXT_ROWS - 1} " in text
    assert f"C{TEXT_ROWS + 1} " not in text
    assert "... and 25 more operations" in text
    assert "contact P9 (crm) field email: invalid e-mail" in text


def test_markdown_lists_every_operation():
    markdown = render(result(TEXT_ROWS + 1), OutputFormat.MARKDOWN)
    assert markdown.count("| client | create | flowtly |") == TEXT_ROWS + 1
