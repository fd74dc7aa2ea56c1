"""What each side says it is, for binding a store: Flowtly's account behind the token, the
CRM folder resolved, the mapping wrapper's inner side; never a secret."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.files import FilesConnector, FilesSettings
from connectors.mapped import wrap_crm
from connectors.memory import MemoryConnector, MemorySettings
from sync.errors import FlowtlyError
from sync.flowtly.assumptions import EMPLOYEE_ORGANIZATION_FIELD
from sync.flowtly.client import FlowtlyClient
from sync.flowtly.resources import Defaults
from sync.flowtly.side import FlowtlySide
from sync.mapping import MappingConfig
from sync.sandbox import Sandbox, SandboxSettings, create_app
from sync.sandbox._resources import Resource

TOKEN = "t-secret-token"


async def sandbox_identity(settings: SandboxSettings) -> tuple[str, Sandbox]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with FlowtlyClient("http://sandbox.invalid", TOKEN, transport=transport) as client:
        identity = await FlowtlySide(client, Defaults()).identity()
    sandbox: Sandbox = app.state.sandbox
    return identity, sandbox


async def test_a_sandbox_is_one_account_and_another_database_another(tmp_path: Path) -> None:
    first, sandbox = await sandbox_identity(SandboxSettings(db=tmp_path / "a.db"))
    organization = sandbox.organization_iri()
    sandbox.close()
    assert first == f"flowtly:sandbox.invalid{organization}"
    assert organization.startswith("/organizations/")
    again, sandbox = await sandbox_identity(SandboxSettings(db=tmp_path / "a.db"))
    sandbox.close()
    other, sandbox = await sandbox_identity(SandboxSettings(db=tmp_path / "b.db"))
    sandbox.close()
    assert again == first
    assert other != first
    assert TOKEN not in first


async def test_the_sandbox_organization_resolves_and_employees_belong_to_it() -> None:
    app = create_app(SandboxSettings(token=TOKEN))
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/ld+json"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://s", headers=headers) as http:
        me = (await http.get("/employees/me")).json()
        organization = (await http.get(me[EMPLOYEE_ORGANIZATION_FIELD])).json()
        listed = (await http.get("/employees")).json()["member"]
        assert (await http.get("/organizations")).status_code == 404
    assert organization["@id"] == me[EMPLOYEE_ORGANIZATION_FIELD]
    assert organization["@type"] == "Organization"
    assert {e[EMPLOYEE_ORGANIZATION_FIELD] for e in listed} == {organization["@id"]}


def test_a_sandbox_database_from_before_organizations_gets_one(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    old = Sandbox(SandboxSettings(db=db))
    # Undo what this version seeds, as a database seeded by an older one looks.
    for employee in old.records(Resource.EMPLOYEES):
        seq, key, record = old.require(Resource.EMPLOYEES, str(employee["id"]))
        del record[EMPLOYEE_ORGANIZATION_FIELD]
        old.replace(Resource.EMPLOYEES, seq, key, record)
    old.store._db.execute("DELETE FROM meta WHERE key = 'organization'")
    old.store._db.commit()
    old.close()
    upgraded = Sandbox(SandboxSettings(db=db))
    organization = upgraded.organization_iri()
    employees = upgraded.records(Resource.EMPLOYEES)
    upgraded.close()
    assert {e[EMPLOYEE_ORGANIZATION_FIELD] for e in employees} == {organization}
    reopened = Sandbox(SandboxSettings(db=db))
    assert reopened.organization_iri() == organization
    reopened.close()


def answering(me: dict[str, Any]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/employees/me")
        return httpx.Response(
            200, content=json.dumps(me), headers={"Content-Type": "application/ld+json"}
        )

    return httpx.MockTransport(handle)


@pytest.mark.parametrize(
    ("me", "expected"),
    [
        ({"@id": "/api/employees/7", "organization": "/api/organizations/42"}, "/organizations/42"),
        ({"organization": {"@id": "/api/organizations/42", "name": "Acme"}}, "/organizations/42"),
        ({"organization": "https://api.flowtly.eu/api/organizations/42"}, "/organizations/42"),
        ({"organization": 42}, "/organizations/42"),
        # No organization: the employee stands in (stricter, never laxer).
        ({"@id": "/api/employees/7", "id": 7}, "/employees/7"),
        ({"id": 7}, "/employees/7"),
    ],
)
async def test_flowtly_identity_is_host_and_account(me: dict[str, Any], expected: str) -> None:
    url = "https://user:password@API.example.com:8443/api"
    async with FlowtlyClient(url, TOKEN, transport=answering(me)) as client:
        identity = await FlowtlySide(client, Defaults()).identity()
    assert identity == f"flowtly:api.example.com/api{expected}"
    assert "password" not in identity
    assert TOKEN not in identity


async def test_flowtly_identity_refuses_an_anonymous_answer() -> None:
    transport = answering({"firstName": "Ada"})
    async with FlowtlyClient("https://api.example.com", TOKEN, transport=transport) as client:
        with pytest.raises(FlowtlyError, match="which Flowtly account"):
            await FlowtlySide(client, Defaults()).identity()


async def test_files_identity_is_the_resolved_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "crm").mkdir()
    os.symlink(tmp_path / "crm", tmp_path / "link")
    monkeypatch.chdir(tmp_path)
    for written in ("crm", "./crm/", "link", str(tmp_path / "crm")):
        files = FilesConnector(FilesSettings(path=Path(written)))
        assert await files.identity() == f"files:{(tmp_path / 'crm').resolve()}"


async def test_default_identity_is_the_description_and_mapping_passes_it_through() -> None:
    memory = MemoryConnector(MemorySettings(name="portal-7"))
    assert await memory.identity() == "memory:portal-7"
    mapping = MappingConfig.model_validate({"company": {"defaults": {"currency": "EUR"}}})
    wrapped = wrap_crm(memory, mapping)
    assert wrapped is not memory
    assert await wrapped.identity() == "memory:portal-7"
