"""``[sync] run_timeout``: a run that hangs is stopped, recorded as failed and unlocked; the
daemon reports a run past its deadline as unhealthy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from connectors.base import ChangeBatch, Cursor
from connectors.memory import MemoryConnector
from sync.config import Settings, load_settings
from sync.daemon import Daemon, TickOutcome, create_app
from sync.engine.run import RunResult, SyncJob, run_sync
from sync.errors import DeadlineExceeded
from sync.model import EntityKind, Record
from sync.store import RunOutcome, Store

CLIENT = EntityKind.CLIENT
FIELDS = {CLIENT: ("name", "country", "vat_number")}


class HangingSide(MemoryConnector):
    """Reads that never end, like a listing whose ``next`` links go on forever."""

    async def read(
        self, entity: EntityKind, since: Cursor | None = None
    ) -> AsyncIterator[ChangeBatch]:
        page = 0
        while True:
            page += 1
            record = Record(entity, f"f{page}", {"name": f"Co {page}", "country": "PL"})
            yield ChangeBatch(entity, records=[record], present_ids=[record.id])
            await asyncio.sleep(0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/state.db")
    yield opened
    opened.close()


def job(store: Store) -> SyncJob:
    crm = MemoryConnector(entities=(CLIENT,), fields=FIELDS, id_prefix="c")
    crm.put(Record(CLIENT, "C1", {"name": "Acme", "country": "PL", "vat_number": "PL1"}))
    flowtly = HangingSide(entities=(CLIENT,), fields=FIELDS, id_prefix="f")
    return SyncJob("t", crm, flowtly, store)


@pytest.mark.parametrize("dry_run", [False, True])
async def test_a_run_past_its_timeout_stops_failed_and_unlocked(
    store: Store, dry_run: bool
) -> None:
    with pytest.raises(DeadlineExceeded) as caught:
        await run_sync(job(store), dry_run=dry_run, run_timeout=0.2)
    assert str(caught.value) == (
        "sync t: the run was still going after 0.2 s (sync.run_timeout) and was stopped; "
        "what it finished is kept, the next run goes on from there"
    )
    assert caught.value.key == "sync.run_timeout"
    runs = store.recent_runs("t")
    if dry_run:
        assert runs == []  # a dry run records nothing
    else:
        assert [run.outcome for run in runs] == [RunOutcome.FAILED]
        assert runs[0].error is not None
        assert runs[0].error.startswith("DeadlineExceeded: sync t: the run was still going")
        assert runs[0].finished_at is not None
    with store.lock("t"):  # released
        pass


async def test_a_run_within_its_timeout_is_untouched(store: Store) -> None:
    crm = MemoryConnector(entities=(CLIENT,), fields=FIELDS, id_prefix="c")
    flowtly = MemoryConnector(entities=(CLIENT,), fields=FIELDS, id_prefix="f")
    result = await run_sync(SyncJob("t", crm, flowtly, store), run_timeout=60)
    assert result.clean
    assert [run.outcome for run in store.recent_runs("t")] == [RunOutcome.OK]


async def test_a_timeout_error_of_a_side_is_not_taken_for_the_run_deadline(store: Store) -> None:
    class TimingOut(MemoryConnector):
        async def read(
            self, entity: EntityKind, since: Cursor | None = None
        ) -> AsyncIterator[ChangeBatch]:
            raise TimeoutError("the side's own")
            yield  # pragma: no cover - makes this an async generator

    crm = MemoryConnector(entities=(CLIENT,), fields=FIELDS, id_prefix="c")
    flowtly = TimingOut(entities=(CLIENT,), fields=FIELDS, id_prefix="f")
    with pytest.raises(TimeoutError, match="the side's own"):
        await run_sync(SyncJob("t", crm, flowtly, store), run_timeout=60)


# -- the daemon ----------------------------------------------------------------------------


def write_config(root: Path) -> Path:
    path = root / "config.toml"
    path.write_text(
        """
[store]
url = "sqlite:///state.db"
[flowtly]
base_url = "sandbox://:memory:"
[sync]
run_timeout = "1m"
""",
        encoding="utf-8",
    )
    return path


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class BlockedRunner:
    """A run that is stuck where its deadline cannot reach, until ``release``."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def __call__(
        self, settings: Settings, store: Store, stopping: Callable[[], bool]
    ) -> RunResult:
        self.started.set()
        await self.release.wait()
        return RunResult(settings.sync.name, False)


async def test_healthz_is_503_while_a_run_is_past_its_timeout(tmp_path: Path, store: Store) -> None:
    settings = load_settings(write_config(tmp_path))
    assert settings.sync.run_timeout == 60
    runner = BlockedRunner()
    monotonic = Monotonic()
    daemon = Daemon(settings, store, runner=runner, monotonic=monotonic)
    transport = httpx.ASGITransport(app=create_app(daemon))
    daemon.start_scheduler(paused=True)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as http:
            tick = asyncio.create_task(daemon.tick("default"))
            await runner.started.wait()
            monotonic.now += 59
            assert (await http.get("/healthz")).status_code == 200
            monotonic.now += 2
            response = await http.get("/healthz")
            assert response.status_code == 503
            assert response.json()["reason"] == (
                "sync default: run in flight for 61.0 s, past sync.run_timeout (60 s)"
            )
            runner.release.set()
            assert await tick is TickOutcome.OK
            assert (await http.get("/healthz")).status_code == 200
    finally:
        daemon.stop()
