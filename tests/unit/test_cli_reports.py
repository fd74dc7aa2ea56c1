"""Where a run's report goes: a JSON report on stdout and a JSON report file are one
rendering written twice; a report file that cannot be written is said, never fatal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import sync.cli.reports as reports
import sync.report.outcomes as outcomes
from sync.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(ROOT / "examples" / "crm", tmp_path / "crm")
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(text.replace('path = "examples/crm"', 'path = "crm"'), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return path


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The format of every report rendered."""
    seen: list[str] = []
    real = reports.write_report

    def counting(result: Any, fmt: Any, out: Any, **kwargs: Any) -> None:
        seen.append(str(fmt))
        real(result, fmt, out, **kwargs)

    monkeypatch.setattr(reports, "write_report", counting)
    monkeypatch.setattr(outcomes, "write_report", counting)
    return seen


def test_a_json_report_on_stdout_and_in_the_file_is_rendered_once(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], renders: list[str]
) -> None:
    report = tmp_path / "run.json"
    assert main(["run", "--config", str(config), "--output", "json", "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    assert report.read_text(encoding="utf-8") == printed
    assert json.loads(printed)["summary"]["client"]["create"] == 30
    assert renders == ["json"]


def test_a_report_file_of_another_format_is_rendered_on_its_own(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], renders: list[str]
) -> None:
    report = tmp_path / "run.md"
    assert main(["run", "--config", str(config), "--output", "json", "--report", str(report)]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["client"]["create"] == 30
    assert report.read_text(encoding="utf-8").startswith("#")
    assert sorted(renders) == ["json", "markdown"]


def test_a_report_file_that_cannot_be_written_leaves_stdout_whole(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "missing" / "run.json"  # its folder does not exist
    assert main(["run", "--config", str(config), "--output", "json", "--report", str(report)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["summary"]["client"]["create"] == 30
    assert "the report file was not written" in err
    assert not report.exists()


def test_a_report_file_failing_midway_stops_only_the_file() -> None:
    class Full:
        def __init__(self) -> None:
            self.taken = ""

        def write(self, text: str) -> int:
            if self.taken:
                raise OSError(28, "No space left on device")
            self.taken += text
            return len(text)

    class Out:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> int:
            self.text += text
            return len(text)

    stdout, file = Out(), Full()
    both = reports._Both(stdout, file)  # type: ignore[arg-type]
    for part in ("{", '"a": 1', "}"):
        both.write(part)
    assert stdout.text == '{"a": 1}'
    assert file.taken == "{"
    assert isinstance(both.failure, OSError)
