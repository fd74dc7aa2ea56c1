"""Two real daemon processes sharing one PostgreSQL store.

Between them they run every sync, never the same sync twice at once (advisory locks), and
when one is killed the other carries on with all syncs. Each test gets a fresh schema.
The waits poll the ``run`` table with short sleeps, bounded by a deadline: the test
coordinates with other processes, which cannot call it back.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
from e2e_support import TOKEN, SandboxProcess, cli_env, small_crm, spawn_sandbox, write_crm

from sync.store import RunOutcome, RunRow, Store

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SYNCS = ("alpha", "beta")
DEADLINE = 90.0
POLL = 0.1
RUNS_PER_SYNC = 3


@pytest.fixture
def sandboxes(tmp_path: Path) -> Iterator[dict[str, SandboxProcess]]:
    """One Flowtly sandbox per sync, started together."""
    pending = {name: spawn_sandbox(tmp_path, db=None) for name in SYNCS}
    started: dict[str, SandboxProcess] = {}
    try:
        for name, sandbox in pending.items():
            started[name] = sandbox.ready()
        yield started
    finally:
        for sandbox in started.values():
            sandbox.stop()


def _config(root: Path, url: str, sandboxes: dict[str, SandboxProcess]) -> Path:
    lines = [
        "[flowtly]",
        f"token = {json.dumps(TOKEN)}",
        "rate_limit = 0",
        "[store]",
        f"url = {json.dumps(url)}",
        "[crm]",
        'type = "files"',
        "[daemon]",
        'listen = "127.0.0.1:0"',
        "shutdown_timeout = 20",
        "[logging]",
        'format = "json"',
        'level = "info"',
    ]
    for name in SYNCS:
        crm = write_crm(root / f"crm-{name}", small_crm())
        lines += [
            f"[syncs.{name}]",
            f"flowtly = {{ base_url = {json.dumps(sandboxes[name].url)} }}",
            f"crm = {{ path = {json.dumps(str(crm))} }}",
            'sync = { interval = "1s" }',
        ]
    path = root / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _daemon(config: Path, log: Path, stack: ExitStack) -> subprocess.Popen[str]:
    with log.open("w", encoding="utf-8") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sync", "daemon", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
            env=cli_env(),
            cwd=config.parent,
        )

    def reap() -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    stack.callback(reap)
    return proc


def _runs(store: Store) -> list[RunRow]:
    return [run for name in SYNCS for run in store.recent_runs(name, limit=10_000)]


def _wait_until(
    store: Store, done: Callable[[list[RunRow]], bool], what: str, logs: list[Path]
) -> list[RunRow]:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        runs = _runs(store)
        if done(runs):
            return runs
        time.sleep(POLL)
    tails = "\n".join(log.read_text(encoding="utf-8")[-2000:] for log in logs)
    pytest.fail(f"timed out waiting for {what}; runs: {_runs(store)}\n{tails}")


def _finished_by(
    runs: list[RunRow], name: str, pid: int | None = None, after: datetime | None = None
) -> int:
    return sum(
        1
        for r in runs
        if r.sync == name
        and r.outcome is not RunOutcome.RUNNING
        and (pid is None or r.pid == pid)
        and (after is None or r.started_at > after)
    )


def _assert_no_overlap(runs: list[RunRow], killed_pid: int, killed_at: datetime) -> None:
    for name in SYNCS:
        spans = []
        for r in runs:
            if r.sync != name:
                continue
            end = r.finished_at
            if end is None:
                # Only the killed daemon may leave a run unfinished; it ended with the process.
                assert r.pid == killed_pid, f"run {r.id} of {name} never finished"
                end = killed_at
            spans.append((r.started_at, end, r.id, r.pid))
        spans.sort()
        for (_, end, one, pid1), (start, _, two, pid2) in itertools.pairwise(spans):
            assert start >= end, f"{name}: run {one} (pid {pid1}) overlaps {two} (pid {pid2})"


def test_two_daemons_share_the_syncs_and_one_takes_over_when_the_other_dies(
    tmp_path: Path, pg_url: str, sandboxes: dict[str, SandboxProcess]
) -> None:
    config = _config(tmp_path, pg_url, sandboxes)
    logs = [tmp_path / "daemon-a.log", tmp_path / "daemon-b.log"]
    with ExitStack() as stack:
        store = Store.open(pg_url)
        stack.callback(store.close)
        first = _daemon(config, logs[0], stack)
        second = _daemon(config, logs[1], stack)

        # Both up and ticking: every sync ran a few times, by one daemon or the other.
        _wait_until(
            store,
            lambda runs: all(_finished_by(runs, n) >= RUNS_PER_SYNC for n in SYNCS),
            f"{RUNS_PER_SYNC} runs of each sync",
            logs,
        )
        assert first.poll() is None
        assert second.poll() is None

        killed_at = datetime.now(UTC)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)

        # The survivor takes every sync over, including one the dead daemon was running.
        _wait_until(
            store,
            lambda runs: all(
                _finished_by(runs, n, pid=second.pid, after=killed_at) >= 2 for n in SYNCS
            ),
            "the surviving daemon to run every sync",
            logs,
        )
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0

        runs = _runs(store)
        assert store.integrity_check() == "ok"
    assert {r.pid for r in runs} <= {first.pid, second.pid}
    _assert_no_overlap(runs, first.pid, killed_at)
    # A run the killed daemon was in the middle of is marked abandoned by the survivor
    # when it takes that sync's lock; every other run finished well.
    settled = [r for r in runs if not (r.pid == first.pid and r.outcome is RunOutcome.ABANDONED)]
    assert all(r.outcome in (RunOutcome.OK, RunOutcome.RUNNING) for r in settled), [
        (r.id, r.outcome, r.error)
        for r in settled
        if r.outcome not in (RunOutcome.OK, RunOutcome.RUNNING)
    ]
