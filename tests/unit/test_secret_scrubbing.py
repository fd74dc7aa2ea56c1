"""Secrets a side echoes back never reach a report, ``status``, the store or the logs.

A hostile Flowtly answers every client create with 422 whose violations repeat the
``Authorization`` header it got (and the bare token, inside longer words and JSON); a CRM
connector fails with its API key in the message. Everything the CLI prints, every text
cell of the store (and the store's raw bytes) and every log line is searched for them.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog

import sync.wiring.sides as wiring
from connectors import registry
from connectors.base import ChangeBatch, Connector, Cursor
from connectors.files import FilesConnector, FilesSettings
from sync.cli.main import main
from sync.config import Settings
from sync.errors import ConnectorError
from sync.model import EntityKind
from sync.privacy.redact import EMBEDDED_MIN, REDACTED, Scrubber

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-HOSTILE-4c1d9e2b7a"
CRM_KEY = "crmkey-HOSTILE-77e1a0"
SHORT = "k3y"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    # The CLI configures structlog process-wide, bound to this test's captured stderr.
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


# -- the scrubber -------------------------------------------------------------------------


def test_long_secrets_go_wherever_they_occur_in_every_spelling() -> None:
    scrub = Scrubber([TOKEN, "p/ss+w&rd=long"])
    assert scrub(f"x{TOKEN}y") == f"x{REDACTED}y"
    assert scrub(json.dumps({"token": TOKEN})) == json.dumps({"token": REDACTED})
    assert scrub("pw=p%2Fss%2Bw%26rd%3Dlong") == f"pw={REDACTED}"
    assert scrub(json.dumps("p/ss+w&rd=long")) == f'"{REDACTED}"'
    assert scrub(None) is None


def test_short_secrets_go_as_whole_words_only() -> None:
    assert len(SHORT) < EMBEDDED_MIN
    scrub = Scrubber([SHORT])
    assert scrub(f"key {SHORT}, ({SHORT}) api_key={SHORT}&x") == (
        f"key {REDACTED}, ({REDACTED}) api_key={REDACTED}&x"
    )
    assert scrub(f"{SHORT}board x{SHORT}") == f"{SHORT}board x{SHORT}"


def test_bearer_credentials_go_even_when_not_configured() -> None:
    scrub = Scrubber()
    assert scrub("sent Authorization: Bearer someone-else-9f8e") == (
        f"sent Authorization: Bearer {REDACTED}"
    )
    assert scrub('{"authorization": "Basic dXNlcjpwYXNz"}') == (
        f'{{"authorization": "Basic {REDACTED}"}}'
    )
    assert scrub("retry with bearer abc.def-123") == f"retry with bearer {REDACTED}"
    # Words are not credentials.
    for prose in ("Bearer token missing", "the bearer of this", "Authorization header missing"):
        assert scrub(prose) == prose


def test_settings_know_crm_secrets_and_the_store_password() -> None:
    settings = Settings.model_validate(
        {
            "flowtly": {"token": TOKEN},
            "store": {"url": "postgresql+psycopg://sync:p%40ss-word@db/sync"},
            "crm": {"type": "files", "path": "crm", "api_key": CRM_KEY, "auth": {"a_token": "t"}},
        }
    )
    assert set(settings.secrets()) == {TOKEN, CRM_KEY, "t", "p@ss-word"}


# -- end to end ---------------------------------------------------------------------------


def hostile(app: App) -> App:
    """The sandbox, except that client creates are refused with the request's credentials
    repeated in the violations and the detail."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].endswith("/clients")
        ):
            await app(scope, receive, send)
            return
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        body = {
            "@type": "ConstraintViolationList",
            "detail": f"refused for Authorization: {auth}",
            "violations": [
                {"propertyPath": "vatNumber", "message": f"header was Authorization: {auth}"},
                {"propertyPath": "name", "message": f'ctx {{"token":"{TOKEN}"}} id{TOKEN}x'},
            ],
        }
        await send(
            {
                "type": "http.response.start",
                "status": 422,
                "headers": [(b"content-type", b"application/problem+json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    return serve


class KeyedSettings(FilesSettings):
    api_key: str


class KeyedCrm(FilesConnector):
    """The files CRM behind an API key, whose notes endpoint fails naming the key in its
    URL and in the header it echoes, as a careless HTTP library would."""

    settings_model = KeyedSettings

    def __init__(self, settings: KeyedSettings) -> None:
        super().__init__(settings)
        self.key = settings.api_key

    async def read(
        self, entity: EntityKind, since: Cursor | None = None
    ) -> AsyncIterator[ChangeBatch]:
        if entity is EntityKind.NOTE:
            raise ConnectorError(
                f"GET https://crm.example/notes?api_key={self.key} failed: 500 "
                f"(sent Authorization: Bearer {self.key})"
            )
        async for batch in super().read(entity, since):
            yield batch


def write_config(root: Path, *, crm_type: str = "files", extra_crm: str = "") -> Path:
    shutil.copytree(ROOT / "examples" / "crm", root / "crm")
    path = root / "config.toml"
    path.write_text(
        f"""
[flowtly]
base_url = "sandbox://flowtly.db"
token = "{TOKEN}"
[store]
url = "sqlite:///state.db"
[crm]
type = "{crm_type}"
path = "crm"
{extra_crm}
[logging]
level = "debug"
format = "json"
""",
        encoding="utf-8",
    )
    return path


def store_cells(db: Path) -> list[tuple[str, str, str]]:
    """(table, column, text) of every text cell of every table."""
    conn = sqlite3.connect(db)
    found: list[tuple[str, str, str]] = []
    try:
        tables = [
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names from the schema
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                found += [
                    (table, column, value)
                    for column, value in zip(columns, row, strict=True)
                    if isinstance(value, str)
                ]
    finally:
        conn.close()
    return found


def raw_store(db: Path) -> bytes:
    """The store's files as bytes: freed pages and the WAL hold old cells too."""
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*") if p.is_file())


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_a_flowtly_echoing_the_token_leaks_it_nowhere(
    fmt: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real_app = wiring.create_app
    monkeypatch.setattr(wiring, "create_app", lambda settings: hostile(real_app(settings)))
    config = write_config(tmp_path)
    report = tmp_path / "report.json"
    argv = ["--config", str(config)]

    assert main(["run", *argv, "--output", fmt, "--report", str(report)]) == 3
    first = capsys.readouterr()
    # Again: the rejections are remembered and reported from the store this time.
    assert main(["run", *argv, "--output", fmt]) == 3
    again = capsys.readouterr()
    assert main(["status", *argv]) == 0
    status = capsys.readouterr()

    # The refusals are there, with what Flowtly said, minus the credentials.
    shown = " ".join(first.out.split())  # the text table wraps long reasons
    if fmt == "markdown":
        shown = shown.replace("\\", "")  # Markdown cells escape the marker's characters
    assert f"header was Authorization: Bearer {REDACTED}" in shown
    assert f"id{REDACTED}x" in shown
    assert "still rejected" in again.out
    assert f"header was Authorization: Bearer {REDACTED}" in status.out
    rejected = json.loads(report.read_text(encoding="utf-8"))["errors"]
    assert rejected
    assert all(REDACTED in e["reason"] for e in rejected if e["entity"] == "client")

    printed = [first.out, first.err, again.out, again.err, status.out, status.err]
    assert any('"flowtly.request"' in text for text in printed), "no debug log captured"
    assert all(TOKEN not in text for text in printed)
    assert TOKEN not in report.read_text(encoding="utf-8")
    cells = store_cells(tmp_path / "state.db")
    assert {"rejection", "run_event", "run"} <= {table for table, _, _ in cells}
    assert [(t, c) for t, c, value in cells if TOKEN in value] == []
    assert TOKEN.encode() not in raw_store(tmp_path / "state.db")


def test_a_crm_failing_with_its_key_leaks_it_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_get = registry.get

    def get(name: str, **kwargs: str) -> type[Connector]:
        return KeyedCrm if name == "keyed" else real_get(name, **kwargs)

    monkeypatch.setattr(registry, "get", get)
    config = write_config(tmp_path, crm_type="keyed", extra_crm=f'api_key = "{CRM_KEY}"')
    argv = ["--config", str(config)]

    assert main(["run", *argv]) == 1
    failed = capsys.readouterr()
    assert main(["status", *argv]) == 0
    status = capsys.readouterr()
    assert main(["check", *argv]) == 1
    check = capsys.readouterr()

    assert f"api_key={REDACTED} failed: 500" in failed.err
    assert f"api_key={REDACTED} failed: 500" in status.out
    assert "run 1: failed" in status.out
    assert f"crm: FAILED - GET https://crm.example/notes?api_key={REDACTED}" in check.out
    for text in (failed.out, failed.err, status.out, status.err, check.out, check.err):
        assert CRM_KEY not in text
    cells = store_cells(tmp_path / "state.db")
    assert any(table == "run" and column == "error" for table, column, _ in cells)
    assert [(t, c) for t, c, value in cells if CRM_KEY in value] == []
    assert CRM_KEY.encode() not in raw_store(tmp_path / "state.db")
