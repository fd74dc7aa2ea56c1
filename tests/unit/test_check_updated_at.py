"""``flowtly-sync check`` probes the ``updatedAt[after]`` filter incremental reads rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.cli.main import main
from sync.sandbox import _handlers


def _verdict(out: str) -> str:
    [line] = [line for line in out.splitlines() if line.startswith("assumption updated_at_filter")]
    return line


def test_the_filter_is_confirmed_on_the_sandbox(example_config: Path, capsys) -> None:
    assert main(["check", "--config", str(example_config)]) == 0
    assert "unverified" in _verdict(capsys.readouterr().out)  # nothing synced yet
    assert main(["run", "--config", str(example_config)]) == 0
    capsys.readouterr()
    assert main(["check", "--config", str(example_config)]) == 0
    line = _verdict(capsys.readouterr().out)
    assert "confirmed" in line
    assert "/client-contacts: none after 2999, all 64 after 1970" in line


def test_a_filter_flowtly_ignores_is_contradicted(
    example_config: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["run", "--config", str(example_config)]) == 0
    capsys.readouterr()
    monkeypatch.setattr(_handlers, "updated_at_filters", lambda resource, query: [])
    assert main(["check", "--config", str(example_config)]) == 1
    line = _verdict(capsys.readouterr().out)
    assert "contradicted" in line
    assert "the filter is ignored" in line
