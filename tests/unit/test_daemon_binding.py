"""A daemon tick goes through the same binding check as ``run``: pointed at another
account, the tick fails with the refusal (and backs off) instead of syncing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from sync.config import load_settings
from sync.daemon import Daemon, TickOutcome
from sync.model import EntityKind
from sync.store import RunOutcome, Store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def config(root: Path, sandbox_db: str) -> Path:
    path = root / "config.toml"
    path.write_text(
        f'[flowtly]\nbase_url = "sandbox://{sandbox_db}"\n'
        '[store]\nurl = "sqlite:///state.db"\n'
        '[crm]\ntype = "files"\npath = "crm"\n'
        '[daemon]\nlisten = "127.0.0.1:0"\n',
        encoding="utf-8",
    )
    return path


async def test_a_tick_against_another_account_fails_with_the_refusal(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "crm", tmp_path / "crm")
    first = load_settings(config(tmp_path, "a.db"))
    with Store.open(first.store.url) as store:
        assert await Daemon(first, store).tick("default") is TickOutcome.OK
        links = store.link_count("default", EntityKind.CLIENT)
        other = load_settings(config(tmp_path, "b.db"))
        daemon = Daemon(other, store)
        assert await daemon.tick("default") is TickOutcome.FAILED
        state = daemon.state("default")
        assert state.last_error is not None
        assert state.last_error.startswith("BindingMismatch: sync 'default' refused")
        assert state.failures == 1
        assert store.recent_runs("default", limit=1)[0].outcome is RunOutcome.FAILED
        assert store.link_count("default", EntityKind.CLIENT) == links
