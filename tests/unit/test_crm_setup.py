"""``crm setup``: lists custom fields, creates the missing ones only with --apply."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from connectors.memory import MemoryConnector
from connectors.setup import CustomField
from sync.cli import crm_setup
from sync.config import load_settings
from sync.model import EntityKind


class _WithFields(MemoryConnector):
    """A memory CRM whose account lacks one of two custom fields."""

    def __init__(self, creatable: bool) -> None:
        super().__init__()
        self.creatable = creatable
        self.fields_now = {
            "flowtly_vat_number": CustomField(
                EntityKind.CLIENT, "flowtly_vat_number", "vat_number", "string", True
            ),
            "flowtly_due_days": CustomField(
                EntityKind.CLIENT, "flowtly_due_days", "due_days", "number", False
            ),
        }
        self.created: list[str] = []

    def creates_fields(self) -> bool:
        return self.creatable

    async def custom_fields(self) -> list[CustomField]:
        return list(self.fields_now.values())

    async def create_fields(self, missing: Sequence[CustomField]) -> list[CustomField]:
        for field in missing:
            self.created.append(field.name)
            self.fields_now[field.name] = replace(field, present=True)
        return [self.fields_now[field.name] for field in missing]


def _settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(
        '[crm]\ntype = "memory"\n[flowtly]\nbase_url = "sandbox://"\n'
        f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n'
    )
    return load_settings(path)


@pytest.mark.parametrize("creatable", [True, False])
async def test_lists_without_creating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, creatable: bool
) -> None:
    crm = _WithFields(creatable)
    monkeypatch.setattr(crm_setup, "build_crm", lambda settings: crm)
    out = io.StringIO()
    assert await crm_setup.setup_crm(_settings(tmp_path), out, apply=False) is False
    text = out.getvalue()
    assert "2 custom field(s), 1 missing" in text
    assert "flowtly_due_days" in text
    assert "MISSING" in text
    assert ("--apply" in text) is creatable
    assert crm.created == []


async def test_apply_creates_only_the_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crm = _WithFields(True)
    monkeypatch.setattr(crm_setup, "build_crm", lambda settings: crm)
    out = io.StringIO()
    assert await crm_setup.setup_crm(_settings(tmp_path), out, apply=True) is True
    assert crm.created == ["flowtly_due_days"]
    assert "every custom field is present" in out.getvalue()


async def test_apply_refused_where_the_api_cannot_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crm = _WithFields(False)
    monkeypatch.setattr(crm_setup, "build_crm", lambda settings: crm)
    out = io.StringIO()
    assert await crm_setup.setup_crm(_settings(tmp_path), out, apply=True) is False
    assert crm.created == []
    assert "cannot create fields" in out.getvalue()


def test_a_connector_without_custom_fields(tmp_path: Path) -> None:
    from sync.cli.main import main

    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[crm]\ntype = "memory"\n[flowtly]\nbase_url = "sandbox://"\n'
        f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n'
    )
    assert main(["crm", "setup", "-c", str(cfg)]) == 0
