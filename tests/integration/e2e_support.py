"""Helpers of the end-to-end tests: the Flowtly sandbox served over real HTTP by the CLI,
CRM folders, configurations, running the CLI, and reading or editing Flowtly with plain
httpx the way a user of the real API would (independently of the product's client).
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from stdnum.pl import nip

__all__ = [
    "CLI_TIMEOUT",
    "COMPANY_COLUMNS",
    "CONTACT_COLUMNS",
    "NOTE_COLUMNS",
    "TOKEN",
    "CountingProxy",
    "CrmData",
    "Env",
    "FaultProxy",
    "FlowtlyApi",
    "ObservedRun",
    "PendingSandbox",
    "SandboxProcess",
    "Template",
    "assert_in_sync",
    "cli_env",
    "free_port",
    "integrity",
    "pl_vat",
    "read_csv",
    "run_cli",
    "run_observed",
    "small_crm",
    "small_crm_config",
    "spawn_sandbox",
    "start_sandbox",
    "store_rows",
    "store_text",
    "write_config",
    "write_crm",
    "write_csv",
]

TOKEN = "integration-token-0123"
READY = "Flowtly sandbox serving at "
CLI_TIMEOUT = 60.0
SANDBOX_START_TIMEOUT = 60.0

COMPANY_COLUMNS = [
    "id",
    "kind",
    "name",
    "country",
    "currency",
    "status",
    "tin_type",
    "tin",
    "vat_number",
    "due_days",
    "city",
    "post_code",
    "street_line",
    "building_number",
    "phone",
    "website",
    "segment",
]
CONTACT_COLUMNS = ["id", "company_id", "name", "email", "phone", "title", "type"]
NOTE_COLUMNS = ["id", "company_id", "body", "created_at"]

Row = dict[str, str]


# -- processes -------------------------------------------------------------------------------


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI child: no inherited flowtly-sync settings, no colours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWTLY_SYNC_")}
    env.update({"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


def run_cli(
    *args: str,
    config: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = CLI_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """``python -m sync ARGS --config CONFIG``, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "sync", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(env),
        cwd=config.parent,
        check=False,
    )


@dataclass
class SandboxProcess:
    """A ``flowtly-sync sandbox`` child process and the URL it serves on."""

    proc: subprocess.Popen[str]
    url: str
    log: Path

    def stop(self) -> None:
        """SIGTERM and wait (uvicorn shuts down cleanly and closes the database)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass
class PendingSandbox:
    """A sandbox process started but maybe not listening yet."""

    proc: subprocess.Popen[str]
    log: Path

    def ready(self) -> SandboxProcess:
        """Wait for the ready line (no sleeping: it blocks on the child's stdout)."""
        proc = self.proc
        assert proc.stdout is not None
        # A watchdog kills a sandbox that never gets there, which ends the read.
        watchdog = threading.Timer(SANDBOX_START_TIMEOUT, proc.kill)
        watchdog.start()
        try:
            line = proc.stdout.readline()
        finally:
            watchdog.cancel()
        if not line.startswith(READY):
            proc.kill()
            proc.wait()
            proc.stdout.close()
            raise RuntimeError(
                f"the sandbox did not start: {line!r}\n{self.log.read_text(encoding='utf-8')}"
            )
        return SandboxProcess(proc, line[len(READY) :].strip(), self.log)


def spawn_sandbox(
    workdir: Path,
    *,
    db: Path | None,
    latency_ms: float = 0.0,
    token: str = TOKEN,
    fail_rate: float = 0.0,
    rate_limit: float = 0.0,
    seed: int | None = None,
) -> PendingSandbox:
    """Start ``flowtly-sync sandbox`` on a free port (``--port 0``: it prints the real one).

    ``fail_rate`` answers that fraction of requests 500/503 and ``rate_limit`` answers 429
    with ``Retry-After`` above that many requests per second, drawn from ``seed``.
    """
    command = [
        *(sys.executable, "-m", "sync", "sandbox"),
        *("--host", "127.0.0.1", "--port", "0", "--token", token),
    ]
    if db is not None:
        command += ["--db", str(db)]
    if latency_ms:
        command += ["--latency-ms", str(latency_ms)]
    if fail_rate:
        command += ["--fail-rate", str(fail_rate)]
    if rate_limit:
        command += ["--rate-limit", str(rate_limit)]
    if seed is not None:
        command += ["--seed", str(seed)]
    log = workdir / f"sandbox-{os.urandom(4).hex()}.log"
    with log.open("w", encoding="utf-8") as stderr:
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=cli_env(),
            cwd=workdir,
        )
    return PendingSandbox(proc, log)


