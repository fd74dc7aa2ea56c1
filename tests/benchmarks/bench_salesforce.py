"""Benchmark of the Salesforce connector's API usage (run on demand, not by pytest).

    python tests/benchmarks/bench_salesforce.py [--accounts 10000] [--contacts 30000]
        [--daily-limit 100000] [--json FILE]

Salesforce bounds an integration by its org's daily API requests (a rolling 24 hours;
100,000 here), not by its speed, so the figures are calls per record and the share of
that allowance one sync uses. The fake org (tests/fakes/salesforce) is served by uvicorn
on 127.0.0.1 in this process and counts every API call it answers; Flowtly is the
in-process sandbox (``sandbox://FILE``) of the CLI process.

- ``initial``: ``flowtly-sync run`` with the org holding the Accounts and Contacts and
  Flowtly empty: everything is read from Salesforce and created in Flowtly;
- ``noop``: the same command again with nothing changed: it must write nothing and read
  only what changed (incremental SOQL plus the delete log per entity);
- ``to_salesforce`` (with ``--to-salesforce``): a new store and an empty org against the
  Flowtly account ``initial`` filled: the engine creates every record in Salesforce, in
  the chunks it sends (``[sync] concurrency`` x 8 records each, so 64 by default);
- ``writes``: the connector alone creating every Account and Contact in an empty org,
  then updating each once (sObject Collections, 200 a call, each followed by one read
  back): what a sync towards Salesforce costs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))

import structlog  # noqa: E402 - grouped with the imports above
from dataset import make_vat  # noqa: E402 - found through the path set above
from fakes.salesforce import Org, serve_in_thread, transport  # noqa: E402 - likewise
from pydantic import SecretStr  # noqa: E402 - grouped with the imports above

from connectors.salesforce import SalesforceConnector, SalesforceSettings  # noqa: E402
from sync.model import EntityKind  # noqa: E402

_COUNTRIES = {"PL": "Poland", "DE": "Germany", "FR": "France", "NL": "Netherlands"}


def seed(org: Org, accounts: int, contacts: int) -> None:
    """Accounts and Contacts last modified over the past 30 days, one after another, as in
    an org in use (an increment reads again what changed within ``overlap_seconds`` before
    its cursor, so records all modified in the same minute would all be read again)."""
    clock = org.clock
    step = timedelta(days=30) / max(1, accounts + contacts)
    stamps = (clock() - timedelta(days=31) + step * n for n in itertools.count())
    org.clock = lambda: next(stamps)
    rng = random.Random(1)
    ids = []
    for number in range(accounts):
        country = rng.choice(sorted(_COUNTRIES))
        ids.append(
            org.create(
                "Account",
                {
                    "Name": f"Company {number:06d}",
                    "BillingCity": "City",
                    "BillingCountry": _COUNTRIES[country],
                    "Flowtly_kind__c": "supplier" if number % 7 == 0 else "client",
                    "Flowtly_vat_number__c": make_vat(country, rng),
                },
            )
        )
    clients = [i for n, i in enumerate(ids) if n % 7]
    for number in range(contacts):
        org.create(
            "Contact",
            {
                "FirstName": "Anna",
                "LastName": f"Person {number:06d}",
                "Email": f"person{number}@example.com",
                "AccountId": clients[number % len(clients)],
            },
        )
    org.clock = clock


def _config(root: Path, url: str, org: Org, store: str = "state.db") -> Path:
    config = root / f"config-{store}.toml"
    config.write_text(
        "[flowtly]\n"
        f'base_url = "sandbox://{root / "flowtly.db"}"\n'
        'token = "bench"\n'
        "[store]\n"
        f'url = "sqlite:///{root / store}"\n'
        "[crm]\n"
        'type = "salesforce"\n'
        f'instance_url = "{url}"\n'
        f'client_id = "{org.client_id}"\n'
        f'client_secret = "{org.client_secret}"\n'
        "rate_limit = 0\n"
        "[logging]\n"
        'level = "warning"\n',
        encoding="utf-8",
    )
    return config


def _calls(org: Org, since: int) -> Counter[str]:
    tally: Counter[str] = Counter()
    for method, path, _ in org.requests[since:]:
        route = path.split("?")[0].split("/v62.0/")[-1]
        if route.startswith("query/"):
            route = "query (more)"
        tally[f"{method} {route}"] += 1
    return tally


def _figures(
    name: str, calls: Counter[str], records: int, limit: int, wall: float
) -> dict[str, Any]:
    total = sum(calls.values())
    writes = sum(n for key, n in calls.items() if not key.startswith("GET"))
    return {
        "scenario": name,
        "records": records,
        "api_calls": total,
        "writes": writes,
        "calls_per_record": round(total / records, 5),
        "share_of_daily_limit": round(total / limit, 6),
        "wall_s": round(wall, 2),
        "calls": dict(sorted(calls.items())),
    }


def _run(name: str, config: Path, org: Org, records: int, limit: int) -> dict[str, Any]:
    start, began = len(org.requests), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sync", "run", "--output", "json", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        cwd=config.parent,
    )
    wall = time.perf_counter() - began
    if done.returncode not in (0, 3):
        raise SystemExit(f"{name}: exit {done.returncode}\n{done.stderr[-2000:]}")
    figures = _figures(name, _calls(org, start), records, limit, wall)
    figures["exit_code"] = done.returncode
    figures["operations"] = len(json.loads(done.stdout)["operations"])
    return figures


def cli_scenarios(
    accounts: int, contacts: int, limit: int, *, to_salesforce: bool
) -> list[dict[str, Any]]:
    org = Org(api_limit=limit * 10)
    seed(org, accounts, contacts)
    records = accounts + contacts
    results = []
    with tempfile.TemporaryDirectory() as tmp, serve_in_thread(org) as url:
        config = _config(Path(tmp), url, org)
        for name in ("initial", "noop"):
            results.append(_run(name, config, org, records, limit))
        noop = results[-1]
        if noop["writes"] or noop["operations"]:
            raise SystemExit(f"the no-op run wrote: {noop}")
        if to_salesforce:
            empty = Org(api_limit=limit * 10)
            with serve_in_thread(empty) as other:
                config = _config(Path(tmp), other, empty, store="state-2.db")
                results.append(_run("to_salesforce", config, empty, records, limit))
    return results


async def writes_scenario(accounts: int, contacts: int, limit: int) -> dict[str, Any]:
    org = Org(api_limit=limit * 10)
    settings = SalesforceSettings(
        instance_url="http://salesforce.test",
        client_id=org.client_id,
        client_secret=SecretStr(org.client_secret),
        rate_limit=0,
    )
    began = time.perf_counter()
    async with SalesforceConnector(settings, transport=transport(org)) as side:
        start = len(org.requests)
        companies = await side.create_many(
            EntityKind.CLIENT, [{"name": f"Company {n:06d}"} for n in range(accounts)]
        )
        ids = [r.record.id for r in companies if r.record is not None]
        people = await side.create_many(
            EntityKind.CONTACT,
            [
                {
                    "name": f"Anna Person {n}",
                    "email": f"p{n}@example.com",
                    "company_id": ids[n % len(ids)],
                }
                for n in range(contacts)
            ],
        )
        await side.update_many(EntityKind.CLIENT, [(one, {"city": "Kraków"}) for one in ids])
        await side.update_many(
            EntityKind.CONTACT,
            [(r.record.id, {"title": "CFO"}) for r in people if r.record is not None],
        )
    wall = time.perf_counter() - began
    return _figures("writes", _calls(org, start), 2 * (accounts + contacts), limit, wall)


def main() -> None:
    # The connector's per-request debug lines would drown the table.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--contacts", type=int, default=30_000)
    parser.add_argument("--daily-limit", type=int, default=100_000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--to-salesforce", action="store_true")
    args = parser.parse_args()
    results = cli_scenarios(
        args.accounts, args.contacts, args.daily_limit, to_salesforce=args.to_salesforce
    )
    results.append(asyncio.run(writes_scenario(args.accounts, args.contacts, args.daily_limit)))
    print(
        "| scenario | records | API calls | writes | calls/record | share of daily limit | wall s |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['scenario']} | {r['records']:,} | {r['api_calls']:,} | {r['writes']:,} | "
            f"{r['calls_per_record']} | {r['share_of_daily_limit']:.4%} | {r['wall_s']} |"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
