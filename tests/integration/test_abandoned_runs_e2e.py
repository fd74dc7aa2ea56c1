"""A run killed by SIGKILL stays ``running`` in the store until the next run of its sync
takes the lock and marks it ``abandoned``; ``status`` shows it so."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

from e2e_support import SandboxProcess, run_cli, small_crm_config
from test_crash import _run_and_kill  # the crash tests' kill: SIGKILL after N writes


def _outcomes(store: Path) -> list[tuple[int, str, str | None]]:
    with sqlite3.connect(store) as db:
        return db.execute("SELECT id, outcome, error FROM run ORDER BY id").fetchall()


def test_a_killed_run_is_marked_abandoned_by_the_next_run(
    sandbox_factory: Callable[..., SandboxProcess], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(latency_ms=30)
    config = small_crm_config(tmp_path, sandbox.url)
    config.write_text(
        config.read_text(encoding="utf-8").replace('level = "warning"', 'level = "debug"'),
        encoding="utf-8",
    )
    store = tmp_path / "state.db"
    assert _run_and_kill(config, after_writes=1) == -signal.SIGKILL
    assert [outcome for _, outcome, _ in _outcomes(store)] == ["running"]

    finished = run_cli("run", config=config)
    assert finished.returncode == 0, finished.stderr
    (first, outcome, error), (_, last, _) = _outcomes(store)
    assert (outcome, last) == ("abandoned", "ok")
    assert "killed" in str(error)
    status = run_cli("status", config=config)
    assert f"run {first}: abandoned" in status.stdout
