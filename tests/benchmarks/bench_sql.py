"""Benchmark of the sql connector on PostgreSQL (run on demand, not by pytest).

    python tests/benchmarks/bench_sql.py [--companies 10000] [--json FILE] [--batch-size 1000]
        [--read-only]

Generates the benchmark CRM (tests/benchmarks/dataset.py: 10,000 companies give about
30,000 contacts and 10,000 notes), loads it into a fresh schema of the PostgreSQL test
server (``FLOWTLY_SYNC_TEST_PG_URL``, default postgres@127.0.0.1:5432/test; text columns
plus ``modified_at timestamptz``), then measures, each in its own process:

- ``read``: the connector alone, a complete listing of every entity: seconds per 1,000
  rows, the RSS once open and the peak RSS of the whole read (streamed, so the peak
  should stay near the open RSS whatever the table size);
- ``initial``: ``flowtly-sync run`` (the real CLI) against the Flowtly sandbox in-process
  (``base_url = "sandbox://FILE"``): everything is created in Flowtly;
- ``noop``: the same again with nothing changed (incremental reads from the stored
  cursors: nothing is read but the rows inside the overlap).

For the runs: wall time and the peak RSS of the sync process. There is no vendor bound to
compare with (the database is the user's own, Flowtly is in-process without latency).
The schema is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get(
    "FLOWTLY_SYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TABLES = {"company": "companies", "contact": "contacts", "note": "notes"}

# Runs a command and reports its peak RSS: the runner's only child is the measured one.
RUNNER = (
    "import resource, subprocess, sys, time, json\n"
    "start = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "wall = time.perf_counter() - start\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
    "print(json.dumps({'exit': code, 'wall_s': wall, 'peak_rss_mib': peak}))\n"
)


def _load(name: str, file: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(file))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWTLY_SYNC_")}
    env.update({"NO_COLOR": "1", "TERM": "dumb", "PYTHONPATH": str(ROOT)})
    return env


def load(engine: sa.Engine, schema: str, folder: Path) -> dict[str, int]:
    """The dataset's CSV files as tables of text columns (and ``modified_at``)."""
    counts: dict[str, int] = {}
    meta = sa.MetaData(schema=schema)
    for table in TABLES.values():
        with (folder / f"{table}.csv").open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            rows = [dict(zip(header, row, strict=True)) for row in reader]
        columns = [sa.Column(name, sa.Text, primary_key=name == "id") for name in header]
        stamp = sa.Column("modified_at", sa.DateTime(timezone=True), server_default=sa.func.now())
        target = sa.Table(table, meta, *columns, stamp)
        target.create(engine)
        with engine.begin() as conn:
            for start in range(0, len(rows), 5000):
                conn.execute(target.insert(), rows[start : start + 5000])
        counts[table] = len(rows)
    return counts


def crm_settings(schema: str, batch_size: int) -> dict[str, Any]:
    return {
        "url": PG_URL,
        "schema": schema,
        "batch_size": batch_size,
        "tables": {
            group: {"table": table, "updated_at": "modified_at"} for group, table in TABLES.items()
        },
    }


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def _read_child(schema: str, batch_size: int) -> dict[str, Any]:
    from connectors.sql import SqlConnector, SqlSettings

    connector = SqlConnector(SqlSettings.model_validate(crm_settings(schema, batch_size)))
    figures: dict[str, Any] = {}
    async with connector:
        figures["rss_open_mib"] = _rss_mib()
        for entity in sorted(connector.entities()):
            rows = 0
            start = time.perf_counter()
            async for batch in connector.read(entity):
                rows += len(batch.records) + len(batch.rejected) + len(batch.left_ids)
            figures[str(entity)] = {"rows": rows, "seconds": time.perf_counter() - start}
    figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def _measure(command: Sequence[str], cwd: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, *command],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=cwd,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def write_config(work: Path, schema: str, batch_size: int) -> Path:
    crm = crm_settings(schema, batch_size)
    lines = [
        "[flowtly]",
        f"base_url = {json.dumps('sandbox://' + str(work / 'flowtly.db'))}",
        'token = "bench"',
        "[store]",
        f"url = {json.dumps('sqlite:///' + str(work / 'state.db'))}",
        "[crm]",
        'type = "sql"',
        f"url = {json.dumps(crm['url'])}",
        f"schema = {json.dumps(schema)}",
        f"batch_size = {batch_size}",
    ]
    for group, table in TABLES.items():
        lines += [f"[crm.tables.{group}]", f'table = "{table}"', 'updated_at = "modified_at"']
    lines += ["[sync]", 'name = "bench"', "[logging]", 'format = "json"', 'level = "warning"']
    path = work / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--read-only", action="store_true", help="measure the read alone")
    parser.add_argument("--read-child", metavar="SCHEMA", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.read_child:
        print(json.dumps(asyncio.run(_read_child(args.read_child, args.batch_size))))
        return 0
    dataset = _load("benchmark_dataset", "dataset.py")
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    figures: dict[str, Any] = {"companies": args.companies, "batch_size": args.batch_size}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-sql-") as tmp:
            work = Path(tmp)
            dataset.generate(work / "crm", args.companies)
            figures["rows"] = load(engine, schema, work / "crm")
            me = [sys.executable, str(Path(__file__).resolve())]
            read = subprocess.run(
                [*me, "--read-child", schema, "--batch-size", str(args.batch_size)],
                capture_output=True,
                text=True,
                env=_env(),
                check=True,
            )
            figures["read"] = json.loads(read.stdout)
            config = write_config(work, schema, args.batch_size)
            cli = [sys.executable, "-m", "sync", "run", "--config", str(config)]
            for run in () if args.read_only else ("initial", "noop"):
                figures[run] = _measure(cli, work)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()
    print(report(figures))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


def report(figures: dict[str, Any]) -> str:
    read = figures["read"]
    lines = [
        f"sql connector, PostgreSQL, {figures['companies']} companies "
        f"(rows: {figures['rows']}), batch size {figures['batch_size']}",
        "",
        "| read | rows | seconds | ms per 1,000 rows |",
        "|---|---:|---:|---:|",
    ]
    for entity, one in read.items():
        if isinstance(one, dict):
            per = 1000 * one["seconds"] / max(one["rows"], 1) * 1000
            lines.append(f"| {entity} | {one['rows']} | {one['seconds']:.2f} | {per:.1f} |")
    lines += [
        "",
        f"connector RSS once open {read['rss_open_mib']:.0f} MiB, "
        f"peak over the whole read {read['peak_rss_mib']:.0f} MiB",
        "",
        "| run | exit | wall s | peak RSS MiB |",
        "|---|---:|---:|---:|",
    ]
    for run in ("initial", "noop"):
        one = figures.get(run)
        if one is None:
            continue
        lines.append(f"| {run} | {one['exit']} | {one['wall_s']:.1f} | {one['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