def start_sandbox(
    workdir: Path,
    *,
    db: Path | None,
    latency_ms: float = 0.0,
    token: str = TOKEN,
    fail_rate: float = 0.0,
    rate_limit: float = 0.0,
    seed: int | None = None,
) -> SandboxProcess:
    """Start a sandbox and wait until it listens (options as for `spawn_sandbox`)."""
    pending = spawn_sandbox(
        workdir,
        db=db,
        latency_ms=latency_ms,
        token=token,
        fail_rate=fail_rate,
        rate_limit=rate_limit,
        seed=seed,
    )
    return pending.ready()


# -- CRM files and configuration -------------------------------------------------------------


def pl_vat(number: int) -> str:
    """A valid Polish VAT number (``PL`` + NIP with its check digit) derived from ``number``."""
    base = f"{526 + number % 400:03d}{number:06d}"
    for digit in "0123456789":
        if nip.is_valid(base + digit):
            return "PL" + base + digit
    return pl_vat(number + 500_000)


def read_csv(path: Path) -> tuple[list[str], list[Row]]:
    """Header and rows of a CSV file."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [dict(zip(header, cells, strict=False)) for cells in reader]
    return header, rows


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Mapping[str, str]]) -> None:
    """Write ``rows`` under ``header`` (missing cells empty)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(name, "") for name in header])


@dataclass
class CrmData:
    """The rows of a CRM folder."""

    companies: list[Row]
    contacts: list[Row]
    notes: list[Row] = field(default_factory=list)


