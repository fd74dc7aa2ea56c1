"""The daemon's HTTP endpoint through httpx's ASGI transport: health, metrics, webhooks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from sync.config import Settings, load_settings
from sync.daemon import (
    MAX_WEBHOOK_BODY,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Daemon,
    TickOutcome,
    WebhookRejection,
    WebhookVerifier,
    create_app,
    sign,
)
from sync.engine.run import RunResult
from sync.errors import AuthenticationError, LockHeld
from sync.store import Store

SECRET = "whsec-test-0123456789abcdef"
NOW = 1_760_000_000.0
BODY = b'{"event": "client.updated", "id": "42"}'


def write_config(root: Path, daemon: str = f'webhook_secret = "{SECRET}"') -> Path:
    path = root / "config.toml"
    path.write_text(
        f"""
[store]
url = "sqlite:///state.db"
[flowtly]
base_url = "sandbox://:memory:"
[syncs.alpha]
[syncs.beta]
[daemon]
{daemon}
webhook_tolerance = 300
""",
        encoding="utf-8",
    )
    return path


class Runner:
    """Records which syncs ran; fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.failing: Exception | None = None

    async def __call__(
        self, settings: Settings, store: Store, stopping: Callable[[], bool]
    ) -> RunResult:
        self.calls.append(settings.sync.name)
        if self.failing is not None:
            raise self.failing
        return RunResult(settings.sync.name, False, run_id=len(self.calls))


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    # Another test may have configured structlog onto a stderr that is closed by now.
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/state.db")
    yield opened
    opened.close()


@pytest.fixture
def runner() -> Runner:
    return Runner()


@pytest.fixture
def daemon(tmp_path: Path, store: Store, runner: Runner) -> Daemon:
    return Daemon(load_settings(write_config(tmp_path)), store, runner=runner, clock=Clock())


@pytest.fixture
async def http(daemon: Daemon) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(daemon))
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
        yield client


def signed(body: bytes = BODY, *, at: float = NOW, secret: str = SECRET) -> dict[str, str]:
    stamp = int(at)
    return {TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: sign(secret, stamp, body)}


def metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


# -- /healthz --------------------------------------------------------------------------------


async def test_healthz_follows_the_scheduler_and_the_last_runs(
    daemon: Daemon, runner: Runner, http: httpx.AsyncClient
) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 503
    assert response.json()["reason"] == "scheduler not running"

    daemon.start_scheduler(paused=True)
    try:
        response = await http.get("/healthz")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        assert set(response.json()["syncs"]) == {"alpha", "beta"}

        runner.failing = AuthenticationError("the token was refused")
        assert await daemon.tick("beta") is TickOutcome.FAILED
        response = await http.get("/healthz")
        assert response.status_code == 503
        body = response.json()
        assert (
            body["reason"]
            == "sync beta: last run failed: AuthenticationError: the token was refused"
        )
        assert body["syncs"]["beta"]["consecutive_failures"] == 1

        runner.failing = None
        daemon.state("beta").skip = 0
        assert await daemon.tick("beta") is TickOutcome.OK
        response = await http.get("/healthz")
        assert response.status_code == 200
        assert response.json()["syncs"]["beta"]["last_success"] is not None
    finally:
        daemon.stop()
    response = await http.get("/healthz")
    assert response.status_code == 503
    assert response.json()["reason"] == "shutting down"


# -- /metrics --------------------------------------------------------------------------------


async def test_metrics_expose_runs_skips_and_gauges(
    daemon: Daemon, runner: Runner, store: Store, http: httpx.AsyncClient
) -> None:
    await daemon.tick("alpha")
    runner.failing = RuntimeError("down")
    await daemon.tick("beta")
    runner.failing = LockHeld("alpha", "replica-2 pid 7")
    assert await daemon.tick("alpha") is TickOutcome.LOCK_HELD
    daemon.refresh_gauges("alpha")

    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "flowtly_sync_runs_total", sync="alpha", outcome="ok") == 1
    assert metric(text, "flowtly_sync_runs_total", sync="beta", outcome="failed") == 1
    assert metric(text, "flowtly_sync_ticks_skipped_total", sync="alpha", reason="lock_held") == 1
    assert metric(text, "flowtly_sync_pending_conflicts", sync="alpha") == 0
    assert metric(text, "flowtly_sync_rejected_records", sync="alpha") == 0
    assert metric(text, "flowtly_sync_run_duration_seconds_count", sync="beta") == 1
    assert metric(text, "flowtly_sync_last_success_timestamp_seconds", sync="alpha") == NOW
    assert metric(text, "flowtly_sync_last_success_timestamp_seconds", sync="beta") is None


async def test_each_daemon_has_its_own_registry(
    tmp_path: Path, daemon: Daemon, store: Store
) -> None:
    other = Daemon(load_settings(write_config(tmp_path)), store, runner=Runner())
    await daemon.tick("alpha")
    labels = {"sync": "alpha", "outcome": "ok"}
    assert daemon.metrics.registry.get_sample_value("flowtly_sync_runs_total", labels) == 1
    assert other.metrics.registry.get_sample_value("flowtly_sync_runs_total", labels) is None


# -- webhooks --------------------------------------------------------------------------------


async def test_a_signed_webhook_triggers_an_early_run_of_every_sync(
    daemon: Daemon, runner: Runner, http: httpx.AsyncClient
) -> None:
    response = await http.post("/webhooks/flowtly", content=BODY, headers=signed())
    assert response.status_code == 202
    assert response.json() == {"triggered": ["alpha", "beta"]}
    assert await daemon.drain(5)
    assert sorted(runner.calls) == ["alpha", "beta"]
    assert (
        daemon.metrics.registry.get_sample_value(
            "flowtly_sync_webhooks_total", {"outcome": "accepted"}
        )
        == 1
    )


