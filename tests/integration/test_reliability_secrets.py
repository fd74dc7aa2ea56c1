"""A recognisable token never shows up anywhere: log lines (stderr, at debug level),
reports (stdout and ``--report`` files), error messages, or any text cell of the store.

Runs a representative subset: a full sync, a no-op run, a conflict, ``status``,
``conflicts list``, ``check``, a wrong token (the secret is the wrong one), an unreachable
Flowtly and a refused plain-http URL, all with the secret configured.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from e2e_support import (
    FlowtlyApi,
    free_port,
    read_csv,
    run_cli,
    small_crm,
    start_sandbox,
    store_text,
    write_config,
    write_crm,
    write_csv,
)

pytestmark = pytest.mark.slow

SECRET = "tok-SECRET-9f3a7c21e8d4b6a0"
OTHER_SECRET = "tok-SECRET-other-5b1e9d"


def _leaks(text: str) -> bool:
    return any(s in text or s[4:] in text for s in (SECRET, OTHER_SECRET))


def test_the_token_appears_in_no_log_report_message_or_store_row(tmp_path: Path) -> None:
    sandbox = start_sandbox(tmp_path, db=tmp_path / "flowtly.db", token=SECRET)
    crm = write_crm(tmp_path / "crm", small_crm())
    store = tmp_path / "state.db"

    def configure(base_url: str, token: str = SECRET) -> Path:
        return write_config(
            tmp_path / "config.toml",
            base_url=base_url,
            crm=crm,
            store=store,
            token=token,
            log_level="debug",
        )

    outputs: list[subprocess.CompletedProcess[str]] = []
    reports: list[Path] = []
    try:
        config = configure(sandbox.url)
        for number in range(2):
            report = tmp_path / f"report-{number}.json"
            reports.append(report)
            outputs.append(
                run_cli("run", "--output", "json", "--report", str(report), config=config)
            )
        assert outputs[0].returncode == 0, outputs[0].stderr[-3000:]
        # A parked conflict, so conflict rows and their listing hold text too.
        header, rows = read_csv(crm / "companies.csv")
        rows[1]["city"] = "Gdynia"
        write_csv(crm / "companies.csv", header, rows)
        api = FlowtlyApi(sandbox.url, token=SECRET)
        try:
            [client] = [
                c for c in api.members("/clients") if c["vatNumber"] == rows[1]["vat_number"]
            ]
            api.patch(client["@id"], {"addressCity": "Sopot"})
        finally:
            api.close()
        outputs.append(run_cli("run", "--output", "markdown", config=config))
        assert outputs[-1].returncode == 3, outputs[-1].stderr[-3000:]
        outputs.append(run_cli("status", config=config))
        outputs.append(run_cli("conflicts", "list", config=config))
        outputs.append(run_cli("check", config=config))
        # Failures: the wrong token, no server, a refused URL.
        wrong = configure(sandbox.url, token=OTHER_SECRET)
        outputs.append(run_cli("run", config=wrong))
        assert outputs[-1].returncode == 1
        outputs.append(run_cli("run", config=configure(f"http://127.0.0.1:{free_port()}")))
        assert outputs[-1].returncode == 1
        outputs.append(run_cli("run", config=configure("http://flowtly.example")))
        assert outputs[-1].returncode == 1
    finally:
        sandbox.stop()

    debug_lines = [line for o in outputs for line in o.stderr.splitlines()]
    assert any('"flowtly.request"' in line for line in debug_lines), "no debug log captured"
    for result in outputs:
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        assert not _leaks(result.stdout), result.args
        assert not _leaks(result.stderr), result.args
    for report in reports:
        text = report.read_text(encoding="utf-8")
        json.loads(text)
        assert not _leaks(text)
    cells = store_text(store)
    assert any(table == "run" for table, _, _ in cells), "no run rows to scan"
    assert any(table == "conflict" for table, _, _ in cells), "no conflict rows to scan"
    leaked = [(table, column) for table, column, value in cells if _leaks(value)]
    assert leaked == []
    assert not _leaks(sandbox.log.read_text(encoding="utf-8"))
