"""Reports for scripts: a failed run still reports (with a status), several syncs make one
JSON document, and ``--report FILE`` takes its format from the extension."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import SandboxProcess, run_cli, small_crm, small_crm_config, write_crm

YESTERDAY = '{"sync": "default", "status": "ok", "summary": {}}\n'


def _embedded(tmp_path: Path) -> Path:
    """A config on the in-process sandbox and a small CRM."""
    return small_crm_config(tmp_path, f"sandbox://{tmp_path / 'flowtly.db'}")


def test_a_failed_run_replaces_the_report_and_prints_one_with_output_json(
    sandbox_factory: Callable[..., SandboxProcess], tmp_path: Path
) -> None:
    sandbox = sandbox_factory()
    config = small_crm_config(tmp_path, sandbox.url, token="wrong-token-5531")
    report = tmp_path / "report.json"
    report.write_text(YESTERDAY, encoding="utf-8")
    result = run_cli("run", "--output", "json", "--report", str(report), config=config)
    assert result.returncode == 1, result.stderr
    printed = json.loads(result.stdout)
    written = json.loads(report.read_text(encoding="utf-8"))
    for document in (printed, written):
        assert document["status"] == "failed"
        assert document["sync"] == "default"
        assert document["error"]["type"] == "AuthenticationError"
        assert "401" in document["error"]["message"]
        assert document["summary"] == {}
    assert "wrong-token-5531" not in result.stdout + report.read_text(encoding="utf-8")


def test_a_good_run_reports_its_status(tmp_path: Path) -> None:
    config = _embedded(tmp_path)
    result = run_cli("run", "--output", "json", config=config)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "ok"


def test_several_syncs_print_one_json_document(tmp_path: Path) -> None:
    config = _embedded(tmp_path)
    write_crm(tmp_path / "crm-b", small_crm())
    text = config.read_text(encoding="utf-8")
    text += (
        "[syncs.a]\n"
        "[syncs.b]\n"
        f"crm = {{ path = {json.dumps(str(tmp_path / 'crm-b'))} }}\n"
        f"flowtly = {{ base_url = {json.dumps('sandbox://' + str(tmp_path / 'b.db'))} }}\n"
    )
    config.write_text(text, encoding="utf-8")
    report = tmp_path / "all.json"
    result = run_cli("diff", "--output", "json", "--report", str(report), config=config)
    assert result.returncode == 0, result.stderr
    for document in (json.loads(result.stdout), json.loads(report.read_text(encoding="utf-8"))):
        assert document["status"] == "ok"
        assert [one["sync"] for one in document["syncs"]] == ["a", "b"]
        assert all(one["summary"]["client"]["create"] == 5 for one in document["syncs"])


@pytest.mark.parametrize(
    ("name", "output", "starts"),
    [
        ("report.md", None, "## sync default would change:"),
        ("report.txt", None, "sync default would change:"),
        ("report.text", None, "sync default would change:"),
        ("report.json", None, "{"),
        ("report.out", None, "{"),
        ("report.md", "json", "## sync default would change:"),
        ("report.json", "markdown", "{"),
        ("report.out", "markdown", "## "),
    ],
)
def test_the_report_file_format_follows_the_extension_else_output(
    tmp_path: Path, name: str, output: str | None, starts: str
) -> None:
    config = _embedded(tmp_path)
    report = tmp_path / name
    options = ["--output", output] if output else []
    result = run_cli("diff", *options, "--report", str(report), config=config)
    assert result.returncode == 0, result.stderr
    written = report.read_text(encoding="utf-8")
    assert written.startswith(starts), written[:200]
    if starts == "{":
        assert json.loads(written)["status"] == "ok"


def test_a_configuration_error_at_run_time_exits_2_and_still_reports(tmp_path: Path) -> None:
    config = _embedded(tmp_path)
    text = config.read_text(encoding="utf-8")
    broken = text.replace('type = "files"\n', 'type = "files"\ndelimiter = ";;"\n')
    config.write_text(broken, encoding="utf-8")
    report = tmp_path / "report.json"
    report.write_text(YESTERDAY, encoding="utf-8")
    result = run_cli("run", "--report", str(report), config=config)
    written = json.loads(report.read_text(encoding="utf-8"))
    assert (result.returncode, written["status"]) == (2, "failed"), result.stderr
    assert "crm.delimiter" in written["error"]["message"]
    assert result.stderr.count("crm.delimiter") == 1
