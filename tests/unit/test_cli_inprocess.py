"""The command line in-process against the embedded sandbox: check, diff, run, status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sync.cli.main import main
from sync.flowtly.assumptions import ASSUMPTIONS


@pytest.fixture
def config(example_config: Path) -> Path:
    return example_config


def test_check_reports_both_sides_and_a_verdict_per_assumption(config, capsys):
    assert main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "crm: ok" in out
    assert "flowtly: ok - reachable, credentials valid" in out
    for assumption in ASSUMPTIONS:
        assert f"assumption {assumption.key}: " in out
    assert "contradicted" not in out


def test_diff_then_run_then_nothing_to_do(config, capsys):
    assert main(["diff", "--config", str(config), "--output", "json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["dry_run"] is True
    assert planned["summary"]["client"]["create"] == 30
    assert planned["summary"]["contact"]["create"] == 64
    assert main(["run", "--config", str(config), "--output", "markdown"]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("## sync default changed:")
    assert "| client | create | flowtly |" in markdown
    assert main(["run", "--config", str(config)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["status", "--config", str(config)]) == 0
    status = capsys.readouterr().out
    assert "run 2: ok" in status
    assert "0 open conflict(s)" in status


def test_tax_ids_are_masked_unless_asked(config, capsys):
    main(["diff", "--config", str(config), "--output", "json"])
    masked = capsys.readouterr().out
    main(["diff", "--config", str(config), "--output", "json", "--show-sensitive"])
    shown = capsys.readouterr().out
    vat = next(
        line.split(",")[8]
        for line in (config.parent / "crm" / "companies.csv").read_text().splitlines()[1:]
    )
    assert vat not in masked
    assert vat in shown


def test_unknown_sync_name_is_a_usage_error(config, capsys):
    assert main(["run", "--config", str(config), "--sync", "nope"]) == 2
    assert "--sync" in capsys.readouterr().err