def write_crm(folder: Path, data: CrmData) -> Path:
    """A files-connector folder holding ``data``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "companies.csv", COMPANY_COLUMNS, data.companies)
    write_csv(folder / "contacts.csv", CONTACT_COLUMNS, data.contacts)
    write_csv(folder / "notes.csv", NOTE_COLUMNS, data.notes)
    return folder


def _company(row: str) -> Row:
    return dict(zip(COMPANY_COLUMNS, row.split("|"), strict=True))


def _contact(row: str) -> Row:
    return dict(zip(CONTACT_COLUMNS, row.split("|"), strict=True))


def small_crm() -> CrmData:
    """Six companies (one a supplier) with VAT numbers valid per stdnum, ten contacts, two
    notes; the unknown ``segment`` column must survive every write-back."""
    companies = [
        _company(
            "C001|client|Zażółć Druk sp. z o.o.|PL|PLN|active|vat||PL9295973794|14|Warszawa|"
            "00-867|ul. Chłodna|48|+48 22 202 15 14|https://zazolc-druk.example|smb"
        ),
        _company(
            "C002|client|Bałtycka Logistyka S.A.|PL|PLN|active|vat|8826286845|PL8826286845|60|"
            "Gdańsk|80-837|ul. Długa|12|+48 58 792 38 82|https://baltycka.example|enterprise"
        ),
        _company(
            "C006|supplier|Łódzkie Biuro Rachunkowe Tkacz sp. z o.o.|PL|PLN|active|vat||"
            "PL6971045178|14|Łódź|90-136|ul. Piotrkowska|118|+48 42 684 87 44|"
            "https://biuro-tkacz.example|smb"
        ),
        _company(
            "C007|client|Müller & Töchter Maschinenbau GmbH|DE|EUR|active|vat||DE767597593|45|"
            "Stuttgart|70173|Königstraße|28|+49 711 884105|https://mueller.example|enterprise"
        ),
        _company(
            "C012|client|Société Lyonnaise de Tôlerie SAS|FR|EUR|active|vat||FR77353348162|60|"
            "Lyon|69002|Rue de la République|41|+33 4 13 09 92 22|https://tolerie.example|"
            "enterprise"
        ),
        _company(
            "C016|client|Grachtenhuis Digital B.V.|NL|EUR|active|vat||NL578615629B01|30|"
            "Amsterdam|1016 GV|Herengracht|182|+31 20 793 7721|https://grachtenhuis.example|"
            "mid-market"
        ),
    ]
    contacts = [
        _contact(
            "P001|C001|Joanna Lewandowska|joanna.lewandowska@zazolc-druk.example|"
            "+48 22 513 35 67|Managing director|main"
        ),
        _contact(
            "P002|C001|Paweł Kowalski|pawel.kowalski@zazolc-druk.example|+48 22 619 23 74|"
            "Accounts payable|billing"
        ),
        _contact(
            "P003|C002|Paweł Kamiński|pawel.kaminski@baltycka.example|+48 785 693 776|"
            "Managing director|main"
        ),
        _contact(
            "P004|C002|Michał Szymański|michal.szymanski@baltycka.example||Bookkeeper|billing"
        ),
        _contact(
            "P012|C007|Katrin Schneider|katrin.schneider@mueller.example|+49 711 534705|"
            "Managing director|main"
        ),
        _contact(
            "P013|C007|Sabine Fischer|sabine.fischer@mueller.example|+49 160 87500081|"
            "Accounts payable clerk|billing"
        ),
        _contact(
            "P021|C012|Julien Dubois|julien.dubois@tolerie.example|+33 6 22 10 81 71|"
            "Head of finance|main"
        ),
        _contact(
            "P022|C012|Céline Fontaine|celine.fontaine@tolerie.example|+33 7 48 06 94 01|"
            "Financial controller|billing"
        ),
        _contact("P029|C016|Femke Visser|femke.visser@grachtenhuis.example||Head of finance|main"),
        _contact(
            "P030|C016|Ruud de Jong|ruud.dejong@grachtenhuis.example|+31 6 5515 4741|"
            "Accounts payable clerk|billing"
        ),
    ]
    notes = [
        {
            "id": "N001",
            "company_id": "C002",
            "body": "Kick-off call: invoices in PLN, 60-day terms, as agreed.",
            "created_at": "2026-01-14T10:30:00+00:00",
        },
        {
            "id": "N002",
            "company_id": "C007",
            "body": "Purchase order number must be quoted on every invoice.",
            "created_at": "2026-01-27T08:45:00+00:00",
        },
    ]
    return CrmData(companies, contacts, notes)


def write_config(
    path: Path,
    *,
    base_url: str,
    crm: Path,
    store: Path,
    sync: Mapping[str, str] | None = None,
    log_level: str = "warning",
    token: str = TOKEN,
    flowtly: Mapping[str, str] | None = None,
    crm_options: Mapping[str, str] | None = None,
) -> Path:
    """A config.toml for the files connector, a real-HTTP Flowtly and a SQLite store.

    ``sync`` holds raw TOML values for ``[sync]`` keys, e.g. ``{"conflict_policy": '"crm"'}``;
    ``flowtly`` and ``crm_options`` likewise add or override ``[flowtly]`` and ``[crm]`` keys
    (``{"timeout": "0.5"}``, ``{"delimiter": '";"'}``).
    """
    sync_lines = "".join(f"{key} = {value}\n" for key, value in (sync or {}).items())
    flowtly_keys = {"rate_limit": "0", "timeout": "10", "max_retries": "2", **(flowtly or {})}
    flowtly_lines = "".join(f"{key} = {value}\n" for key, value in flowtly_keys.items())
    crm_lines = "".join(f"{key} = {value}\n" for key, value in (crm_options or {}).items())
    path.write_text(
        "[flowtly]\n"
        f"base_url = {json.dumps(base_url)}\n"
        f"token = {json.dumps(token)}\n"
        f"{flowtly_lines}"
        "[store]\n"
        f"url = {json.dumps('sqlite:///' + str(store))}\n"
        "[crm]\n"
        'type = "files"\n'
        f"path = {json.dumps(str(crm))}\n"
        f"{crm_lines}"
        "[sync]\n"
        f"{sync_lines}"
        "[logging]\n"
        'format = "json"\n'
        f"level = {json.dumps(log_level)}\n",
        encoding="utf-8",
    )
    return path


# -- Flowtly over HTTP -----------------------------------------------------------------------


class _InProcess(httpx.BaseTransport):
    """A synchronous transport into an ASGI app (one event loop per request)."""

    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            response = await self._inner.handle_async_request(request)
            body = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=body)

        return asyncio.run(send())


class FlowtlyApi:
    """Reads and edits Flowtly with plain httpx, independently of the product's client."""

    def __init__(
        self, base_url: str, token: str = TOKEN, *, http: httpx.Client | None = None
    ) -> None:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/ld+json"}
        if http is None:
            http = httpx.Client(base_url=base_url, headers=headers, timeout=10.0)
        else:
            http.headers.update(headers)
        self.http = http
        self._codes: dict[str, dict[str, str]] = {}
        self._on_close: Callable[[], None] | None = None

    @classmethod
    def offline(cls, db: Path) -> FlowtlyApi:
        """Read a stopped sandbox's database in-process, free of its faults and limits."""
        from sync.sandbox import SandboxSettings, create_app

        app = create_app(SandboxSettings(db=db))
        http = httpx.Client(base_url="http://sandbox.invalid", transport=_InProcess(app))
        api = cls("http://sandbox.invalid", http=http)
        api._on_close = app.state.sandbox.close
        return api

    def close(self) -> None:
        self.http.close()
        if self._on_close is not None:
            self._on_close()

    def get(self, path: str) -> dict[str, Any]:
        response = self.http.get(path)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def members(self, collection: str) -> list[dict[str, Any]]:
        """Every member of a collection, following ``view.next``."""
        members: list[dict[str, Any]] = []
        url: str | None = f"{collection}?itemsPerPage=30"
        while url is not None:
            page = self.get(url)
            members.extend(page.get("member", []))
            url = page.get("view", {}).get("next")
        return members

    def patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        response = self.http.patch(
            path,
            content=json.dumps(body),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        response = self.http.post(
            path, content=json.dumps(body), headers={"Content-Type": "application/ld+json"}
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def _reference(self, collection: str) -> dict[str, str]:
        if collection not in self._codes:
            self._codes[collection] = {
                item["@id"]: item["code"] for item in self.members(f"/{collection}")
            }
        return self._codes[collection]

    def code(self, collection: str, iri: str | None) -> str | None:
        """The ISO code behind a ``/countries/N`` or ``/currencies/N`` IRI."""
        return None if iri is None else self._reference(collection)[iri]

    def iri(self, collection: str, code: str) -> str:
        """The IRI of an ISO country or currency code."""
        return next(i for i, c in self._reference(collection).items() if c == code)

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every record of the synced collections, as served."""
        return {
            name: self.members(f"/{name}")
            for name in ("clients", "counterparties", "client-contacts", "client-notes")
        }


# -- a proxy that counts what the sandbox is asked ------------------------------------------

_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
)


# -- environments ------------------------------------------------------------------------------


@dataclass
class Env:
    """A CRM folder, a state store, a running sandbox and a config binding them."""

    root: Path
    crm: Path
    store: Path
    config: Path
    sandbox: SandboxProcess
    api: FlowtlyApi

    def run(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The CLI with this environment's configuration."""
        return run_cli(*args, config=self.config, env=env)

    def configure(
        self, *, base_url: str | None = None, sync: Mapping[str, str] | None = None
    ) -> Path:
        """Rewrite the configuration (another URL, other ``[sync]`` keys)."""
        return write_config(
            self.config,
            base_url=base_url or self.sandbox.url,
            crm=self.crm,
            store=self.store,
            sync=sync,
        )


@dataclass(frozen=True)
class Template:
    """The state after the session's one initial sync of `small_crm`."""

    root: Path
    first_run: subprocess.CompletedProcess[str]


# -- editing either side -----------------------------------------------------------------------


def edit_csv(path: Path, record_id: str, **changes: str) -> None:
    """Change cells of the one row of ``path`` whose id is ``record_id``."""
    header, rows = read_csv(path)
    matched = [row for row in rows if row["id"] == record_id]
    assert len(matched) == 1, f"{record_id} not in {path.name}"
    matched[0].update(changes)
    write_csv(path, header, rows)


def client_by_vat(api: FlowtlyApi, vat: str) -> dict[str, Any]:
    """The one Flowtly client with VAT number ``vat``."""
    found = [c for c in api.members("/clients") if c.get("vatNumber") == vat]
    assert len(found) == 1, f"{len(found)} Flowtly clients with VAT {vat}"
    return found[0]


def contact_by_email(api: FlowtlyApi, email: str) -> dict[str, Any]:
    """The one Flowtly contact with ``email``."""
    found = [c for c in api.members("/client-contacts") if c.get("email") == email]
    assert len(found) == 1, f"{len(found)} Flowtly contacts with e-mail {email}"
    return found[0]


def new_flowtly_client(api: FlowtlyApi, name: str, vat: str, city: str) -> dict[str, Any]:
    """Create a German client in Flowtly directly, as a Flowtly user would."""
    return api.post(
        "/clients",
        {
            "name": name,
            "country": api.iri("countries", "DE"),
            "currency": api.iri("currencies", "EUR"),
            "status": "active",
            "tinType": "vat",
            "vatNumber": vat,
            "dueDays": 21,
            "addressCity": city,
        },
    )


def new_flowtly_contact(api: FlowtlyApi, client: Mapping[str, Any], name: str, email: str) -> None:
    """Add a main contact to the Flowtly ``client`` directly."""
    api.post(
        "/client-contacts",
        {"client": client["@id"], "type": "main", "name": name, "email": email},
    )


# -- reliability helpers -----------------------------------------------------------------------

# CRM column -> Flowtly property, per company kind (what `assert_in_sync` compares).
CLIENT_FIELDS = {
    "name": "name",
    "status": "status",
    "tin_type": "tinType",
    "tin": "tin",
    "vat_number": "vatNumber",
    "due_days": "dueDays",
    "city": "addressCity",
    "post_code": "addressPostCode",
    "street_line": "addressStreetLine",
    "building_number": "addressBuildingNumber",
    "phone": "addressPhoneNumber",
}
SUPPLIER_FIELDS = {
    "name": "displayName",
    "vat_number": "vatNumber",
    "website": "corporateWebsiteUrl",
}
CONTACT_FIELDS = {"name": "name", "email": "email", "phone": "phone", "title": "title"}


def _cell(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def assert_in_sync(crm: Path, api: FlowtlyApi) -> None:
    """Both sides agree: no duplicate on either side, exactly one Flowtly record per CRM
    company (matched by VAT number) and contact (by e-mail), every compared field equal,
    and nothing on Flowtly that the CRM lacks."""
    _, companies = read_csv(crm / "companies.csv")
    _, contacts = read_csv(crm / "contacts.csv")
    ids = Counter(row["id"] for row in companies)
    assert all(n == 1 for n in ids.values()), {i: n for i, n in ids.items() if n > 1}
    vats = Counter(row["vat_number"] for row in companies)
    assert all(n == 1 for n in vats.values()), {v: n for v, n in vats.items() if n > 1}
    contact_ids = Counter(row["id"] for row in contacts)
    assert all(n == 1 for n in contact_ids.values()), contact_ids.most_common(3)
    emails = Counter(row["email"] for row in contacts)
    assert all(n == 1 for n in emails.values()), emails.most_common(3)

    client_list = api.members("/clients")
    supplier_list = api.members("/counterparties")
    clients = {c.get("vatNumber"): c for c in client_list}
    suppliers = {s.get("vatNumber"): s for s in supplier_list}
    assert len(clients) == len(client_list), "two Flowtly clients share a VAT number"
    assert len(suppliers) == len(supplier_list), "two Flowtly counterparties share a VAT number"
    crm_clients = [row for row in companies if row["kind"] == "client"]
    crm_suppliers = [row for row in companies if row["kind"] == "supplier"]
    assert len(client_list) == len(crm_clients), "Flowtly has clients the CRM lacks"
    assert len(supplier_list) == len(crm_suppliers), "Flowtly has counterparties the CRM lacks"
    crm_of_iri: dict[str, str] = {}
    for row in crm_clients:
        client = clients.get(row["vat_number"])
        assert client is not None, f"{row['id']} has no Flowtly client"
        crm_of_iri[client["@id"]] = row["id"]
        for column, prop in CLIENT_FIELDS.items():
            if column in row:
                assert _cell(client.get(prop)) == _cell(row[column]), (row["id"], column)
        assert api.code("countries", client.get("country")) == row["country"], row["id"]
    for row in crm_suppliers:
        supplier = suppliers.get(row["vat_number"])
        assert supplier is not None, f"{row['id']} has no Flowtly counterparty"
        for column, prop in SUPPLIER_FIELDS.items():
            if column in row:
                assert _cell(supplier.get(prop)) == _cell(row[column]), (row["id"], column)
    flowtly_contacts = api.members("/client-contacts")
    assert len(flowtly_contacts) == len(contacts), "Flowtly contacts: duplicates or extras"
    by_email = {c.get("email"): c for c in flowtly_contacts}
    assert len(by_email) == len(flowtly_contacts), "two Flowtly contacts share an e-mail"
    for row in contacts:
        contact = by_email.get(row["email"])
        assert contact is not None, f"{row['id']} has no Flowtly contact"
        assert crm_of_iri.get(contact["client"]) == row["company_id"], row["id"]
        for column, prop in CONTACT_FIELDS.items():
            if column in row:
                assert _cell(contact.get(prop)) == _cell(row[column]), (row["id"], column)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def integrity(store: Path) -> str:
    """``PRAGMA integrity_check`` of a SQLite store (``"ok"`` when sound)."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        rows = db.execute("PRAGMA integrity_check").fetchall()
    finally:
        db.close()
    return "\n".join(str(row[0]) for row in rows)


def store_rows(store: Path, table: str) -> list[tuple[Any, ...]]:
    """Every row of one table of a SQLite store."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return db.execute(f'SELECT * FROM "{table}"').fetchall()  # noqa: S608
    finally:
        db.close()


def store_text(store: Path) -> list[tuple[str, str, str]]:
    """(table, column, text) for every non-null text or blob cell of every table."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    found: list[tuple[str, str, str]] = []
    try:
        tables = [
            name
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not name.startswith("sqlite_")
        ]
        for table in tables:
            cursor = db.execute(f'SELECT * FROM "{table}"')  # noqa: S608
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, bytes):
                        found.append((table, column, value.decode("utf-8", "replace")))
                    elif isinstance(value, str):
                        found.append((table, column, value))
    finally:
        db.close()
    return found


@dataclass
class ObservedRun:
    """A CLI run watched line by line: its exit, output, log events and whether it was killed."""

    returncode: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]]
    killed: bool


def run_observed(
    config: Path,
    on_event: Callable[[dict[str, Any]], bool],
    *args: str,
    env: Mapping[str, str] | None = None,
) -> ObservedRun:
    """``run ARGS`` with ``on_event`` called on every JSON log event of its stderr (as it
    happens); the process is SIGKILLed as soon as ``on_event`` returns True."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync", "run", *args, "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(env),
        cwd=config.parent,
    )
    stdout, stderr = proc.stdout, proc.stderr
    assert stdout is not None
    assert stderr is not None
    out: list[str] = []
    # Read the report concurrently: a full stdout pipe would block the child.
    reader = threading.Thread(target=lambda: out.append(stdout.read()), daemon=True)
    reader.start()
    watchdog = threading.Timer(CLI_TIMEOUT, proc.kill)
    watchdog.start()
    lines: list[str] = []
    events: list[dict[str, Any]] = []
    killed = False
    try:
        for line in stderr:
            lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            events.append(event)
            if not killed and on_event(event):
                proc.send_signal(signal.SIGKILL)
                killed = True
        returncode = proc.wait()
        reader.join(timeout=CLI_TIMEOUT)
    finally:
        watchdog.cancel()
        stderr.close()
        stdout.close()
    return ObservedRun(returncode, "".join(out), "".join(lines), events, killed)


class _QuietServer(ThreadingHTTPServer):
    """Connections reset by a client that gave up are expected here, not worth a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None


class FaultProxy:
    """An HTTP proxy on loopback in front of the sandbox that misbehaves like a bad network.

    For a seeded fraction ``drop_rate`` of requests it drops the connection without an
    answer, half of the time before forwarding (the sandbox never sees the request) and
    half after (the request took effect, its answer is lost). For a fraction ``delay_rate``
    it forwards the request and holds the answer for ``delay_s`` (longer than the client's
    timeout, so the client gives up on a request that did take effect). ``faults`` counts
    what was injected, per kind and method.
    """

    def __init__(
        self,
        target: str,
        *,
        seed: int,
        drop_rate: float = 0.0,
        delay_rate: float = 0.0,
        delay_s: float = 1.0,
    ) -> None:
        self.target = target.rstrip("/")
        self.faults: Counter[tuple[str, str]] = Counter()
        self.counts: Counter[str] = Counter()
        self.paths: Counter[tuple[str, str]] = Counter()
        """Requests per (method, path without query)."""
        self.requests = 0
        self._random = random.Random(seed)
        self._guard = threading.Lock()
        self._closing = threading.Event()
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._guard:
                    proxy.paths[(self.command, self.path.partition("?")[0])] += 1
                fault = proxy._draw(self.command, drop_rate, delay_rate)
                if fault == "drop-before":
                    self.close_connection = True
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in _HOP and k.lower() not in ("host", "accept-encoding")
                }
                response = proxy.client().request(
                    self.command, proxy.target + self.path, content=body, headers=headers
                )
                if fault == "drop-after":
                    self.close_connection = True
                    return
                if fault == "delay" and proxy._closing.wait(delay_s):
                    self.close_connection = True
                    return
                data = response.content
                try:
                    self.send_response(response.status_code)
                    for key, value in response.headers.multi_items():
                        if key.lower() not in _HOP and key.lower() not in ("date", "server"):
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    # The client gave up waiting (a delayed answer): nobody to answer.
                    self.close_connection = True

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = forward

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _draw(self, method: str, drop_rate: float, delay_rate: float) -> str | None:
        with self._guard:
            self.requests += 1
            self.counts[method] += 1
            draw = self._random.random()
            if draw < drop_rate:
                fault = "drop-before" if self._random.random() < 0.5 else "drop-after"
            elif draw < drop_rate + delay_rate:
                fault = "delay"
            else:
                return None
            self.faults[(fault, method)] += 1
            return fault

    def client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(timeout=30.0)
            self._local.client = client
            with self._guard:
                self._clients.append(client)
        return client

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def writes(self) -> int:
        """Requests that could change something."""
        return sum(n for method, n in self.counts.items() if method not in ("GET", "HEAD"))

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
        for client in self._clients:
            client.close()


class CountingProxy(FaultProxy):
    """A well-behaved proxy in front of the sandbox that counts requests per method."""

    def __init__(self, target: str) -> None:
        super().__init__(target, seed=0)


def small_crm_config(folder: Path, base_url: str, *, token: str = TOKEN) -> Path:
    """`small_crm` in ``folder/crm`` and ``folder/config.toml`` syncing it with ``base_url``
    (a store in ``folder/state.db``)."""
    crm = write_crm(folder / "crm", small_crm())
    return write_config(
        folder / "config.toml", base_url=base_url, crm=crm, store=folder / "state.db", token=token
    )
