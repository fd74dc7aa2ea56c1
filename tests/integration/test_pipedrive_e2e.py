"""The real command line against a Pipedrive fake on 127.0.0.1 and the Flowtly sandbox:
``crm setup``, ``check``, ``run`` (initial and no-op), ``diff``, a wrong token and a spent
daily budget. Every request the CLI sends the fake is validated against Pipedrive's
OpenAPI documents."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from e2e_support import (
    TOKEN,
    FlowtlyApi,
    SandboxProcess,
    new_flowtly_client,
    new_flowtly_contact,
    pl_vat,
    run_cli,
    start_sandbox,
    store_text,
)
from stdnum.iso7064 import mod_11_10

from tests.fakes.pipedrive import PipedriveFake, provision
from tests.fakes.pipedrive._spec import openapi_of

pytestmark = pytest.mark.slow

PD_TOKEN = "pd-SECRET-e2e-41c7be09"


@dataclass
class Served:
    fake: PipedriveFake
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _serve(fake: PipedriveFake) -> Served:
    """The fake on a socket bound and listening already: connections wait in its backlog
    until uvicorn accepts them, so nothing polls for the server to come up."""
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    # The fake's own Date header tells its logical time; uvicorn's would tell the real one.
    config = uvicorn.Config(fake.asgi, log_level="warning", date_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    return Served(fake, f"http://127.0.0.1:{port}", server, thread)


def _config(
    tmp_path: Path, sandbox: SandboxProcess, pipedrive: Served, token: str, extra: str = ""
) -> Path:
    """A config.toml over the sandbox, the Pipedrive fake and a SQLite store (``extra``:
    more TOML, such as ``[mapping.*]`` tables)."""
    flowtly, store, path = sandbox.url, tmp_path / "state.db", tmp_path / "config.toml"
    path.write_text(
        "[flowtly]\n"
        f"base_url = {json.dumps(flowtly)}\n"
        f"token = {json.dumps(TOKEN)}\n"
        "rate_limit = 0\ntimeout = 10\nmax_retries = 2\n"
        "[store]\n"
        f"url = {json.dumps('sqlite:///' + str(store))}\n"
        "[crm]\n"
        'type = "pipedrive"\n'
        f"base_url = {json.dumps(pipedrive.url)}\n"
        f"token = {json.dumps(token)}\n"
        "max_retries = 1\n"
        "[sync]\n"
        'conflict_policy = "crm"\n'
        "[logging]\n"
        'format = "json"\nlevel = "debug"\n' + extra,
        encoding="utf-8",
    )
    return path


def _seed(fake: PipedriveFake, count: int) -> None:
    vat = fake.state.field_code("organization", "Flowtly vat_number")
    assert vat is not None
    address = {"locality": "Warszawa", "country": "Poland", "postal_code": "00-001"}
    for n in range(count):
        fake.state.put(
            "organization", name=f"Klient {n}", address=address, custom_fields={vat: pl_vat(n + 1)}
        )


@pytest.fixture(scope="module")
def _specs() -> None:
    openapi_of("v1")  # built before any server thread needs them
    openapi_of("v2")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxProcess]:
    started = start_sandbox(tmp_path, db=tmp_path / "flowtly.db")
    yield started
    started.stop()


@pytest.fixture
def pipedrive(_specs: None) -> Iterator[Served]:
    served = _serve(PipedriveFake(token=PD_TOKEN))
    yield served
    served.stop()
    assert served.fake.asgi.checked > 0
    assert served.fake.violations == [], "traffic broke Pipedrive's OpenAPI documents"


def test_setup_check_run_noop_and_diff_through_the_cli(
    tmp_path: Path, sandbox: SandboxProcess, pipedrive: Served
) -> None:
    fake = pipedrive.fake
    config = _config(tmp_path, sandbox, pipedrive, PD_TOKEN)
    listed = run_cli("crm", "setup", config=config)
    assert listed.returncode != 0, listed.stdout
    assert "Flowtly vat_number" in listed.stdout
    assert "MISSING" in listed.stdout
    applied = run_cli("crm", "setup", "--apply", config=config)
    assert applied.returncode == 0, applied.stdout + applied.stderr[-2000:]
    assert "every custom field is present" in applied.stdout
    _seed(fake, 12)

    checked = run_cli("check", config=config)
    assert checked.returncode == 0, checked.stdout + checked.stderr[-2000:]

    first = run_cli("run", "--report", str(tmp_path / "first.json"), config=config)
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    api = FlowtlyApi(sandbox.url, token=TOKEN)
    try:
        clients = api.members("/clients")
    finally:
        api.close()
    assert sorted(c["vatNumber"] for c in clients) == sorted(pl_vat(n + 1) for n in range(12))

    # A client made in Flowtly, with a contact, reaches Pipedrive.
    api = FlowtlyApi(sandbox.url, token=TOKEN)
    try:
        made = new_flowtly_client(api, "Berliner GmbH", "DE136695976", "Berlin")
        new_flowtly_contact(api, made, "Anna Schmidt", "anna@berliner.example")
    finally:
        api.close()
    pushed = run_cli("run", config=config)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr[-3000:]
    [berliner] = [o for o in fake.state.organizations.values() if o["name"] == "Berliner GmbH"]
    vat = fake.state.field_code("organization", "Flowtly vat_number")
    kind = fake.state.field_code("organization", "Flowtly kind")
    assert vat is not None
    assert kind is not None
    assert berliner["custom_fields"][vat] == "DE136695976"
    assert berliner["custom_fields"][kind] == fake.state.option_id(
        "organization", "Flowtly kind", "client"
    )
    assert (berliner["address"]["locality"], berliner["address"]["country"]) == (
        "Berlin",
        "Germany",
    )
    [anna] = fake.state.persons.values()
    assert anna["org_id"] == berliner["id"]
    assert anna["emails"] == [{"value": "anna@berliner.example", "primary": True, "label": "work"}]

    writes = fake.writes()
    fake.queries.clear()
    second = run_cli("run", "--report", str(tmp_path / "second.json"), config=config)
    assert second.returncode == 0, second.stdout + second.stderr[-3000:]
    assert fake.writes() == writes, "a run with nothing changed wrote to Pipedrive"
    # Only what changed: every listing since its cursor, and recents for the deletes.
    listings = [q for q in fake.queries if q[0] == "GET" and q[1] != "/api/v1/recents"]
    listings = [q for q in listings if not q[1].endswith("Fields")]
    assert {q[1] for q in listings} == {
        "/api/v2/organizations",
        "/api/v2/persons",
        "/api/v1/notes",
    }
    assert all("updated_since" in query for _, _, query in listings), listings
    diffed = run_cli("diff", config=config)
    assert diffed.returncode == 0, diffed.stdout + diffed.stderr[-2000:]

    # A delete in Pipedrive reaches Flowtly through recents: the client is archived.
    [gone] = [i for i, o in fake.state.organizations.items() if o["name"] == "Klient 0"]
    fake.state.organizations[gone]["is_deleted"] = True
    fake.state.organizations[gone]["update_time"] = fake.state.tick().strftime("%Y-%m-%dT%H:%M:%SZ")
    fake.state.record("organization", gone)
    third = run_cli("run", config=config)
    assert third.returncode == 0, third.stdout + third.stderr[-3000:]
    api = FlowtlyApi(sandbox.url, token=TOKEN)
    try:
        statuses = {c["vatNumber"]: c["status"] for c in api.members("/clients")}
    finally:
        api.close()
    assert statuses.pop(pl_vat(1)) == "archived"
    assert "archived" not in statuses.values()
    for text in (first.stdout, first.stderr, second.stdout, second.stderr, diffed.stdout):
        assert PD_TOKEN not in text
    for report in ("first.json", "second.json"):
        assert PD_TOKEN not in (tmp_path / report).read_text(encoding="utf-8")
    assert not any(PD_TOKEN in cell for *_, cell in store_text(tmp_path / "state.db"))


def test_a_wrong_token_exits_1_at_once_in_one_line_and_writes_nothing(
    tmp_path: Path, sandbox: SandboxProcess, pipedrive: Served
) -> None:
    wrong = "pd-SECRET-wrong-90d2aa"
    config = _config(tmp_path, sandbox, pipedrive, wrong)
    started = time.monotonic()
    done = run_cli("run", "--report", str(tmp_path / "report.json"), config=config)
    assert done.returncode == 1
    assert time.monotonic() - started < 30
    lines = [line for line in done.stderr.splitlines() if line.startswith("flowtly-sync:")]
    assert len(lines) == 1, done.stderr[-2000:]
    assert "crm.token" in lines[0]
    assert pipedrive.fake.writes() == 0
    everything = done.stdout + done.stderr
    report = tmp_path / "report.json"
    if report.exists():
        everything += report.read_text(encoding="utf-8")
    assert wrong not in everything
    assert PD_TOKEN not in everything


def test_a_spent_daily_budget_ends_the_run_with_exit_1_and_says_so(
    tmp_path: Path, sandbox: SandboxProcess, pipedrive: Served
) -> None:
    provision(pipedrive.fake)
    _seed(pipedrive.fake, 3)
    pipedrive.fake.daily_tokens = 25  # the fields listings (20) and not one more listing
    config = _config(tmp_path, sandbox, pipedrive, PD_TOKEN)
    done = run_cli("run", config=config)
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    assert "daily API token budget is spent" in done.stderr
    assert pipedrive.fake.writes() == 0


MAPPING = """
[mapping.company]
kinds = { "Customer" = "client", "Vendor" = "supplier" }
[mapping.company.fields."Tax ID"]
field = "vat_number"
[mapping.company.fields."Customer type"]
field = "kind"
"""


def test_the_users_own_fields_and_kind_values_through_the_mapping(
    tmp_path: Path, sandbox: SandboxProcess, pipedrive: Served
) -> None:
    state = pipedrive.fake.state
    tax = state.add_field("organization", "Tax ID", "varchar", [])["field_code"]
    kind = state.add_field("organization", "Customer type", "enum", ["Customer", "Vendor"])
    customer = state.option_id("organization", "Customer type", "Customer")
    vendor = state.option_id("organization", "Customer type", "Vendor")
    address = {"locality": "Poznań", "country": "Poland"}
    for n, option in enumerate((customer, customer, vendor)):
        custom = {tax: pl_vat(n + 40), kind["field_code"]: option}
        state.put("organization", name=f"Firma {n}", address=address, custom_fields=custom)
    config = _config(tmp_path, sandbox, pipedrive, PD_TOKEN, MAPPING)
    listed = run_cli("crm", "setup", config=config)
    [line] = [line for line in listed.stdout.splitlines() if "Customer type" in line]
    assert "present" in line
    assert "Flowtly vat_number" not in listed.stdout  # mapped to Tax ID instead
    done = run_cli("run", config=config)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    api = FlowtlyApi(sandbox.url, token=TOKEN)
    try:
        clients = sorted(c["vatNumber"] for c in api.members("/clients"))
        suppliers = [c["vatNumber"] for c in api.members("/counterparties")]
    finally:
        api.close()
    assert clients == sorted([pl_vat(40), pl_vat(41)])
    assert suppliers == [pl_vat(42)]


def test_a_budget_spent_while_writing_ends_the_run_with_exit_1(
    tmp_path: Path, sandbox: SandboxProcess, pipedrive: Served
) -> None:
    provision(pipedrive.fake)
    api = FlowtlyApi(sandbox.url, token=TOKEN)
    try:
        for n in range(6):
            base = f"1366959{n}"
            vat = f"DE{base}{mod_11_10.calc_check_digit(base)}"
            new_flowtly_client(api, f"Kunde {n} GmbH", vat, "Köln")
    finally:
        api.close()
    # Opening (20), the listings of clients and suppliers (10 each) and one create (5).
    pipedrive.fake.daily_tokens = 45
    config = _config(tmp_path, sandbox, pipedrive, PD_TOKEN)
    done = run_cli("run", config=config)
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    [line] = [line for line in done.stderr.splitlines() if line.startswith("flowtly-sync:")]
    assert "daily API token budget is spent" in line
    assert len(pipedrive.fake.state.organizations) == 1, pipedrive.fake.queries
    assert pipedrive.fake.rate_limited == 0  # stopped before Pipedrive had to refuse