async def test_a_webhook_can_name_one_sync(
    daemon: Daemon, runner: Runner, http: httpx.AsyncClient
) -> None:
    response = await http.post("/webhooks/crm?sync=beta", content=BODY, headers=signed())
    assert response.status_code == 202
    assert await daemon.drain(5)
    assert runner.calls == ["beta"]
    unknown = await http.post("/webhooks/crm?sync=gamma", content=b"x", headers=signed(b"x"))
    assert unknown.status_code == 404


def _tampered() -> dict[str, str]:
    headers = signed()
    headers[SIGNATURE_HEADER] = headers[SIGNATURE_HEADER][:-1] + (
        "0" if headers[SIGNATURE_HEADER][-1] != "0" else "1"
    )
    return headers


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        pytest.param(_tampered(), BODY, WebhookRejection.BAD_SIGNATURE, id="bad-signature"),
        pytest.param(signed(secret="whsec-wrong-0123456789"), BODY, WebhookRejection.BAD_SIGNATURE,
                     id="wrong-secret"),
        pytest.param(signed(), BODY + b" ", WebhookRejection.BAD_SIGNATURE, id="body-changed"),
        pytest.param(signed(at=NOW - 301), BODY, WebhookRejection.STALE, id="stale"),
        pytest.param(signed(at=NOW + 301), BODY, WebhookRejection.STALE, id="from-the-future"),
        pytest.param({SIGNATURE_HEADER: signed()[SIGNATURE_HEADER]}, BODY,
                     WebhookRejection.MISSING_HEADER, id="no-timestamp"),
        pytest.param({TIMESTAMP_HEADER: str(int(NOW))}, BODY, WebhookRejection.MISSING_HEADER,
                     id="no-signature"),
        pytest.param({**signed(), TIMESTAMP_HEADER: "yesterday"}, BODY,
                     WebhookRejection.BAD_TIMESTAMP, id="bad-timestamp"),
        pytest.param({**signed(), SIGNATURE_HEADER: "sha256=é"}, BODY,
                     WebhookRejection.BAD_SIGNATURE, id="non-ascii-signature"),
    ],
)  # fmt: skip
async def test_an_unauthentic_webhook_gets_401_and_triggers_nothing(
    daemon: Daemon,
    runner: Runner,
    http: httpx.AsyncClient,
    headers: dict[str, str],
    body: bytes,
    reason: WebhookRejection,
) -> None:
    encoded = {k: v.encode("utf-8") for k, v in headers.items()}
    response = await http.post("/webhooks/flowtly", content=body, headers=encoded)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert daemon.tasks == frozenset()
    assert runner.calls == []
    assert (
        daemon.metrics.registry.get_sample_value(
            "flowtly_sync_webhooks_total", {"outcome": reason.value}
        )
        == 1
    )


async def test_a_replayed_webhook_is_refused(
    daemon: Daemon, runner: Runner, http: httpx.AsyncClient
) -> None:
    headers = signed()
    assert (await http.post("/webhooks/crm", content=BODY, headers=headers)).status_code == 202
    assert await daemon.drain(5)
    again = await http.post("/webhooks/crm", content=BODY, headers=headers)
    assert again.status_code == 401
    assert await daemon.drain(5)
    assert sorted(runner.calls) == ["alpha", "beta"]


async def test_webhooks_are_refused_without_a_configured_secret(
    tmp_path: Path, store: Store, runner: Runner
) -> None:
    settings = load_settings(write_config(tmp_path, daemon=""))
    daemon = Daemon(settings, store, runner=runner, clock=Clock())
    transport = httpx.ASGITransport(app=create_app(daemon))
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as http:
        response = await http.post("/webhooks/crm", content=BODY, headers=signed())
    assert response.status_code == 401
    assert runner.calls == []


async def test_unknown_sources_and_oversized_bodies_are_refused(
    daemon: Daemon, runner: Runner, http: httpx.AsyncClient
) -> None:
    unknown = await http.post("/webhooks/erp", content=BODY, headers=signed())
    assert unknown.status_code == 404
    unsigned = await http.post("/webhooks/erp", content=BODY)
    assert unsigned.status_code == 401
    big = b"x" * (MAX_WEBHOOK_BODY + 1)
    assert (await http.post("/webhooks/crm", content=big, headers=signed(big))).status_code == 413
    assert (await http.get("/webhooks/crm")).status_code == 405
    assert runner.calls == []


async def test_no_webhook_runs_once_the_daemon_stops(
    daemon: Daemon, runner: Runner, http: httpx.AsyncClient
) -> None:
    daemon.stop()
    response = await http.post("/webhooks/crm", content=BODY, headers=signed())
    assert response.status_code == 503
    assert runner.calls == []


def test_verifier_clock_and_tolerance() -> None:
    clock = Clock()
    verifier = WebhookVerifier(None, 300, clock)
    assert not verifier.enabled
    assert verifier.verify("1", "sha256=00", b"") is WebhookRejection.DISABLED
    from pydantic import SecretStr

    verifier = WebhookVerifier(SecretStr(SECRET), 300, clock)
    headers = signed(at=NOW - 300)
    assert verifier.verify(headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], BODY) is None
    clock.now += 1
    later = signed(at=NOW - 300, body=b"other")
    stale = verifier.verify(later[TIMESTAMP_HEADER], later[SIGNATURE_HEADER], b"other")
    assert stale is WebhookRejection.STALE
