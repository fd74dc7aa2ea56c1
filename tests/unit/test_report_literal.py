"""Data values are rendered literally: never as rich markup, Markdown, HTML or terminal
control, and a report that cannot be rendered never fails a run that succeeded."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

import sync.cli.reports
from sync.cli.main import main
from sync.config import load_settings
from sync.engine.ops import Action, FieldChange, Operation
from sync.engine.run import RunResult
from sync.errors import RecordError
from sync.model import EntityKind, Side
from sync.report.literal import json_visible, markdown, visible
from sync.report.render import OutputFormat, render
from sync.store import Store

ROOT = Path(__file__).resolve().parents[2]

CLOSING_TAG = "[/bold] closing tag"
LINK = "[link=https://evil.example]Acme[/link]"
OSC = "\x1b]8;;https://evil.example\x1b\\Acme\x1b]8;;\x1b\\\x1b[2J"
CSI_C1 = "Acme\x9b31m red \u202eevil"
MARKDOWN = "two\nlines | <script>x</script> & `code` [click](https://evil.example) *b*"


def result(*names: str) -> RunResult:
    run = RunResult("acme", dry_run=False, run_id=1)
    run.operations = [
        Operation(
            EntityKind.CLIENT,
            Action.UPDATE,
            Side.FLOWTLY,
            f"C{i}",
            str(i),
            (FieldChange("name", "Old", name),),
            outcome="ok",
        )
        for i, name in enumerate(names)
    ]
    return run


def no_control(text: str) -> bool:
    return not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F for c in text)


def test_visible_spells_out_control_characters_and_keeps_the_rest():
    assert visible("a\nb\tc\r") == "a\\nb\\tc\\r"
    assert visible("\x1b[31m\x9b\x7f") == "\\x1b[31m\\x9b\\x7f"
    assert visible("abc\u202edef\u2028") == "abc\\u202edef\\u2028"
    assert visible("Zażółć [b] :smile:") == "Zażółć [b] :smile:"


def test_text_report_shows_markup_links_and_escapes_literally():
    text = render(
        result(CLOSING_TAG, LINK, OSC, CSI_C1, ":thumbs_up:"), OutputFormat.TEXT, width=300
    )
    assert CLOSING_TAG in text
    assert LINK in text
    assert "\\x1b]8;;https://evil.example\\x1b\\Acme" in text
    assert "\\x1b[2J" in text
    assert "Acme\\x9b31m red \\u202eevil" in text
    assert ":thumbs_up:" in text
    assert no_control(text)


def test_text_report_errors_and_warnings_are_literal_too():
    run = result()
    run.errors = [RecordError("client", "crm", "C1\x1b[2J", "bad [/red] value\nnext", field="x")]
    run.warnings = [RecordError("client", "crm", "C2", "odd [bold]\x07")]
    text = render(run, OutputFormat.TEXT, width=300)
    assert "client C1\\x1b[2J (crm) field x: bad [/red] value\\nnext" in text
    assert "odd [bold]\\x07" in text
    assert no_control(text)


def test_markdown_cells_stay_one_row_and_form_no_html_or_link():
    text = render(result(MARKDOWN, OSC), OutputFormat.MARKDOWN)
    rows = [line for line in text.splitlines() if line.startswith("| client")]
    assert len(rows) == 2
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert html.count("<tr>") == 3  # the header and exactly one row per operation
    assert "<script" not in html
    assert "<a " not in html
    assert "<code>" not in html
    assert "<em>" not in html
    assert "two\\nlines | &lt;script&gt;x&lt;/script&gt; &amp; `code` [click]" in html
    assert no_control(text)


def test_markdown_rejected_records_cannot_break_out_of_their_line():
    run = result()
    run.errors = [RecordError("client", "crm", "C`1", "bad\n# heading <img src=x>", field="a_b")]
    text = render(run, OutputFormat.MARKDOWN)
    [line] = [line for line in text.splitlines() if line.startswith("- ")]
    html = MarkdownIt("commonmark").render(text)
    assert "<h1>" not in html
    assert "<img" not in html
    assert "<code>" not in html
    assert "C`1" in html
    assert "a_b" in html
    assert line.endswith("bad\\\\n# heading &lt;img src=x&gt;")


def test_json_report_escapes_what_json_leaves_raw_and_keeps_the_values():
    text = render(result(CSI_C1, OSC), OutputFormat.JSON)
    assert no_control(text.replace("\n", ""))
    assert "\u202e" not in text
    names = [op["changes"][0]["new"] for op in json.loads(text)["operations"]]
    assert names == [CSI_C1, OSC]


def test_markdown_and_json_helpers():
    assert markdown("a|b") == "a\\|b"
    assert markdown("x\ny") == "x\\\\ny"
    assert json_visible(json.dumps("\x85", ensure_ascii=False)) == '"\\u0085"'


# -- through the CLI ----------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples" / "crm", tmp_path / "crm")
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(text.replace('path = "examples/crm"', 'path = "crm"'), encoding="utf-8")
    return path


def rename(config: Path, names: dict[str, str]) -> None:
    companies = config.parent / "crm" / "companies.csv"
    with companies.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["name"] = names.get(row["id"], row["name"])
    with companies.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_hostile_names_sync_and_every_report_exits_0(config, capsys, monkeypatch):
    # The text table fits the terminal; a wide one keeps each name on one line.
    monkeypatch.setenv("COLUMNS", "200")
    args = ["--config", str(config)]
    assert main(["run", *args, "--output", "json"]) == 0
    capsys.readouterr()
    rename(config, {"C001": CLOSING_TAG, "C002": LINK, "C003": OSC, "C004": MARKDOWN})
    assert main(["diff", *args, "--output", "markdown"]) == 0
    md = capsys.readouterr().out
    assert "\\[/bold\\] closing tag" in md
    assert "&lt;script&gt;" in md
    assert no_control(md)
    assert main(["run", *args]) == 0  # text, stdout is not a terminal
    out = capsys.readouterr()
    assert CLOSING_TAG in out.out
    assert LINK in out.out
    assert "\\x1b[2J" in out.out
    assert no_control(out.out)
    assert "could not be rendered" not in out.err


def test_a_report_that_fails_to_render_keeps_the_exit_code_of_the_run(config, capsys, monkeypatch):
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(sync.cli.reports, "write_report", broken)
    assert main(["run", "--config", str(config)]) == 0
    out = capsys.readouterr()
    assert "the text report could not be rendered (RuntimeError: renderer broke)" in out.err
    assert out.out.startswith("sync default changed: client: 30 create")
    assert "report_render_failed" in out.err  # logged
    monkeypatch.undo()
    assert main(["run", "--config", str(config)]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_an_unwritable_report_file_keeps_the_exit_code_of_the_run(config, capsys, tmp_path):
    missing = tmp_path / "no" / "such" / "dir" / "report.json"
    assert main(["run", "--config", str(config), "--report", str(missing)]) == 0
    assert "the report file was not written" in capsys.readouterr().err


def test_status_and_conflicts_show_stored_values_literally(config, capsys):
    store = Store.open(load_settings(config).store.url)
    try:
        with store.transaction() as tx:
            conflict = tx.record_conflict(
                "default", EntityKind.CLIENT, "C1", "1", "city", "a\x1b[2J", OSC, "b\u202ec"
            )
            tx.record_rejection(
                "default",
                EntityKind.CONTACT,
                Side.CRM,
                "P1\x1b]0;title\x07",
                "email",
                "x\x1b[31m@y",
                "invalid e-mail [/bold]\n",
                "fp",
            )
    finally:
        store.close()
    assert main(["status", "--config", str(config)]) == 0
    status = capsys.readouterr().out
    assert "crm=\\x1b]8;;https://evil.example" in status
    assert "P1\\x1b]0;title\\x07" in status
    assert "invalid e-mail [/bold]\\n" in status
    assert main(["conflicts", "list", "--config", str(config)]) == 0
    listing = capsys.readouterr().out
    assert "base=a\\x1b[2J" in listing
    assert "flowtly=b\\u202ec" in listing
    assert main(["conflicts", "show", str(conflict), "--config", str(config)]) == 0
    shown = capsys.readouterr().out
    assert json.loads(shown)["flowtly"] == "b\u202ec"
    for text in (status, listing, shown):
        assert no_control(text.replace("\n", ""))
        assert "\u202e" not in text


def test_markdown_lists_warnings_such_as_an_overridden_guard():
    run = result()
    run.warnings = [RecordError("client", "crm", "*", "mass-delete guard overridden: 6 of 6")]
    text = render(run, OutputFormat.MARKDOWN)
    assert "### Warnings\n\n- client \\* (crm): mass-delete guard overridden: 6 of 6\n" in text
