"""A quick end-to-end check of an in-process sandbox (the README's first command)."""

from __future__ import annotations

import httpx

from sync.sandbox.app import create_app
from sync.sandbox.settings import SandboxSettings

__all__ = ["self_check"]

_LD = "application/ld+json"


async def self_check(settings: SandboxSettings | None = None) -> list[tuple[str, bool]]:
    """Create a client and a contact, list them, provoke a 422; report each step's outcome."""
    settings = settings or SandboxSettings()
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {settings.token or 'self-check'}", "Accept": _LD}
    results: list[tuple[str, bool]] = []
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://sandbox", headers=headers
        ) as http:
            base = settings.base_path
            client = await http.post(
                f"{base}/clients",
                json={
                    "name": "Self-check Sp. z o.o.",
                    "country": f"{base}/countries/1",
                    "currency": f"{base}/currencies/1",
                    "status": "active",
                    "tinType": "vat",
                },
                headers={"Content-Type": _LD},
            )
            results.append(("create client", client.status_code == 201))
            client_iri = client.json().get("@id") if client.status_code == 201 else None
            contact = await http.post(
                f"{base}/client-contacts",
                json={"client": client_iri, "type": "main", "name": "Ann", "email": "ann@x.io"},
                headers={"Content-Type": _LD},
            )
            results.append(("create contact", contact.status_code == 201))
            clients = await http.get(f"{base}/clients")
            listed = clients.json() if clients.status_code == 200 else {}
            members = listed.get("member") or [{}]
            results.append(
                (
                    "list clients",
                    listed.get("totalItems", 0) >= 1
                    and any(m.get("clientContacts") for m in members),
                )
            )
            contacts = await http.get(f"{base}/client-contacts")
            results.append(
                (
                    "list contacts",
                    contacts.status_code == 200 and contacts.json().get("totalItems", 0) >= 1,
                )
            )
            invalid = await http.post(f"{base}/clients", json={}, headers={"Content-Type": _LD})
            results.append(
                (
                    "422 on missing fields",
                    invalid.status_code == 422 and len(invalid.json().get("violations", [])) == 5,
                )
            )
    finally:
        app.state.sandbox.close()
    return results
