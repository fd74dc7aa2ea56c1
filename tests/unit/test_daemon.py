"""The daemon's scheduling core: ticks run syncs, locks skip, failures back off, stops stop.

Ticks are called directly (no waiting for a clock); the real run path is exercised against
a files CRM and the in-process sandbox.
"""

from __future__ import annotations

import asyncio
import csv
import os
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry

from sync.cli.main import main
from sync.config import Settings, load_settings
from sync.daemon import Daemon, TickOutcome, TickReason, backoff_ticks, run_job
from sync.engine.run import RunResult
from sync.errors import AuthenticationError, ConfigError
from sync.model import EntityKind
from sync.store import RunOutcome, Store
from sync.wiring import open_store

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "crm"
TOKEN = "tok-daemon-test-0123456789"
COMPANIES = 3


def write_crm(folder: Path, companies: int = COMPANIES) -> Path:
    """The first ``companies`` example companies with their contacts and notes."""
    folder.mkdir(parents=True)
    with (EXAMPLES / "companies.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header, kept = rows[0], rows[1 : companies + 1]
    ids = {row[0] for row in kept}
    _write(folder / "companies.csv", header, kept)
    for name in ("contacts.csv", "notes.csv"):
        with (EXAMPLES / name).open(encoding="utf-8", newline="") as handle:
            table = list(csv.reader(handle))
        column = table[0].index("company_id")
        _write(folder / name, table[0], [r for r in table[1:] if r[column] in ids])
    return folder


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_config(root: Path, extra: str = "") -> Path:
    """A config: files CRM, in-process sandbox, SQLite store, all under ``root``."""
    if not (root / "crm").exists():
        write_crm(root / "crm")
    path = root / "config.toml"
    path.write_text(
        f"""
[flowtly]
base_url = "sandbox://sandbox.db"
token = "{TOKEN}"
[store]
url = "sqlite:///state.db"
[crm]
type = "files"
path = "crm"
[daemon]
listen = "127.0.0.1:0"
backoff_max_skip = 4
{extra}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    # The CLI configures structlog for the whole process, bound to the stderr of the test
    # that ran it (closed afterwards): start and end every test on structlog's defaults.
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(write_config(tmp_path))


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    opened = open_store(settings)
    yield opened
    opened.close()


def sample(daemon: Daemon, name: str, labels: dict[str, str]) -> float | None:
    registry: CollectorRegistry = daemon.metrics.registry
    return registry.get_sample_value(name, labels)


class FakeRunner:
    """Stands in for a run: raises what it is told to, else returns an empty result."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_with: list[BaseException] = []
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.saw_stopping: list[bool] = []

    async def __call__(
        self, settings: Settings, store: Store, stopping: Callable[[], bool]
    ) -> RunResult:
        name = settings.sync.name
        self.calls.append(name)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        self.saw_stopping.append(stopping())
        if self.fail_with:
            raise self.fail_with.pop(0)
        return RunResult(name, False, run_id=len(self.calls), interrupted=stopping())


# -- the real run path -----------------------------------------------------------------------


async def test_a_tick_runs_the_sync_and_records_metrics(settings: Settings, store: Store) -> None:
    daemon = Daemon(settings, store)
    assert await daemon.tick("default") is TickOutcome.OK
    runs = store.recent_runs("default")
    assert [r.outcome for r in runs] == [RunOutcome.OK]
    assert len(store.link_index("default", EntityKind.CLIENT)) == COMPANIES
    assert sample(daemon, "flowtly_sync_runs_total", {"sync": "default", "outcome": "ok"}) == 1
    created = {"sync": "default", "entity": "client", "action": "create"}
    assert sample(daemon, "flowtly_sync_operations_total", created) == COMPANIES
    assert sample(
        daemon, "flowtly_sync_flowtly_requests_total", {"sync": "default", "status": "201"}
    )
    assert sample(daemon, "flowtly_sync_pending_conflicts", {"sync": "default"}) == 0
    assert sample(daemon, "flowtly_sync_last_success_timestamp_seconds", {"sync": "default"})
    assert sample(daemon, "flowtly_sync_run_duration_seconds_count", {"sync": "default"}) == 1

    # The second tick finds nothing to do: the state was committed by the first.
    assert await daemon.tick("default") is TickOutcome.OK
    assert sample(daemon, "flowtly_sync_operations_total", created) == COMPANIES
    assert len(store.recent_runs("default")) == 2


async def test_a_held_lock_skips_the_tick(settings: Settings, store: Store) -> None:
    daemon = Daemon(settings, store)
    with store.lock("default"):
        assert await daemon.tick("default") is TickOutcome.LOCK_HELD
    assert store.recent_runs("default") == []
    skipped = {"sync": "default", "reason": "lock_held"}
    assert sample(daemon, "flowtly_sync_ticks_skipped_total", skipped) == 1
    assert daemon.state("default").last_outcome is None
    assert daemon.state("default").failures == 0
    # Once released, the next tick runs.
    assert await daemon.tick("default") is TickOutcome.OK


def test_cli_run_with_the_lock_held_exits_1_naming_the_holder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    held = Store.open(load_settings(config).store.url)
    try:
        with held.lock("default"):
            code = main(["run", "--config", str(config)])
    finally:
        held.close()
    assert code == 1
    err = capsys.readouterr().err
    assert "already running" in err
    assert f"{socket.gethostname()} pid {os.getpid()}" in err


# -- failures, backoff, busy -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "cap", "skip"),
    [(0, 16, 0), (1, 16, 0), (2, 16, 1), (3, 16, 3), (4, 16, 7), (5, 16, 15), (6, 16, 16),
     (500, 16, 16), (5, 0, 0)],
)  # fmt: skip
def test_backoff_grows_exponentially_and_is_capped(failures: int, cap: int, skip: int) -> None:
    assert backoff_ticks(failures, cap) == skip


async def test_failing_runs_are_retried_then_back_off_and_recover(
    settings: Settings, store: Store
) -> None:
    runner = FakeRunner()
    runner.fail_with = [AuthenticationError("401 from Flowtly")] * 4
    daemon = Daemon(settings, store, runner=runner)
    outcomes = [await daemon.tick("default") for _ in range(12)]
    F, B, OK = TickOutcome.FAILED, TickOutcome.BACKOFF, TickOutcome.OK
    # 1st failure: retried next tick; 2nd: skip 1; 3rd: skip 3; 4th: skip min(7, cap 4).
    assert outcomes == [F, F, B, F, B, B, B, F, B, B, B, B]
    assert len(runner.calls) == 4
    state = daemon.state("default")
    assert state.failures == 4
    assert state.last_error == "AuthenticationError: 401 from Flowtly"
    assert await daemon.tick("default") is OK
    assert (state.failures, state.skip, state.last_outcome) == (0, 0, OK)
    assert sample(daemon, "flowtly_sync_runs_total", {"sync": "default", "outcome": "failed"}) == 4
    skipped = {"sync": "default", "reason": "backoff"}
    assert sample(daemon, "flowtly_sync_ticks_skipped_total", skipped) == outcomes.count(B)


async def test_webhooks_do_not_shorten_a_backoff(settings: Settings, store: Store) -> None:
    runner = FakeRunner()
    runner.fail_with = [RuntimeError("boom")] * 2
    daemon = Daemon(settings, store, runner=runner)
    await daemon.tick("default")
    await daemon.tick("default")
    assert daemon.state("default").skip == 1
    for _ in range(3):
        assert await daemon.tick("default", TickReason.WEBHOOK) is TickOutcome.BACKOFF
    assert daemon.state("default").skip == 1
    assert len(runner.calls) == 2


async def test_an_unexpected_error_never_ends_the_daemon(settings: Settings, store: Store) -> None:
    runner = FakeRunner()
    runner.fail_with = [ZeroDivisionError("bug in a connector")]
    daemon = Daemon(settings, store, runner=runner)
    assert await daemon.tick("default") is TickOutcome.FAILED
    assert await daemon.tick("default") is TickOutcome.OK


async def test_a_running_sync_skips_ticks_and_a_webhook_asks_for_one_more_run(
    settings: Settings, store: Store
) -> None:
    runner = FakeRunner()
    runner.gate = asyncio.Event()
    daemon = Daemon(settings, store, runner=runner)
    daemon.request_run("default", TickReason.SCHEDULE)
    await runner.started.wait()
    assert await daemon.tick("default") is TickOutcome.BUSY
    assert await daemon.tick("default", TickReason.WEBHOOK) is TickOutcome.BUSY
    assert await daemon.tick("default", TickReason.WEBHOOK) is TickOutcome.BUSY
    runner.gate.set()
    assert await daemon.drain(5)
    # One run for the schedule and exactly one more for the webhooks that came meanwhile.
    assert runner.calls == ["default", "default"]
    skipped = {"sync": "default", "reason": "busy"}
    assert sample(daemon, "flowtly_sync_ticks_skipped_total", skipped) == 3


# -- stopping --------------------------------------------------------------------------------


async def test_stop_reaches_the_run_in_flight_and_refuses_new_ticks(
    settings: Settings, store: Store
) -> None:
    runner = FakeRunner()
    runner.gate = asyncio.Event()
    daemon = Daemon(settings, store, runner=runner)
    daemon.request_run("default", TickReason.SCHEDULE)
    await runner.started.wait()
    daemon.stop()
    assert daemon.stopping
    runner.gate.set()
    assert await daemon.drain(5)
    assert runner.saw_stopping == [True]
    assert daemon.state("default").last_outcome is TickOutcome.INTERRUPTED
    assert await daemon.tick("default") is TickOutcome.STOPPING
    assert runner.calls == ["default"]


async def test_cancel_ends_runs_in_flight_at_once(settings: Settings, store: Store) -> None:
    runner = FakeRunner()
    runner.gate = asyncio.Event()  # never set: only cancellation ends the run
    daemon = Daemon(settings, store, runner=runner)
    daemon.request_run("default", TickReason.SCHEDULE)
    await runner.started.wait()
    assert not await daemon.drain(0)
    daemon.cancel()
    assert await daemon.drain(5)
    assert daemon.tasks == frozenset()
    assert not daemon.state("default").running


async def test_a_cancelled_real_run_is_recorded_as_failed(settings: Settings, store: Store) -> None:
    polled = asyncio.Event()

    async def runner(one: Settings, st: Store, stopping: Callable[[], bool]) -> RunResult:
        def spy() -> bool:
            polled.set()  # the run has its lock and its run row: it is under way
            return stopping()

        return await run_job(one, st, spy)

    daemon = Daemon(settings, store, runner=runner)
    daemon.request_run("default", TickReason.SCHEDULE)
    await polled.wait()
    daemon.cancel()
    assert await daemon.drain(5)
    assert [r.outcome for r in store.recent_runs("default")] == [RunOutcome.FAILED]
    assert store.integrity_check() == "ok"
    # The lock went with the run: the next daemon runs the sync.
    assert await Daemon(settings, store).tick("default") is TickOutcome.OK


# -- several syncs and the schedule ----------------------------------------------------------


SEVERAL = """
[syncs.alpha]
sync = { interval = "1s" }
[syncs.beta]
sync = { cron = "*/5 * * * *" }
flowtly = { token = "tok-beta-only-9876543210" }
"""


async def test_every_named_sync_is_scheduled_with_its_own_settings(
    tmp_path: Path, store: Store
) -> None:
    settings = load_settings(write_config(tmp_path, SEVERAL))
    runner = FakeRunner()
    daemon = Daemon(settings, store, runner=runner)
    assert daemon.names == ["alpha", "beta"]
    assert isinstance(daemon.state("alpha").trigger, IntervalTrigger)
    assert isinstance(daemon.state("beta").trigger, CronTrigger)
    assert daemon.state("beta").settings.flowtly.token is not None
    assert daemon.scrub("x tok-beta-only-9876543210 y") == "x [redacted] y"

    daemon.start_scheduler(paused=True)
    try:
        now = datetime.now(UTC)
        alpha, beta = daemon.next_run("alpha"), daemon.next_run("beta")
        assert alpha is not None
        assert abs(alpha - now) < timedelta(seconds=5)  # an interval sync ticks at once
        assert beta is not None
        assert beta > now  # a cron sync waits for its next slot
        assert beta.minute % 5 == 0
    finally:
        daemon.stop()
    await daemon.tick("alpha")
    await daemon.tick("beta", TickReason.WEBHOOK)
    assert runner.calls == []  # stopped: nothing runs any more


async def test_the_scheduler_fires_ticks_for_each_sync(tmp_path: Path, store: Store) -> None:
    settings = load_settings(
        write_config(tmp_path, SEVERAL.replace('cron = "*/5 * * * *"', 'interval = "1h"'))
    )
    runner = FakeRunner()
    daemon = Daemon(settings, store, runner=runner)
    daemon.start_scheduler()
    try:
        async with asyncio.timeout(10):
            while sorted(runner.calls) != ["alpha", "beta"]:
                await runner.started.wait()
                runner.started.clear()
        assert await daemon.drain(5)
    finally:
        daemon.stop()
    assert daemon.state("alpha").last_outcome is TickOutcome.OK


def test_a_bad_cron_expression_is_a_configuration_error(tmp_path: Path, store: Store) -> None:
    # Validated when the configuration loads, long before the daemon starts.
    with pytest.raises(ConfigError) as caught:
        Daemon(load_settings(write_config(tmp_path, '[sync]\ncron = "every tuesday"\n')), store)
    assert caught.value.key == "sync.cron"


def test_the_daemon_scrubs_configured_and_recognisable_credentials(
    settings: Settings, store: Store
) -> None:
    daemon = Daemon(settings, store, secrets=["configured-secret-42"])
    text = daemon.scrub(
        "failed with configured-secret-42; the server echoed Authorization: Bearer tok9x7y2z"
    )
    assert "configured-secret-42" not in text
    assert "tok9x7y2z" not in text
