"""A token Flowtly refuses, or none at all: `run` and `check` name the setting to fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import SandboxProcess, run_cli, small_crm_config

SETTINGS = ("[flowtly] token", "FLOWTLY_SYNC_FLOWTLY__TOKEN")


@pytest.fixture
def sandbox(sandbox_factory: Callable[..., SandboxProcess]) -> SandboxProcess:
    return sandbox_factory()


@pytest.mark.parametrize("token", ["wrong-token-8842", ""], ids=["wrong", "missing"])
def test_run_and_check_name_the_token_setting(
    sandbox: SandboxProcess, tmp_path: Path, token: str
) -> None:
    config = small_crm_config(tmp_path, sandbox.url, token=token)
    ran = run_cli("run", config=config)
    assert ran.returncode == 1, ran.stderr
    said = [line for line in ran.stderr.splitlines() if line.startswith("flowtly-sync:")]
    assert len(said) == 1, ran.stderr
    assert "401" in said[0]
    for setting in SETTINGS:
        assert setting in said[0]
    checked = run_cli("check", config=config)
    assert checked.returncode == 1
    failed = next(line for line in checked.stdout.splitlines() if line.startswith("flowtly:"))
    assert "FAILED" in failed
    for setting in SETTINGS:
        assert setting in failed
    if token:
        assert token not in ran.stdout + ran.stderr + checked.stdout + checked.stderr
