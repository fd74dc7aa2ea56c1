"""Benchmark of the HubSpot connector under HubSpot's 100 requests per 10 s (run on demand).

    python tests/benchmarks/bench_hubspot.py [--companies 10000] [--contacts 30000]
        [--limit 100] [--json FILE]

Simulated time: the HubSpot fake (tests/fakes/hubspot) and the connector share one clock
that only moves when someone sleeps, so waiting for the rolling window costs no real
time and the figures do not depend on this machine's speed; the fake enforces the
window exactly as it would in real time (a request over the limit gets a 429). The fake
is driven in-process through ``httpx.ASGITransport``; the engine and Flowtly are not
part of it (their cost is ``bench_sync.py``'s), so this measures what the HubSpot side of
a sync asks HubSpot for and how close it comes to the limit.

Scenarios:

- ``initial read``: HubSpot holds N companies (15% suppliers) and M contacts, each with
  its primary company; a first sync lists clients, suppliers, contacts and notes whole.
- ``initial write``: the other way, a first sync that creates the N companies and M
  contacts in HubSpot (``create_many``, the engine's batches of 100).
- ``no-op``: a later run with nothing changed: incremental searches from the cursors the
  complete listings gave, once the overlap has passed.

Per scenario: requests, requests per record, simulated wall seconds, the bound the
limit imposes (``requests / limit x 10 s``) and wall/bound, the highest count in any
10 s window against the limit, 429s received, and the real CPU seconds it took.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from bisect import bisect_right
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the fake
from fakes.hubspot import FakeHubSpot, Limits, hubspot_app
from pydantic import SecretStr

from connectors.base import Cursor
from connectors.hubspot import HubSpotConnector, HubSpotSettings
from sync.model import EntityKind

READ_ENTITIES = (EntityKind.CLIENT, EntityKind.COUNTERPARTY, EntityKind.CONTACT, EntityKind.NOTE)


class SimulatedClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)  # let the other tasks run, as a real wait would


class Timed:
    """An ASGI wrapper noting the simulated time of every request the fake answers."""

    def __init__(self, app: Any, clock: SimulatedClock) -> None:
        self.app = app
        self.clock = clock
        self.times: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.times.append(self.clock())
        await self.app(scope, receive, send)


@dataclass
class Figures:
    scenario: str
    records: int
    requests: int
    requests_per_record: float
    wall_s: float
    bound_s: float
    wall_over_bound: float
    peak_per_window: int
    limit_per_window: int
    rate_limited: int
    cpu_s: float


def _peak(times: list[float], window: float) -> int:
    ordered = sorted(times)
    return max(
        # Requests in the window (t - window, t], as HubSpot's rolling window counts them.
        (i - bisect_right(ordered, t - window) + 1 for i, t in enumerate(ordered)),
        default=0,
    )


async def _measure(
    name: str,
    records: int,
    state: FakeHubSpot,
    timed: Timed,
    clock: SimulatedClock,
    limit: int,
    work: Callable[[], Awaitable[None]],
) -> Figures:
    first, began, cpu = len(timed.times), clock(), time.process_time()
    rejected = state.rejected_429
    await work()
    times = timed.times[first:]
    wall = clock() - began
    bound = len(times) / limit * 10.0
    return Figures(
        name,
        records,
        len(times),
        round(len(times) / max(records, 1), 4),
        round(wall, 1),
        round(bound, 1),
        round(wall / bound, 3) if bound else 0.0,
        _peak(times, 10.0),
        limit,
        state.rejected_429 - rejected,
        round(time.process_time() - cpu, 1),
    )


def _seed(state: FakeHubSpot, clock: SimulatedClock, companies: int, contacts: int) -> None:
    """Records changed over time, as in a CRM in use: one change a second, the last one
    just before the benchmark starts."""
    clock.now -= companies + contacts
    ids = []
    for n in range(companies):
        clock.now += 1
        kind = {"type": "VENDOR"} if n % 7 == 0 else {}
        made = state.create(
            "companies",
            {"name": f"Company {n}", "country": "Poland", "city": "Warszawa", **kind},
        )
        ids.append(made.id)
    for n in range(contacts):
        clock.now += 1
        person = state.create(
            "contacts",
            {"firstname": "Jan", "lastname": f"Kowalski {n}", "email": f"jan{n}@example.com"},
        )
        state.associate("contacts", person.id, ids[n % companies], 1)


def _connector(state: FakeHubSpot, app: Any, clock: SimulatedClock, limit: int) -> HubSpotConnector:
    settings = HubSpotSettings(
        base_url="https://api.hubapi.test", token=SecretStr(state.token), rate_limit=limit
    )
    return HubSpotConnector(
        settings, transport=httpx.ASGITransport(app=app), clock=clock, sleep=clock.sleep
    )


async def _read_all(
    connector: HubSpotConnector, cursors: dict[EntityKind, Cursor | None], incremental: bool
) -> int:
    seen = 0
    for entity in READ_ENTITIES:
        since = cursors.get(entity) if incremental else None
        if incremental and since is None:
            continue
        async for batch in connector.read(entity, since):
            seen += len(batch.records)
            cursors[entity] = batch.cursor or cursors.get(entity)
    return seen


async def run(companies: int, contacts: int, limit: int) -> list[Figures]:
    figures: list[Figures] = []
    clock = SimulatedClock()
    state = FakeHubSpot(clock=clock, limits=Limits(per_window=limit), validate=False)
    _seed(state, clock, companies, contacts)
    timed = Timed(hubspot_app(state), clock)
    cursors: dict[EntityKind, Cursor | None] = {}
    async with _connector(state, timed, clock, limit) as hubspot:

        async def initial() -> None:
            assert await _read_all(hubspot, cursors, incremental=False) == companies + contacts

        figures.append(
            await _measure(
                "initial read", companies + contacts, state, timed, clock, limit, initial
            )
        )
        clock.now += 600  # the next run, past the search overlap

        async def noop() -> None:
            await _read_all(hubspot, cursors, incremental=True)

        figures.append(
            await _measure("no-op", companies + contacts, state, timed, clock, limit, noop)
        )

    clock = SimulatedClock()
    empty = FakeHubSpot(clock=clock, limits=Limits(per_window=limit), validate=False)
    timed = Timed(hubspot_app(empty), clock)
    async with _connector(empty, timed, clock, limit) as hubspot:

        async def initial_write() -> None:
            created: list[str] = []
            for start in range(0, companies, 100):
                kinds = [
                    EntityKind.COUNTERPARTY if n % 7 == 0 else EntityKind.CLIENT
                    for n in range(start, min(start + 100, companies))
                ]
                for entity in (EntityKind.CLIENT, EntityKind.COUNTERPARTY):
                    items = [
                        {"name": f"Company {start + i}", "country": "PL"}
                        for i, k in enumerate(kinds)
                        if k is entity
                    ]
                    results = await hubspot.create_many(entity, items)
                    created.extend(r.record.id for r in results if r.record is not None)
            clients = created
            for start in range(0, contacts, 100):
                items = [
                    {
                        "name": f"Jan Kowalski {n}",
                        "email": f"jan{n}@example.com",
                        "company_id": clients[n % len(clients)],
                    }
                    for n in range(start, min(start + 100, contacts))
                ]
                results = await hubspot.create_many(EntityKind.CONTACT, items)
                assert all(r.ok for r in results)

        figures.append(
            await _measure(
                "initial write", companies + contacts, empty, timed, clock, limit, initial_write
            )
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--companies", type=int, default=10_000)
    parser.add_argument("--contacts", type=int, default=30_000)
    parser.add_argument("--limit", type=int, default=100, help="requests per rolling 10 s")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    # Each request's debug event would cost more than the request itself here.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    figures = asyncio.run(run(args.companies, args.contacts, args.limit))
    header = (
        "| scenario | records | requests | req/record | wall s (sim.) | bound s | wall/bound "
        "| peak per 10 s / limit | 429s | CPU s |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for f in figures:
        print(
            f"| {f.scenario} | {f.records} | {f.requests} | {f.requests_per_record} | {f.wall_s} | "
            f"{f.bound_s} | {f.wall_over_bound} | {f.peak_per_window} / {f.limit_per_window} | "
            f"{f.rate_limited} | {f.cpu_s} |"
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in figures], indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
