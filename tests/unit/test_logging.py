"""Logs: JSON lines carrying the sync and run id, and never a configured secret."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from sync.config import Settings, load_settings
from sync.daemon import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Daemon,
    TickOutcome,
    create_app,
    run_job,
    secrets_of,
    sign,
)
from sync.engine.run import RunResult
from sync.report.logs import REDACTED, configure_logging, redact_secrets
from sync.store import Store
from sync.wiring import open_store

TOKEN = "tok-LOGTEST-7f3a9c1e5b"
NAMED_TOKEN = "tok-NAMEDSYNC-2b8d4f6a0c"
SECRET = "whsec-LOGTEST-c0ffee1234567890"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "crm"


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    # The CLI configures structlog for the whole process, bound to the stderr of the test
    # that ran it (closed afterwards): start and end every test on structlog's defaults.
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def write_config(root: Path) -> Path:
    crm = root / "crm"
    crm.mkdir()
    for name in ("companies.csv", "contacts.csv", "notes.csv"):
        lines = (EXAMPLES / name).read_text(encoding="utf-8").splitlines()
        (crm / name).write_text("\n".join(lines[:1]) + "\n", encoding="utf-8")
    (crm / "companies.csv").write_text(
        "\n".join((EXAMPLES / "companies.csv").read_text(encoding="utf-8").splitlines()[:3]) + "\n",
        encoding="utf-8",
    )
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
[syncs.main]
[syncs.other]
flowtly = {{ token = "{NAMED_TOKEN}" }}
[daemon]
webhook_secret = "{SECRET}"
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(write_config(tmp_path))


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    opened = open_store(settings)
    yield opened
    opened.close()


def events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_secrets_of_finds_every_token_and_the_webhook_secret(settings: Settings) -> None:
    assert set(secrets_of(settings)) == {TOKEN, NAMED_TOKEN, SECRET}


async def test_no_secret_reaches_the_logs_after_ticks_and_webhooks(
    settings: Settings, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("debug", "json", secrets_of(settings))

    async def leaky(one: Settings, st: Store, stopping: Callable[[], bool]) -> RunResult:
        if one.sync.name == "other":
            # An error whose text carries both secrets, as a careless library might raise.
            raise RuntimeError(f"refused Bearer {NAMED_TOKEN} (webhook key {SECRET})")
        return await run_job(one, st, stopping)

    daemon = Daemon(settings, store, runner=leaky)
    assert await daemon.tick("main") is TickOutcome.OK
    assert await daemon.tick("other") is TickOutcome.FAILED

    transport = httpx.ASGITransport(app=create_app(daemon))
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as http:
        stamp = 1_700_000_000
        body = b"{}"
        headers = {TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: sign(SECRET, stamp, body)}
        stale = await http.post("/webhooks/crm", content=body, headers=headers)
        # A caller echoing the secret in the path is logged, redacted.
        echoed = await http.post(f"/webhooks/{SECRET}", content=body)
        health = await http.get("/healthz")
    assert (stale.status_code, echoed.status_code) == (401, 401)

    out = capsys.readouterr()
    captured = out.out + out.err + health.text
    for secret in (TOKEN, NAMED_TOKEN, SECRET):
        assert secret not in captured
    logged = events(out.err)
    names = [e["event"] for e in logged]
    assert {"flowtly.request", "run_finished", "run_failed", "webhook_rejected"} <= set(names)
    failed = next(e for e in logged if e["event"] == "run_failed")
    assert failed["error"] == f"RuntimeError: refused Bearer {REDACTED} (webhook key {REDACTED})"
    assert next(e for e in logged if e["event"] == "webhook_rejected" and e["source"] == REDACTED)
    # Every event of a run says which sync and which run it belongs to.
    for event in logged:
        if event["event"] in ("flowtly.request", "run_finished", "tick_finished"):
            assert event["sync"] == "main"
            assert isinstance(event["run_id"], int)
        if event["event"] in ("run_failed", "tick_skipped"):
            assert event["sync"] in ("main", "other")


def test_secret_named_keys_are_redacted_whatever_their_value() -> None:
    processor = redact_secrets(["s3cr3t-value"])
    event = processor(
        None,
        "info",
        {
            "event": "x",
            "webhook_secret": "anything",
            "api_token": "abc",
            "headers": {"Authorization": "Bearer zzz", "accept": "json"},
            "detail": ["one s3cr3t-value two", ("s3cr3t-value",)],
        },
    )
    assert event == {
        "event": "x",
        "webhook_secret": REDACTED,
        "api_token": REDACTED,
        "headers": {"Authorization": REDACTED, "accept": "json"},
        "detail": [f"one {REDACTED} two", (REDACTED,)],
    }


def test_console_format_is_not_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "console", [TOKEN])
    structlog.get_logger("t").info("hello", token_hint=f"x{TOKEN}x")
    err = capsys.readouterr().err
    assert "hello" in err
    assert TOKEN not in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.splitlines()[0])
