"""Sandbox runtime options: latency, rate limit, faults, persistence, HTTP serving, self-check."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from sync.sandbox import SandboxSettings, create_app, self_check, serve
from sync.sandbox._resources import Resource

AUTH = {"Authorization": "Bearer t"}
LD = {"Content-Type": "application/ld+json"}
CLIENT = {
    "name": "ACME",
    "country": "/countries/1",
    "currency": "/currencies/1",
    "status": "active",
    "tinType": "vat",
}


def _client(settings: SandboxSettings) -> tuple[httpx.AsyncClient, object]:
    app = create_app(settings)
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox", headers=AUTH
    )
    return http, app


class FakeTime:
    """Monotonic time that only moves when told, and a sleep that records its calls."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


class TickingTime(FakeTime):
    """`FakeTime` whose clock moves by ``tick`` seconds each time it is read: the time
    the sandbox spends handling a request, between its two readings."""

    def __init__(self, tick: float) -> None:
        super().__init__()
        self.tick = tick

    def monotonic(self) -> float:
        self.now += self.tick
        return self.now


@pytest.mark.parametrize(
    ("handling_s", "slept_s"),
    [
        (0.0, 0.025),
        (0.010, 0.015),  # the sandbox's own work is within the latency, not added to it
        (0.030, 0.0),  # work longer than the latency is not made longer still
    ],
)
async def test_latency_goes_through_the_injected_sleep(handling_s: float, slept_s: float) -> None:
    fake = TickingTime(handling_s)
    app = create_app(SandboxSettings(latency_ms=25, sleep=fake.sleep, monotonic=fake.monotonic))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://s", headers=AUTH
    ) as http:
        assert (await http.get("/countries/1")).status_code == 200
        assert (await http.get("/nope")).status_code == 404
    assert fake.sleeps == pytest.approx([slept_s, slept_s])
    app.state.sandbox.close()


async def test_rate_limit_token_bucket() -> None:
    fake = FakeTime()
    app = create_app(SandboxSettings(rate_limit=2, monotonic=fake.monotonic))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://s", headers=AUTH
    ) as http:
        statuses = [(await http.get("/countries/1")).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        limited = await http.get("/countries/1")
        assert limited.headers["retry-after"] == "1"
        assert limited.headers["content-type"] == "application/problem+json; charset=utf-8"
        assert limited.json()["status"] == 429
        fake.now += 0.5
        assert (await http.get("/countries/1")).status_code == 200
        assert (await http.get("/countries/1")).status_code == 429
    app.state.sandbox.close()


async def test_slow_rate_limit_asks_for_longer_waits() -> None:
    fake = FakeTime()
    app = create_app(SandboxSettings(rate_limit=0.25, monotonic=fake.monotonic))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://s", headers=AUTH
    ) as http:
        assert (await http.get("/countries/1")).status_code == 200
        limited = await http.get("/countries/1")
        assert (limited.status_code, limited.headers["retry-after"]) == (429, "4")
        fake.now += 3.0
        assert (await http.get("/countries/1")).headers["retry-after"] == "1"
        fake.now += 1.0
        assert (await http.get("/countries/1")).status_code == 200
    app.state.sandbox.close()


async def _fault_statuses(seed: int) -> list[int]:
    app = create_app(SandboxSettings(fail_rate=0.5, seed=seed))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://s", headers=AUTH
    ) as http:
        statuses = []
        for _ in range(40):
            response = await http.get("/countries/1")
            if response.status_code >= 500:
                assert response.json()["detail"] in ("Internal Server Error", "Service Unavailable")
            statuses.append(response.status_code)
    app.state.sandbox.close()
    return statuses


async def test_fault_injection_is_seeded() -> None:
    first = await _fault_statuses(11)
    assert first == await _fault_statuses(11)
    assert first != await _fault_statuses(12)
    assert {200, 500, 503} <= set(first)
    assert 8 <= first.count(200) <= 32


async def test_no_faults_at_rate_zero_and_all_at_one() -> None:
    assert set(await _fault_statuses_at(0.0)) == {200}
    assert set(await _fault_statuses_at(1.0)) <= {500, 503}


async def _fault_statuses_at(rate: float) -> list[int]:
    app = create_app(SandboxSettings(fail_rate=rate, seed=1))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://s", headers=AUTH
    ) as http:
        statuses = [(await http.get("/countries/1")).status_code for _ in range(10)]
    app.state.sandbox.close()
    return statuses


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fail_rate": 1.5},
        {"rate_limit": -1},
        {"latency_ms": -1},
        {"token": " "},
        {"base_path": "api"},
    ],
)
def test_settings_are_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        SandboxSettings(**kwargs)  # type: ignore[arg-type]


