"""Benchmark of FlowtlyClient against the sandbox over real HTTP (run on demand).

    python tests/benchmarks/bench_client.py [--latency-ms 20] [--per-slot 25] [--backends ...]

Starts the sandbox in a subprocess (uvicorn on a free loopback port, 20 ms latency per
request), then for concurrency 1, 8 and 32 with no client rate limit measures creating
clients (POST /clients) and fetching them (GET /clients/{id}). For each run it prints the
throughput, its ratio to the bound the latency imposes (concurrency / latency), and the
client's CPU time per request (this process only: the server runs in another process).
``--backends`` names the network transports to compare in one run: ``httpx`` (httpx's own,
on httpcore) and ``aiohttp`` (httpx-aiohttp, aiohttp's C parser: what the client uses).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from connectors.http import network_transport  # noqa: E402 - after the path fix-up above
from sync.flowtly.client import FlowtlyClient  # noqa: E402

TOKEN = "bench-token"
SERVER = textwrap.dedent(
    """
    import asyncio
    import sys
    from sync.sandbox import SandboxSettings, serve

    settings = SandboxSettings(token=sys.argv[3], latency_ms=float(sys.argv[2]))
    asyncio.run(serve(settings, "127.0.0.1", int(sys.argv[1])))
    """
)


@dataclass(frozen=True)
class Result:
    operation: str
    concurrency: int
    requests: int
    seconds: float
    cpu_seconds: float
    latency_s: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def bound(self) -> float:
        """Requests per second possible if latency were the only cost."""
        return self.concurrency / self.latency_s

    def row(self) -> str:
        return (
            f"{self.operation:<14} {self.concurrency:>4} {self.requests:>6} {self.seconds:>8.2f} "
            f"{self.per_second:>9.1f} {self.bound:>8.0f} {self.per_second / self.bound:>6.2f} "
            f"{self.cpu_seconds / self.requests * 1000:>9.3f}"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(port: int, latency_ms: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(latency_ms), TOKEN], env=env
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"sandbox exited with code {proc.returncode}")
        try:
            httpx.get(
                f"http://127.0.0.1:{port}/countries?itemsPerPage=1",
                timeout=1,
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
        except httpx.TransportError:
            time.sleep(0.05)
        else:
            return proc
    proc.terminate()
    raise SystemExit("sandbox did not start within 20 s")


async def first_iri(client: FlowtlyClient, path: str) -> str:
    async for member in client.iterate(path, page_size=1):
        iri: str = member["@id"]
        return iri
    raise SystemExit(f"{path} is empty in the sandbox")


async def timed(operation: str, concurrency: int, latency_s: float, jobs: list[Any]) -> Result:
    """Run ``jobs`` (coroutines) together; measure wall time and this process's CPU time."""
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*jobs)
    return Result(
        operation,
        concurrency,
        len(jobs),
        time.perf_counter() - wall,
        time.process_time() - cpu,
        latency_s,
    )


def _httpx_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    return httpx.AsyncHTTPTransport(limits=limits)


def _aiohttp_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    return network_transport(limits)


BACKENDS: dict[str, Callable[[httpx.Limits], httpx.AsyncBaseTransport]] = {
    "httpx": _httpx_transport,
    "aiohttp": _aiohttp_transport,
}


async def measure(
    base_url: str, concurrency: int, count: int, latency_s: float, backend: str
) -> list[Result]:
    iris: list[str] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with FlowtlyClient(
        base_url,
        TOKEN,
        concurrency=concurrency,
        rate_limit=0,
        max_retries=0,
        transport=BACKENDS[backend](limits),
    ) as client:
        country = await first_iri(client, "/countries")
        currency = await first_iri(client, "/currencies")

        async def create(i: int) -> None:
            body = {
                "name": f"Bench {concurrency}-{i}",
                "country": country,
                "currency": currency,
                "status": "active",
                "tinType": "vat",
            }
            iris.append((await client.post("/clients", body))["@id"])

        results = [
            await timed(
                f"POST/{backend}", concurrency, latency_s, [create(i) for i in range(count)]
            ),
            await timed(
                f"GET/{backend}", concurrency, latency_s, [client.get(iri) for iri in iris]
            ),
        ]

    # The same GETs with bare httpx: the floor under the client's own overhead.
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/ld+json"}
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, transport=BACKENDS[backend](limits)
    ) as http:

        async def raw_get(iri: str) -> None:
            async with gate:
                (await http.get(iri)).raise_for_status()

        results.append(
            await timed(f"GETraw/{backend}", concurrency, latency_s, [raw_get(iri) for iri in iris])
        )
    return results


async def main(latency_ms: float, per_slot: int, backends: list[str]) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    port = free_port()
    proc = start_server(port, latency_ms)
    try:
        print(
            f"sandbox at http://127.0.0.1:{port}, latency {latency_ms:g} ms, client "
            "rate_limit 0; GETraw = the same GETs with bare httpx"
        )
        print("op             conc  reqs     secs     req/s    bound  ratio  cpu ms/req")
        for concurrency in (1, 8, 32):
            for backend in backends:
                results = await measure(
                    f"http://127.0.0.1:{port}",
                    concurrency,
                    per_slot * concurrency,
                    latency_ms / 1000,
                    backend,
                )
                for result in results:
                    print(result.row(), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument(
        "--per-slot", type=int, default=25, help="requests per unit of concurrency in each run"
    )
    parser.add_argument(
        "--backends",
        default="aiohttp",
        help=f"comma-separated transports to compare: {', '.join(BACKENDS)} (default aiohttp)",
    )
    args = parser.parse_args()
    chosen = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = sorted(set(chosen) - BACKENDS.keys())
    if unknown:
        parser.error(f"unknown backends {unknown}; choose from {sorted(BACKENDS)}")
    asyncio.run(main(args.latency_ms, args.per_slot, chosen))
