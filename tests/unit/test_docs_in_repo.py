"""The documentation lives in the repository: every configuration key is documented with
its default, and no file sends readers to documents outside it."""

from __future__ import annotations

import enum
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from offline_install import tracked_files
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from connectors.files import FilesSettings
from sync.config import Settings
from sync.settings_base import duration_seconds

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"
OUTSIDE = re.compile(r"\.\./shared|/work/shared|shared docs", re.IGNORECASE)
NESTED = ("mapping", "syncs")  # documented as tables of their own, not key by key


def _keys(model: type[BaseModel], prefix: str = "") -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    for name, info in model.model_fields.items():
        kind = info.annotation
        if not prefix and name in NESTED:
            continue
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found += _keys(kind, f"{prefix}{name}.")
        else:
            found.append((prefix + name, info.get_default(call_default_factory=True)))
    return found


def _documented() -> dict[str, str]:
    """``section.key`` -> the default cell of docs/configuration.md."""
    rows: dict[str, str] = {}
    section = ""
    for line in CONFIGURATION.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^### `\[([^\]]+)\]`", line)
        if heading:
            section = heading.group(1)
        row = re.match(r"^\| `([^`]+)` \| `([^`]*)` \|", line)
        if row and section:
            rows[f"{section}.{row.group(1)}"] = row.group(2)
    return rows


def _as_documented(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


ALL_KEYS = _keys(Settings) + _keys(FilesSettings, "crm.")


@pytest.mark.parametrize(("key", "default"), ALL_KEYS, ids=[key for key, _ in ALL_KEYS])
def test_every_configuration_key_is_documented_with_its_default(key: str, default: object) -> None:
    documented = _documented()
    assert key in documented, f"{key} is missing from docs/configuration.md"
    cell = documented[key]
    if default is PydanticUndefined:
        assert cell == "required"
    elif default is None:
        assert cell == "unset"
    else:
        value = tomllib.loads(f"value = {cell}")["value"]
        if isinstance(default, float) and isinstance(value, str):
            value = duration_seconds(value)  # durations are documented as "15m", kept in seconds
        assert value == _as_documented(default)


def test_no_documented_key_is_unknown() -> None:
    known = {key for key, _ in ALL_KEYS}
    assert set(_documented()) <= known


def test_no_file_refers_to_documents_outside_the_repository() -> None:
    tracked = tracked_files()
    this = Path(__file__).resolve().relative_to(ROOT).as_posix()
    offending = []
    for name in tracked:
        path = ROOT / name
        if name == this:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary files (images) cite nothing
        offending += [f"{name}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
    assert offending == []


def test_the_root_holds_only_what_the_project_needs() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    at_root = {name for name in tracked if "/" not in name}
    assert not {name for name in at_root if name.startswith("bench_") or name.endswith(".json")}
