"""Fixtures shared by the unit tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def example_config(tmp_path: Path) -> Path:
    """``config.example.toml`` over a copy of the example CRM folder, in ``tmp_path``: the
    CLI runs against the embedded sandbox, persisted next to it."""
    shutil.copytree(ROOT / "examples" / "crm", tmp_path / "crm")
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('path = "examples/crm"', 'path = "crm"')
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path