async def test_file_database_survives_restart(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.sqlite"
    app = create_app(SandboxSettings(db=db, seed=5))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://s", headers=AUTH
    ) as http:
        assert (await http.post("/clients", json=CLIENT, headers=LD)).status_code == 201
        contact = {"client": "/clients/1", "type": "main", "email": "a@b.pl", "name": "A"}
        assert (await http.post("/client-contacts", json=contact, headers=LD)).status_code == 201
        note = {"client": "/clients/1", "employee": "/employees/2", "note": "hi"}
        note_id = (await http.post("/client-notes", json=note, headers=LD)).json()["id"]
        countries = (await http.get("/countries")).json()["totalItems"]
    app.state.sandbox.close()

    again = create_app(SandboxSettings(db=db, seed=5))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=again), base_url="http://s", headers=AUTH
    ) as http:
        client = (await http.get("/clients/1")).json()
        assert client["name"] == "ACME"
        assert client["clientContacts"][0]["email"] == "a@b.pl"
        assert (await http.get(f"/client-notes/{note_id}")).json()["note"] == "hi"
        assert (await http.get("/countries")).json()["totalItems"] == countries
        assert (await http.get("/employees")).json()["totalItems"] == 3
        second = await http.post("/clients", json=CLIENT, headers=LD)
        assert second.json()["id"] == 2
        new_note = (await http.post("/client-notes", json=note, headers=LD)).json()
        assert new_note["id"] != note_id
    again.state.sandbox.close()


async def test_concurrent_creates_get_distinct_ids() -> None:
    app = create_app(SandboxSettings())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://s", headers=AUTH
    ) as http:
        responses = await asyncio.gather(
            *(http.post("/clients", json=CLIENT, headers=LD) for _ in range(40))
        )
        assert sorted(r.json()["id"] for r in responses) == list(range(1, 41))
    app.state.sandbox.close()


async def test_thousands_of_records_page_quickly() -> None:
    app = create_app(SandboxSettings())
    sandbox = app.state.sandbox
    for n in range(3000):
        sandbox.insert(Resource.CLIENTS, {**CLIENT, "name": f"C{n}"})
    started = time.perf_counter()
    seen = 0
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://s", headers=AUTH
    ) as http:
        url: str | None = "/clients"
        while url is not None:
            doc = (await http.get(url)).json()
            seen += len(doc["member"])
            url = doc.get("view", {}).get("next")
    assert seen == 3000
    # Generous bound: a regression to per-page full scans of JSON would blow well past it.
    assert time.perf_counter() - started < 10
    sandbox.close()


async def _until_ready(urls: list[str], task: asyncio.Task[None]) -> None:
    # serve() hands its URL to ``ready`` once listening; poll that with short awaits.
    for _ in range(500):
        if urls or task.done():
            break
        await asyncio.sleep(0.01)
    assert urls, "the sandbox did not start"


async def test_serve_listens_over_http_and_stops(capsys: pytest.CaptureFixture[str]) -> None:
    urls: list[str] = []
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(SandboxSettings(token="tok"), "127.0.0.1", 0, ready=urls.append, stop=stop)
    )
    await _until_ready(urls, task)
    assert urls[0].startswith("http://127.0.0.1:")
    assert not urls[0].endswith(":0")
    async with httpx.AsyncClient(base_url=urls[0]) as http:
        response = await http.get("/countries/1", headers={"Authorization": "Bearer tok"})
        assert response.status_code == 200
        assert response.json()["@id"] == "/countries/1"
        assert (await http.get("/countries/1")).status_code == 401
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert f"Flowtly sandbox serving at {urls[0]}" in capsys.readouterr().out


async def test_serve_reports_a_port_it_cannot_bind() -> None:
    urls: list[str] = []
    stop = asyncio.Event()
    first = asyncio.create_task(
        serve(SandboxSettings(), "127.0.0.1", 0, ready=urls.append, stop=stop)
    )
    await _until_ready(urls, first)
    port = int(urls[0].rsplit(":", 1)[1])
    try:
        with pytest.raises(OSError, match="could not listen"):
            await serve(SandboxSettings(), "127.0.0.1", port)
    finally:
        stop.set()
        await asyncio.wait_for(first, timeout=10)


async def test_self_check_passes() -> None:
    results = await self_check()
    assert [name for name, _ok in results] == [
        "create client",
        "create contact",
        "list clients",
        "list contacts",
        "422 on missing fields",
    ]
    assert all(ok for _name, ok in results)
    prefixed = await self_check(SandboxSettings(base_path="/api", token="x"))
    assert all(ok for _name, ok in prefixed)
