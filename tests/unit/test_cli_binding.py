"""``check`` and ``store rebind`` in-process, against embedded sandboxes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sync.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def write_config(root: Path, sandbox_db: str, *, extra: str = "") -> Path:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('path = "examples/crm"', 'path = "crm"')
    text = text.replace("sandbox://.flowtly-sync/sandbox.db", f"sandbox://{sandbox_db}")
    path = root / "config.toml"
    path.write_text(text + extra, encoding="utf-8")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples" / "crm", tmp_path / "crm")
    return tmp_path


def test_check_says_what_the_store_is_bound_to(root: Path, capsys: pytest.CaptureFixture[str]):
    config = write_config(root, "a.db")
    assert main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "binding: none recorded yet - the first run binds the store to crm 'files:" in out
    assert "assumption employee_organization: confirmed - organization /organizations/" in out
    assert main(["run", "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["check", "--config", str(config)]) == 0
    assert "binding: ok - the store is bound to crm 'files:" in capsys.readouterr().out

    config = write_config(root, "b.db")
    assert main(["check", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("binding: "))
    assert line.startswith("binding: MISMATCH - sync 'default' refused: its store is bound to")
    assert line.count("flowtly:sandbox.invalid/organizations/") == 2
    assert "store rebind --sync default" in line
    assert "crm: ok" in out


def test_rebind_needs_the_sync_named_when_several_are_configured(
    root: Path, capsys: pytest.CaptureFixture[str]
):
    config = write_config(root, "a.db", extra="\n[syncs.one]\n[syncs.two]\n")
    assert main(["store", "rebind", "--config", str(config)]) == 2
    assert "--sync" in capsys.readouterr().err
    assert main(["store", "rebind", "--sync", "two", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sync two: the store is now bound to the configured sides\n")
    assert "  crm: (none recorded) -> files:" in out
    assert main(["store", "rebind", "--sync", "two", "--config", str(config)]) == 0
    assert "bound to these sides already; no change" in capsys.readouterr().out


def test_merge_refuses_a_store_bound_to_another_account(
    root: Path, capsys: pytest.CaptureFixture[str]
):
    assert main(["run", "--config", str(write_config(root, "a.db"))]) == 0
    capsys.readouterr()
    other = write_config(root, "b.db")
    assert main(["merge", "--apply", "--config", str(other)]) == 1
    captured = capsys.readouterr()
    assert "refused: its store is bound to" in captured.err
    assert "merged" not in captured.out
