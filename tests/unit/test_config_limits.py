"""The limits of ``[flowtly]`` and ``[sync]``: durations, defaults, errors, and the client they
make."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.config import load_settings
from sync.errors import ConfigError, FlowtlyError
from sync.wiring import flowtly_client


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_bound_every_wait(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""))
    flowtly = settings.flowtly
    assert (flowtly.request_timeout, flowtly.request_deadline) == (45, 90)
    assert flowtly.max_retry_after == 300
    assert flowtly.max_response_bytes == 50_000_000
    assert settings.sync.run_timeout == 3600
    # A dripping server: each attempt is cut at request_timeout, the request at its
    # deadline, which stays under two minutes whatever the retries.
    assert flowtly.request_deadline < 120


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("'5m'", 300), ("'90s'", 90), ("'2h'", 7200), ("90", 90), ("0.25", 0.25), ("'1.5'", 1.5)],
)
def test_durations_are_seconds_or_a_unit(tmp_path: Path, written: str, seconds: float) -> None:
    text = f"[flowtly]\nmax_retry_after = {written}\n[sync]\nrun_timeout = {written}\n"
    settings = load_settings(write(tmp_path, text))
    assert settings.flowtly.max_retry_after == seconds
    assert settings.sync.run_timeout == seconds


def test_the_environment_sets_durations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWTLY_SYNC_SYNC__RUN_TIMEOUT", "2h")
    monkeypatch.setenv("FLOWTLY_SYNC_FLOWTLY__REQUEST_DEADLINE", "60")
    settings = load_settings(write(tmp_path, ""))
    assert settings.sync.run_timeout == 7200
    assert settings.flowtly.request_deadline == 60


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[flowtly]\nmax_retry_after = 'soon'\n", "flowtly.max_retry_after"),
        ("[flowtly]\nrequest_timeout = 0\n", "flowtly.request_timeout"),
        ("[flowtly]\nrequest_deadline = '-5s'\n", "flowtly.request_deadline"),
        ("[flowtly]\nrequest_deadline = nan\n", "flowtly.request_deadline"),
        ("[flowtly]\nmax_response_bytes = 10\n", "flowtly.max_response_bytes"),
        ("[sync]\nrun_timeout = '1d'\n", "sync.run_timeout"),
        ("[syncs.a.sync]\nrun_timeout = 'never'\n", "syncs.a.sync.run_timeout"),
    ],
)
def test_bad_limits_name_their_key(tmp_path: Path, text: str, key: str) -> None:
    def load_every_sync() -> None:
        settings = load_settings(write(tmp_path, text))
        for name in settings.sync_names():
            settings.for_sync(name)

    with pytest.raises(ConfigError) as caught:
        load_every_sync()
    assert caught.value.key == key


async def test_the_client_gets_the_configured_limits(tmp_path: Path) -> None:
    text = "[flowtly]\nbase_url = 'sandbox://:memory:'\nmax_response_bytes = 1024\n"
    settings = load_settings(write(tmp_path, text))
    async with flowtly_client(settings) as client:
        assert await client.get("/countries", {"itemsPerPage": 1})
        with pytest.raises(FlowtlyError, match=r"GET /countries: .* larger than 1,024 bytes"):
            await client.get("/countries", {"itemsPerPage": 100})
