"""End-to-end fixtures (helpers live in ``e2e_support``).

Starting a CLI process costs seconds (imports), so the e2e tests share one initial sync:
`synced_template` runs it once per session against its own sandbox. Each `synced_env` is a
private copy of the result (CRM folder, state store, sandbox database) served by its own
sandbox, exactly as a sandbox persisted with ``--db`` restarts. Those sandboxes are all
started together, up front, by `_sandbox_pool`, so their start-up costs overlap.
"""

from __future__ import annotations

import shutil
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_support import (
    Env,
    FlowtlyApi,
    PendingSandbox,
    SandboxProcess,
    Template,
    run_cli,
    small_crm,
    spawn_sandbox,
    start_sandbox,
    write_config,
    write_crm,
)

from sync.model import Side
from sync.store import Store


@pytest.fixture
def sandbox_factory(tmp_path: Path) -> Iterator[Callable[..., SandboxProcess]]:
    """``factory(db=..., latency_ms=...)`` starts sandboxes that are stopped after the test."""
    started: list[SandboxProcess] = []

    def factory(*, db: Path | None = None, latency_ms: float = 0.0) -> SandboxProcess:
        sandbox = start_sandbox(tmp_path, db=db, latency_ms=latency_ms)
        started.append(sandbox)
        return sandbox

    yield factory
    for sandbox in started:
        sandbox.stop()


@pytest.fixture(scope="session")
def synced_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """Run the initial sync of `small_crm` once; its sandbox is stopped afterwards."""
    root = tmp_path_factory.mktemp("synced")
    write_crm(root / "crm", small_crm())
    sandbox = start_sandbox(root, db=root / "flowtly.db")
    try:
        config = write_config(
            root / "config.toml", base_url=sandbox.url, crm=root / "crm", store=root / "state.db"
        )
        first = run_cli("run", "--output", "json", config=config)
    finally:
        sandbox.stop()
    for log in root.glob("sandbox-*.log"):
        log.unlink()
    return Template(root, first)


def _rebind_moved_crm(root: Path) -> None:
    """A copy of the template is its CRM folder moved, same records: say so, as `flowtly-sync
    store rebind` would (the store is bound to the template's folder)."""
    with Store.open(f"sqlite:///{root / 'state.db'}") as store:
        store.bind("default", {Side.CRM: f"files:{(root / 'crm').resolve()}"})


class _Pool:
    """Copies of the template, each with its sandbox starting or started."""

    def __init__(self, template: Template, base: Path) -> None:
        self.template = template
        self.base = base
        self.pending: deque[tuple[Path, PendingSandbox]] = deque()
        self.count = 0

    def spawn(self) -> tuple[Path, PendingSandbox]:
        self.count += 1
        root = self.base / f"env{self.count}"
        shutil.copytree(self.template.root, root)
        _rebind_moved_crm(root)
        return root, spawn_sandbox(root, db=root / "flowtly.db")

    def take(self) -> tuple[Path, SandboxProcess]:
        root, pending = self.pending.popleft() if self.pending else self.spawn()
        return root, pending.ready()

    def close(self) -> None:
        while self.pending:
            _, pending = self.pending.popleft()
            pending.ready().stop()


@pytest.fixture(scope="session")
def _sandbox_pool(
    synced_template: Template,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[_Pool]:
    pool = _Pool(synced_template, tmp_path_factory.mktemp("pool"))
    wanted = sum(
        "synced_env" in getattr(item, "fixturenames", ()) for item in request.session.items
    )
    pool.pending.extend(pool.spawn() for _ in range(wanted))
    yield pool
    pool.close()


def _env(root: Path, sandbox: SandboxProcess) -> Env:
    config = write_config(
        root / "config.toml", base_url=sandbox.url, crm=root / "crm", store=root / "state.db"
    )
    return Env(root, root / "crm", root / "state.db", config, sandbox, FlowtlyApi(sandbox.url))


@pytest.fixture
def synced_env(_sandbox_pool: _Pool) -> Iterator[Env]:
    """A private copy of the synced template, served by its own sandbox."""
    root, sandbox = _sandbox_pool.take()
    env = _env(root, sandbox)
    yield env
    env.api.close()
    sandbox.stop()
