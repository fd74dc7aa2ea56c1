"""Benchmark of whole sync runs: the real CLI against the sandbox over HTTP (run on demand).

    python tests/benchmarks/bench_sync.py [--companies 10000] [--latency-ms 20]
        [--concurrency 8] [--json FILE] [--profile-dir DIR]
        [--scenarios initial,noop,crm_edit,flowtly_edit,deletes,conflicts,rate_limit]
    python tests/benchmarks/bench_sync.py --plot [1000,10000,100000]

Generates a CRM folder (tests/benchmarks/dataset.py), starts the Flowtly sandbox over HTTP
with 20 ms latency per request and a fresh SQLite file, writes a config (files connector,
SQLite store, ``rate_limit = 0``) and runs ``python -m sync run --output json --report``
once per scenario, each in its own process:

- ``initial``: first sync, everything is created in Flowtly;
- ``noop``: nothing changed; must write nothing (reads are the listing pages);
- ``crm_edit``: 1% of the CSV rows edited in fields both sides carry;
- ``flowtly_edit``: 1% of the clients PATCHed over HTTP before the run;
- ``deletes``: 1% of the CRM companies deleted (their contacts and notes with them) and
  1% of Flowtly's contacts and counterparties DELETEd over HTTP, none of a deleted
  company: the run archives those clients (PATCH status), DELETEs the rest in Flowtly
  and removes the CRM rows of what Flowtly lost;
- ``conflicts``: 1% of the linked clients get a different city on each side; the
  default manual policy parks one conflict each, writes nothing and exits 3;
- ``rate_limit``: a small first sync (300 companies) against a sandbox limited to 10
  requests/s, with ``rate_limit = 10`` in the config: achieved requests/s and 429s.

Scenarios after ``initial`` build on its state; asking for one of them alone runs
``initial`` first as an unreported setup step.

Measured per scenario: wall time and CPU seconds of the sync process and its peak RSS (a
tiny runner process starts the CLI and reports ``getrusage(RUSAGE_CHILDREN)``: its only
child is the sync process); requests counted on the sandbox side by an ASGI wrapper
around the sandbox app that tallies every answered request by method, route and status
(the bench snapshots the tallies before and after each run); the sandbox's own CPU time;
the bound the API imposes, ``max(requests x latency / concurrency, requests / rate_limit)``,
and wall/bound; ``list-seq``, the time the listing pages take when fetched one after
another (collection GETs x latency); writes per record created; requests per record.
Prints a Markdown table and writes every figure to a JSON file. With ``--profile-dir``
each run is made under cProfile and the top entries of our code are printed.

``--plot N1,N2,...`` runs ``initial`` and ``noop`` for each N on a fresh sandbox and draws
wall time (with the API bound dashed) and peak RSS against N (tests/benchmarks/_plot.py,
needs matplotlib: ``pip install -e '.[bench]'``) into ``bench_sync-scaling.png``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import platform
import random
import selectors
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "bench-token-0123"
READY = "Flowtly sandbox serving at "
STATS_PATH = "/__bench__/stats"
LATENCY_PATH = "/__bench__/latency"
SCENARIOS = ("initial", "noop", "crm_edit", "flowtly_edit", "deletes", "conflicts", "rate_limit")
CHAINED = SCENARIOS[:-1]
"""The scenarios that build on the state ``initial`` leaves, in the order they run."""
PLOT_SIZES = "1000,10000,100000"
FLOWTLY_PAGE = 30  # Flowtly clamps itemsPerPage to 30 (sync/flowtly/assumptions.py)
WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")

# The sandbox app (the same one `python -m sync sandbox` serves) behind an ASGI wrapper
# that counts answered requests; the bench reads the counts at STATS_PATH (not counted).
SANDBOX = (
    textwrap.dedent(
        """
    import asyncio, collections, json, re, resource, socket, sys
    from urllib.parse import parse_qs
    import uvicorn
    from sync.sandbox import SandboxSettings, create_app

    db, token, latency, rate = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    ID = re.compile(r"^(\\d+|[0-9a-fA-F-]{32,36})$")
    counts = collections.Counter()
    latency = [latency]  # applied here, not by the app, so that the bench can change it

    def route(path):
        return "/" + "/".join("{id}" if ID.match(p) else p for p in path.strip("/").split("/"))

    class Counting:
        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                return await self.app(scope, receive, send)
            if scope["path"] == "__LATENCY__":
                # The bench runs an unreported setup sync faster than the measured runs.
                latency[0] = float(parse_qs(scope["query_string"].decode())["ms"][0])
                await send({"type": "http.response.start", "status": 204, "headers": []})
                return await send({"type": "http.response.body", "body": b""})
            if scope["path"] == "__STATS__":
                usage = resource.getrusage(resource.RUSAGE_SELF)
                body = json.dumps({"requests": dict(counts), "maxrss_kb": usage.ru_maxrss,
                                   "cpu_s": usage.ru_utime + usage.ru_stime}).encode()
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json")]})
                return await send({"type": "http.response.body", "body": body})
            status = 0
            # The latency is the whole time to an answer, the sandbox's own work done
            # within it (as SandboxSettings.latency_ms does): an answer is held until the
            # latency has passed since the request arrived. Sleeping first and handling
            # after added the handling, queued one request at a time, to every answer.
            due = asyncio.get_running_loop().time() + latency[0] / 1000.0
            async def tap(message):
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    wait = due - asyncio.get_running_loop().time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                await send(message)
            try:
                await self.app(scope, receive, tap)
            finally:
                counts[f"{scope['method']} {route(scope['path'])} {status}"] += 1

    async def main():
        sock = socket.create_server(("127.0.0.1", 0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as sync.sandbox.serve
        settings = SandboxSettings(token=token, rate_limit=rate, db=db)
        config = uvicorn.Config(Counting(create_app(settings)), log_level="warning",
                                access_log=False, lifespan="on", http="httptools")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        print("__READY__http://127.0.0.1:" + str(sock.getsockname()[1]), flush=True)
        try:
            await task
        except asyncio.CancelledError:
            pass

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the SIGINT the bench stops it with
    """
    )
    .replace("__STATS__", STATS_PATH)
    .replace("__LATENCY__", LATENCY_PATH)
    .replace("__READY__", READY)
)

# Starts the CLI and reports its resource usage: the runner's only child is the sync.
RUNNER = textwrap.dedent(
    """
    import json, resource, signal, subprocess, sys, time
    out, cmd = sys.argv[1], sys.argv[2:]
    # On a timeout the bench sends SIGTERM to the group: the sync dies, the runner reports.
    signal.signal(signal.SIGTERM, lambda *_: None)
    with open(out + ".stdout", "wb") as stdout, open(out + ".stderr", "wb") as stderr:
        start = time.perf_counter()
        code = subprocess.call(cmd, stdout=stdout, stderr=stderr)
        wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "w") as handle:
        json.dump({"exit_code": code, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                   "maxrss_kb": usage.ru_maxrss}, handle)
    """
)


def _load(name: str, file: str) -> ModuleType:
    # tests/benchmarks is not a package; registered before exec so dataclasses resolve.
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(file))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


dataset = _load("benchmark_dataset", "dataset.py")
plot = _load("benchmark_plot", "_plot.py")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWTLY_SYNC_")}
    env.update({"NO_COLOR": "1", "TERM": "dumb", "PYTHONPATH": str(ROOT)})
    return env


# -- the sandbox ----------------------------------------------------------------------------


class Sandbox:
    """The counting sandbox in a child process."""

    def __init__(self, db: Path, latency_ms: float, rate_limit: float, log: Path) -> None:
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SANDBOX, str(db), TOKEN, str(latency_ms), str(rate_limit)],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=_env(),
            cwd=ROOT,
        )
        self.url = self._wait_ready(60.0)

    def _wait_ready(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if selector.select(deadline - time.monotonic()):
                line = self.proc.stdout.readline().decode()
                if line.startswith(READY):
                    return line[len(READY) :].strip()
                if not line:
                    break
        self.stop()
        raise SystemExit(f"the sandbox did not start (see {self._log.name})")

    def snapshot(self) -> dict[str, Any]:
        """The request tallies, CPU seconds and peak RSS of the sandbox so far."""
        stats: dict[str, Any] = httpx.get(self.url + STATS_PATH, timeout=30).json()
        return stats

    def set_latency(self, latency_ms: float) -> None:
        """Change the latency added to every later request."""
        httpx.post(self.url + LATENCY_PATH, params={"ms": latency_ms}, timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


def write_config(
    path: Path,
    url: str,
    crm: Path,
    store: Path,
    concurrency: int,
    rate: float,
    level: str,
    incremental_overlap: str | None = None,
) -> Path:
    """The bench's config.toml; ``incremental_overlap`` turns ``[flowtly] incremental`` on."""
    incremental = (
        ""
        if incremental_overlap is None
        else f"incremental = true\nincremental_overlap = {json.dumps(incremental_overlap)}\n"
    )
    path.write_text(
        "[flowtly]\n"
        f"base_url = {json.dumps(url)}\n"
        f"token = {json.dumps(TOKEN)}\n"
        f"concurrency = {concurrency}\n"
        f"rate_limit = {rate}\n"
        f"{incremental}"
        "[store]\n"
        f"url = {json.dumps('sqlite:///' + str(store))}\n"
        "[crm]\n"
        'type = "files"\n'
        f"path = {json.dumps(str(crm))}\n"
        "[sync]\n"
        'name = "bench"\n'
        "[logging]\n"
        'format = "json"\n'
        f"level = {json.dumps(level)}\n",
        encoding="utf-8",
    )
    return path


# -- one measured run -----------------------------------------------------------------------


@dataclass
class Result:
    """The figures of one scenario."""

    scenario: str
    companies: int
    records: int
    latency_ms: float
    concurrency: int
    rate_limit: float
    exit_code: int
    wall_s: float
    cpu_s: float | None
    """None when the run was killed before it could report."""
    sandbox_cpu_s: float
    peak_rss_mib: float | None
    requests: dict[str, int]
    """Answered requests by ``METHOD /route STATUS`` (ids shown as ``{id}``)."""
    operations: dict[str, int]
    """Operations of the report by ``entity action target`` (failed ones as ``... error``)."""
    errors: int
    conflicts: int = 0
    """Conflicts the report parks (its ``conflicts`` list)."""
    conflict_fields: dict[str, int] = field(default_factory=dict)
    expected: dict[str, int] = field(default_factory=dict)
    """What the run must show: ``ACTION TARGET`` operation counts, ``writes`` (to Flowtly,
    429s aside), ``conflicts`` and ``exit code`` (0 when absent)."""
    timed_out: bool = False
    failed_checks: list[str] = field(default_factory=list)
    profile_top: list[str] = field(default_factory=list)

    def count(self, method: str | None = None, status: int | None = None) -> int:
        total = 0
        for key, n in self.requests.items():
            verb, _route, code = key.split(" ")
            if (method is None or verb == method) and (status is None or int(code) == status):
                total += n
        return total

    @property
    def total(self) -> int:
        return self.count()

    @property
    def writes(self) -> int:
        return sum(self.count(method) for method in WRITE_METHODS)

    @property
    def throttled(self) -> int:
        return self.count(status=429)

    @property
    def list_pages(self) -> int:
        return sum(
            n
            for key, n in self.requests.items()
            if key.startswith("GET ") and "{id}" not in key and "/me " not in key
        )

    def ops(self, action: str, target: str) -> int:
        return sum(n for key, n in self.operations.items() if key.endswith(f" {action} {target}"))

    @property
    def bound_s(self) -> float:
        latency = self.latency_ms / 1000 * self.total / self.concurrency
        rate = (self.total - self.throttled) / self.rate_limit if self.rate_limit else 0.0
        return max(latency, rate)

    def figures(self) -> dict[str, Any]:
        created = self.ops("create", "flowtly")
        return {
            "requests_total": self.total,
            "requests_by_method": {m: self.count(m) for m in ("GET", *WRITE_METHODS)},
            "requests_429": self.throttled,
            "writes": self.writes,
            "list_pages": self.list_pages,
            "bound_s": round(self.bound_s, 3),
            "wall_over_bound": round(self.wall_s / self.bound_s, 2) if self.bound_s else None,
            "list_sequential_s": round(self.list_pages * self.latency_ms / 1000, 3),
            "created_in_flowtly": created,
            "conflicts": self.conflicts,
            "writes_per_created": round(self.writes / created, 3) if created else None,
            "requests_per_record": round(self.total / self.records, 3) if self.records else None,
            "requests_per_s": round(self.total / self.wall_s, 1) if self.wall_s else None,
        }


def _delta(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    keys = sorted(set(after) | set(before))
    return {
        k: after.get(k, 0) - before.get(k, 0) for k in keys if after.get(k, 0) != before.get(k, 0)
    }


def _operations(report: Mapping[str, Any]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for op in report.get("operations", []):
        outcome = " error" if op.get("outcome") == "error" else ""
        counts[f"{op['entity']} {op['action']} {op['target']}{outcome}"] += 1
    return dict(sorted(counts.items()))


def _profile_top(path: Path, limit: int = 15) -> list[str]:
    import pstats

    stats = pstats.Stats(str(path))
    ours = (str(ROOT / "sync"), str(ROOT / "connectors"))
    # pstats keeps its table in an undocumented attribute: (file, line, function) ->
    # (primitive calls, calls, tottime, cumtime, callers).
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    raw = stats.stats  # type: ignore[attr-defined]
    rows = [(key, value) for key, value in raw.items() if key[0].startswith(ours)]
    lines = []
    for label, index in (("cumulative", 3), ("tottime", 2)):
        lines.append(f"top by {label} (our code):")
        for (file, line, func), value in sorted(rows, key=lambda r: -r[1][index])[:limit]:
            where = f"{Path(file).relative_to(ROOT)}:{line}({func})"
            lines.append(f"  {value[3]:8.2f} cum {value[2]:8.2f} tot {value[1]:>9} calls  {where}")
    return lines


@dataclass
class Setup:
    """Where one scenario family runs: its sandbox, folder, config and figures."""

    sandbox: Sandbox
    work: Path
    crm: Path
    config: Path
    companies: int
    records: int
    latency_ms: float
    concurrency: int
    rate_limit: float
    profile_dir: Path | None
    timeout: float


def measure(setup: Setup, scenario: str, expected: dict[str, int] | None = None) -> Result:
    """Run the CLI once and collect its figures."""
    out = setup.work / f"{scenario}.usage.json"
    report = setup.work / f"{scenario}.report.json"
    cli = ["-m", "sync", "run", "--config", str(setup.config), "--output", "json"]
    cli += ["--report", str(report)]
    prof = None
    if setup.profile_dir is not None:
        setup.profile_dir.mkdir(parents=True, exist_ok=True)
        prof = setup.profile_dir / f"{scenario}-{setup.companies}.prof"
        cli = ["-m", "cProfile", "-o", str(prof), *cli]
    before = setup.sandbox.snapshot()
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(out), sys.executable, *cli],
        env=_env(),
        cwd=setup.work,
        start_new_session=True,
    )
    timed_out = False
    try:
        runner.wait(timeout=setup.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(runner.pid, signal.SIGTERM)
        try:
            runner.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    after = setup.sandbox.snapshot()
    usage = json.loads(out.read_text()) if out.exists() else {}
    data: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}
    result = Result(
        scenario=scenario,
        companies=setup.companies,
        records=setup.records,
        latency_ms=setup.latency_ms,
        concurrency=setup.concurrency,
        rate_limit=setup.rate_limit,
        exit_code=usage.get("exit_code", -9),
        wall_s=round(usage.get("wall_s", setup.timeout), 3),
        cpu_s=round(usage["cpu_s"], 3) if "cpu_s" in usage else None,
        sandbox_cpu_s=round(after["cpu_s"] - before["cpu_s"], 3),
        peak_rss_mib=round(usage["maxrss_kb"] / 1024, 1) if "maxrss_kb" in usage else None,
        requests=_delta(after["requests"], before["requests"]),
        operations=_operations(data),
        errors=len(data.get("errors", [])),
        conflicts=len(data.get("conflicts", [])),
        conflict_fields=dict(
            Counter(c["field"] for op in data.get("conflicts", []) for c in op.get("changes", []))
        ),
        expected=expected or {},
        timed_out=timed_out,
        profile_top=_profile_top(prof) if prof is not None and prof.exists() else [],
    )
    result.failed_checks = check(result)
    return result


def check(result: Result) -> list[str]:
    """What the scenario must show, as failures (empty when all is as expected)."""
    failed = []
    want_exit = result.expected.get("exit code", 0)
    if result.timed_out:
        failed.append(f"stopped after {result.wall_s:.0f} s (--timeout)")
    elif result.exit_code != want_exit:
        failed.append(f"exit code {result.exit_code}, expected {want_exit}")
    if result.errors:
        failed.append(f"{result.errors} rejected records")
    server_errors = result.count(status=0) + result.count(status=500) + result.count(status=503)
    # A run stopped by --timeout drops requests in flight: the sandbox answers those 500.
    if server_errors and not result.timed_out:
        failed.append(f"{server_errors} server errors")
    for key, want in result.expected.items():
        action, _, target = key.partition(" ")
        if target in ("flowtly", "crm") and (got := result.ops(action, target)) != want:
            failed.append(f"{key}: {got}, expected {want}")
    want_conflicts = result.expected.get("conflicts")
    if want_conflicts is not None and result.conflicts != want_conflicts:
        failed.append(f"{result.conflicts} conflicts, expected {want_conflicts}")
    want_writes = result.expected.get("writes")
    if want_writes is not None and result.writes - result.throttled != want_writes:
        failed.append(f"{result.writes} writes, expected {want_writes}")
    return failed


# -- scenarios ------------------------------------------------------------------------------


def _flowtly(url: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/ld+json"}
    return httpx.Client(base_url=url, headers=headers, timeout=60)


def _listing(http: httpx.Client, collection: str) -> list[dict[str, Any]]:
    """Every item of a Flowtly collection (following the ``next`` links)."""
    items: list[dict[str, Any]] = []
    page: str | None = f"{collection}?itemsPerPage={FLOWTLY_PAGE}"
    while page is not None:
        doc = http.get(page).raise_for_status().json()
        items.extend(doc["member"])
        page = doc.get("view", {}).get("next")
    return items


def _patch(http: httpx.Client, path: str, body: Mapping[str, Any]) -> None:
    http.patch(
        path, content=json.dumps(body), headers={"Content-Type": "application/merge-patch+json"}
    ).raise_for_status()


def _share(count: int, percent: float) -> int:
    # At least one of a non-empty collection, so small runs still exercise every path.
    return min(count, max(1, round(count * percent / 100))) if count else 0


def _vat(value: object) -> str:
    return "".join(c for c in str(value or "").upper() if c.isalnum())


def _csv(folder: Path, source: str) -> dict[str, dict[str, str]]:
    with (folder / f"{source}.csv").open(encoding="utf-8", newline="") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


def patch_flowtly_clients(url: str, percent: float, seed: int) -> int:
    """Change the phone of ``percent``% of Flowtly's clients over plain HTTP."""
    with _flowtly(url) as http:
        ids = [member["id"] for member in _listing(http, "/clients")]
        rng = random.Random(f"{seed}:flowtly-edit")
        chosen = sorted(rng.sample(ids, min(len(ids), round(len(ids) * percent / 100))))
        for client_id in chosen:
            body = {"addressPhoneNumber": f"+00 7{rng.randrange(10**8):08d}"}
            _patch(http, f"/clients/{client_id}", body)
    return len(chosen)


def prepare_deletes(url: str, crm: Path, percent: float, seed: int) -> dict[str, int]:
    """Delete ``percent``% of the CRM companies (their contacts and notes with them) and
    ``percent``% of Flowtly's contacts and counterparties over HTTP (Flowtly offers no
    client delete), none of them of a company deleted in the CRM, so that every record is
    gone on one side only. Returns what the run must do."""
    companies, contacts = _csv(crm, "companies"), _csv(crm, "contacts")
    removed = dataset.delete_rows(crm, percent, seed, sources=["companies"])
    kept_companies, kept_contacts = _csv(crm, "companies"), _csv(crm, "contacts")
    gone = [row for key, row in companies.items() if key not in kept_companies]
    gone_emails = {row["email"] for key, row in contacts.items() if key not in kept_contacts}
    gone_vats = {_vat(row["vat_number"]) for row in gone}
    rng = random.Random(f"{seed}:flowtly-delete")
    deleted = 0
    with _flowtly(url) as http:
        candidates = {
            "/client-contacts": [
                item
                for item in _listing(http, "/client-contacts")
                if item.get("email") not in gone_emails
            ],
            "/counterparties": [
                item
                for item in _listing(http, "/counterparties")
                if _vat(item.get("vatNumber")) not in gone_vats
            ],
        }
        for collection, items in candidates.items():
            for item in rng.sample(items, _share(len(items), percent)):
                http.delete(f"{collection}/{item['id']}").raise_for_status()
                deleted += 1
    archived = sum(1 for row in gone if row["kind"] == "client")
    deleted_in_flowtly = len(gone) - archived + removed.get("contacts", 0) + removed["notes"]
    return {
        "archive flowtly": archived,
        "delete flowtly": deleted_in_flowtly,
        "delete crm": deleted,
        "create flowtly": 0,
        "create crm": 0,
        "writes": archived + deleted_in_flowtly,
    }


def prepare_conflicts(url: str, crm: Path, percent: float, seed: int) -> dict[str, int]:
    """Give ``percent``% of the linked clients a different city on each side. Returns what
    the run must do: park one conflict each (manual policy), write nothing, exit 3."""
    clients = [row for row in _csv(crm, "companies").values() if row["kind"] == "client"]
    with _flowtly(url) as http:
        by_vat = {_vat(item.get("vatNumber")): item["id"] for item in _listing(http, "/clients")}
        linked = [row for row in clients if _vat(row["vat_number"]) in by_vat]
        if clients and not linked:
            raise SystemExit("conflicts: no CRM client matches a Flowtly client by VAT number")
        rng = random.Random(f"{seed}:conflicts")
        chosen = sorted(rng.sample(linked, _share(len(linked), percent)), key=lambda r: r["id"])
        dataset.set_values(
            crm, "companies", {row["id"]: {"city": f"{row['city']} (CRM)"} for row in chosen}
        )
        for row in chosen:
            body = {"addressCity": f"{row['city']} (Flowtly)"}
            _patch(http, f"/clients/{by_vat[_vat(row['vat_number'])]}", body)
    n = len(chosen)
    return {"conflicts": n, "update flowtly": 0, "update crm": 0, "writes": 0, "exit code": 3}


def _records(crm: Path) -> int:
    return sum(len(_csv(crm, source)) for source in ("companies", "contacts", "notes"))


def _setup(args: argparse.Namespace, work: Path, companies: int, rate: float) -> Setup:
    crm = work / "crm"
    if args.reuse is None:
        work.mkdir(parents=True)
        records = dataset.generate(crm, companies, args.seed).records
    else:
        companies, records = len(_csv(crm, "companies")), _records(crm)
    sandbox = Sandbox(work / "sandbox.db", args.latency_ms, rate, work / "sandbox.log")
    overlap = args.flowtly_overlap if args.flowtly_incremental else None
    config = write_config(
        work / "config.toml", sandbox.url, crm, work / "state.db", args.concurrency, rate,
        args.log_level, overlap,
    )  # fmt: skip
    return Setup(
        sandbox, work, crm, config, companies, records, args.latency_ms,
        args.concurrency, rate, args.profile_dir, args.timeout,
    )  # fmt: skip


def _expectation(args: argparse.Namespace, setup: Setup, scenario: str) -> dict[str, int]:
    """Prepare ``scenario`` (edits) and say what its run must do."""
    if scenario == "initial":
        return {"create flowtly": setup.records, "writes": setup.records}
    if scenario == "noop":
        return {"writes": 0}
    if scenario == "crm_edit":
        edited = sum(dataset.edit_rows(setup.crm, args.edit_percent, args.seed).values())
        return {"update flowtly": edited, "writes": edited}
    if scenario == "flowtly_edit":
        patched = patch_flowtly_clients(setup.sandbox.url, args.edit_percent, args.seed)
        return {"update crm": patched, "writes": 0}
    prepare = prepare_deletes if scenario == "deletes" else prepare_conflicts
    return prepare(setup.sandbox.url, setup.crm, args.edit_percent, args.seed)


def _run_chain(
    args: argparse.Namespace, work: Path, companies: int, steps: Sequence[str]
) -> list[Result]:
    """Run ``initial`` then ``steps`` on one sandbox; the results of ``steps``."""
    results: list[Result] = []
    setup = _setup(args, work, companies, 0.0)
    chain = [*(["initial"] if args.reuse is None else []), *(s for s in steps if s != "initial")]
    if args.flowtly_incremental and "noop" in chain:
        # The first run with incremental reads lists Flowtly whole to get its cursor; the
        # no-op measured is the one after, which reads from it.
        chain.insert(chain.index("noop"), "noop")
    reported = {scenario: position for position, scenario in enumerate(chain)}
    try:
        for position, scenario in enumerate(chain):
            setup_only = scenario not in steps or reported[scenario] != position
            if setup_only and args.setup_latency_ms is not None:
                setup.sandbox.set_latency(args.setup_latency_ms)
            result = _announce(measure(setup, scenario, _expectation(args, setup, scenario)))
            if setup_only and args.setup_latency_ms is not None:
                setup.sandbox.set_latency(args.latency_ms)
            if not setup_only:
                results.append(result)
            if result.timed_out:
                print("# later scenarios skipped: the state is incomplete", file=sys.stderr)
                break
    finally:
        setup.sandbox.stop()
    return results


def run_scenarios(args: argparse.Namespace, tmp: Path) -> list[Result]:
    wanted = [s for s in SCENARIOS if s in args.scenarios]
    results: list[Result] = []
    # Every scenario but rate_limit builds on the state the initial sync leaves.
    steps = [s for s in CHAINED if s in wanted]
    if steps:
        work = tmp / "main" if args.reuse is None else args.reuse
        results += _run_chain(args, work, args.companies, steps)
    if "rate_limit" in wanted:
        setup = _setup(args, tmp / "rate", args.rate_limit_companies, args.rate_limit)
        try:
            expect = {"create flowtly": setup.records, "writes": setup.records}
            results.append(_announce(measure(setup, "rate_limit", expect)))
        finally:
            setup.sandbox.stop()
    return results


def run_plot(args: argparse.Namespace, tmp: Path) -> list[Result]:
    """``initial`` and ``noop`` for each size of ``--plot``, each on a fresh sandbox."""
    import shutil

    results: list[Result] = []
    for companies in args.plot:
        print(f"# {companies} companies", file=sys.stderr, flush=True)
        work = tmp / f"n{companies}"
        results += _run_chain(args, work, companies, ("initial", "noop"))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)  # large sizes take a lot of disk
    return results


def write_plot(args: argparse.Namespace, results: Sequence[Result], out: Path) -> Path:
    """Draw the scaling figure of ``--plot`` into ``out``."""
    points = [
        plot.Point(r.scenario, r.companies, r.wall_s, r.peak_rss_mib, r.bound_s) for r in results
    ]
    title = (
        f"flowtly-sync run against the sandbox: {args.latency_ms:g} ms latency, "
        f"concurrency {args.concurrency} (dashed: the API bound)"
    )
    path: Path = plot.plot_scaling(points, out, title)
    return path


def _announce(result: Result) -> Result:
    status = "ok" if not result.failed_checks else "; ".join(result.failed_checks)
    print(
        f"# {result.scenario}: {result.wall_s:.1f} s, {result.total} requests ({status})",
        file=sys.stderr,
        flush=True,
    )
    for line in result.profile_top:
        print(line, file=sys.stderr)
    return result


# -- output ---------------------------------------------------------------------------------

_COLUMNS = (
    *("scenario", "companies", "records", "wall s", "bound s", "wall/bound", "list-seq s"),
    *("sync CPU s", "sandbox CPU s", "peak RSS MiB", "requests", "GET", "POST", "PATCH"),
    *("DELETE", "429", "conflicts", "writes/created", "req/record", "req/s", "checks"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def markdown(results: Sequence[Result]) -> str:
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for r in results:
        f = r.figures()
        by = f["requests_by_method"]
        cells = [
            r.scenario, r.companies, r.records, r.wall_s, f["bound_s"], f["wall_over_bound"],
            f["list_sequential_s"], r.cpu_s, r.sandbox_cpu_s, r.peak_rss_mib, r.total,
            by["GET"], by["POST"], by["PATCH"], by["DELETE"], r.throttled, r.conflicts,
            f["writes_per_created"], f["requests_per_record"], f["requests_per_s"],
            "ok" if not r.failed_checks else "; ".join(r.failed_checks),
        ]  # fmt: skip
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def to_json(args: argparse.Namespace, results: Sequence[Result]) -> dict[str, Any]:
    return {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
            "companies": args.companies,
            "latency_ms": args.latency_ms,
            "concurrency": args.concurrency,
            "seed": args.seed,
            "edit_percent": args.edit_percent,
            "rate_limit": args.rate_limit,
            "rate_limit_companies": args.rate_limit_companies,
            "plot": args.plot,
            "flowtly_incremental_overlap": (
                args.flowtly_overlap if args.flowtly_incremental else None
            ),
        },
        "scenarios": [{**r.__dict__, **r.figures()} for r in results],
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Benchmark whole sync runs against the sandbox.")
    parser.add_argument("--companies", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--edit-percent", type=float, default=1.0)
    parser.add_argument("--rate-limit", type=float, default=10.0)
    parser.add_argument("--rate-limit-companies", type=int, default=300)
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per sync run")
    parser.add_argument("--json", type=Path, help="result file (default ./bench_sync-N.json)")
    parser.add_argument("--profile-dir", type=Path, help="run each sync under cProfile")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument(
        "--flowtly-incremental",
        action="store_true",
        help="[flowtly] incremental = true: contacts and notes read from a cursor (a noop "
        "is preceded by an unreported one that lists whole and leaves the cursor)",
    )
    parser.add_argument(
        "--flowtly-overlap",
        default="1s",
        help="[flowtly] incremental_overlap with --flowtly-incremental (default 1s: the "
        "bench's runs follow each other within seconds, real ones an interval apart)",
    )
    parser.add_argument(
        "--setup-latency-ms",
        type=float,
        help="latency during an unreported setup run (e.g. the initial sync before noop)",
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        metavar="DIR",
        help="run the scenarios on the state of DIR/main, a folder kept by --keep, "
        "instead of a new dataset and initial sync",
    )
    parser.add_argument(
        "--plot",
        nargs="?",
        const=PLOT_SIZES,
        metavar="N1,N2,...",
        help=f"run initial and noop for each N (default {PLOT_SIZES}) and draw "
        "bench_sync-scaling.png (needs matplotlib: pip install -e '.[bench]')",
    )
    return parser


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise SystemExit(f"--plot takes company counts separated by commas, not {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise SystemExit(f"--plot takes positive company counts, not {text!r}")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    if args.reuse is not None:
        args.reuse = args.reuse / "main"
        if not (args.reuse / "state.db").exists() or args.plot is not None:
            raise SystemExit(f"--reuse needs a folder kept by --keep (no {args.reuse}/state.db)")
    if args.plot is not None:
        args.plot = _sizes(args.plot)
        plot.require_matplotlib()  # fail now, not after hours of runs
    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    try:
        results = run_plot(args, tmp) if args.plot else run_scenarios(args, tmp)
    finally:
        if args.keep:
            print(f"# working folder kept: {tmp}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    default = "bench_sync-scaling.json" if args.plot else f"bench_sync-{args.companies}.json"
    target: Path = args.json or Path(default)
    target.write_text(json.dumps(to_json(args, results), indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(markdown(results))
    print(f"# figures written to {target}", file=sys.stderr)
    if args.plot:
        png = write_plot(args, results, target.with_suffix(".png"))
        print(f"# figure drawn in {png}", file=sys.stderr)
    return 0 if all(not r.failed_checks for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
