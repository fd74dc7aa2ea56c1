"""The README's path to the real account, through the real CLI: a copy of the example
configuration pointed at another Flowtly account keeps the sandbox's store, and every run
against it refuses until a person rebinds the store (or gives it a new one).

"Another account" is a second sandbox database: an empty account with its own
organization, exactly what the real Flowtly is to a store made against the sandbox.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from e2e_support import FlowtlyApi, run_cli, store_rows

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ORGANIZATION = re.compile(r"flowtly:sandbox\.invalid/organizations/[0-9a-f-]{36}")


def test_a_store_made_against_the_sandbox_refuses_another_account(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "crm", tmp_path / "examples" / "crm")
    example = tmp_path / "config.example.toml"
    shutil.copy(ROOT / "config.example.toml", example)
    first = run_cli("run", config=example)
    assert first.returncode == 0, first.stderr
    store = tmp_path / ".flowtly-sync" / "state.db"
    bound = {side: identity for _sync, side, identity, _at in store_rows(store, "binding")}
    crm_folder = (tmp_path / "examples" / "crm").resolve()
    assert bound["crm"] == f"files:{crm_folder}"
    assert ORGANIZATION.fullmatch(bound["flowtly"])

    # As the README says: copy the example, point base_url at the other account.
    text = example.read_text(encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(
        text.replace("sandbox://.flowtly-sync/sandbox.db", "sandbox://.flowtly-sync/real.db"),
        encoding="utf-8",
    )
    companies = tmp_path / "examples" / "crm" / "companies.csv"
    before = companies.read_bytes()
    links = store_rows(store, "link")

    for command in (("diff",), ("run",)):
        refused = run_cli(*command, config=config)
        assert refused.returncode == 1, (command, refused.stdout, refused.stderr)
        message = refused.stderr.strip().splitlines()[-1]
        assert message.startswith("flowtly-sync: sync 'default' refused:"), message
        named = ORGANIZATION.findall(message)
        assert named[0] == bound["flowtly"]
        assert len(named) == 2
        assert named[1] != named[0]
        assert f"crm 'files:{crm_folder}' unchanged" in message
        assert "[store] url" in message
        assert "flowtly-sync store rebind --sync default" in message
        assert refused.stdout == ""
    assert companies.read_bytes() == before
    assert store_rows(store, "link") == links
    real = FlowtlyApi.offline(tmp_path / ".flowtly-sync" / "real.db")
    try:
        assert real.get("/clients")["totalItems"] == 0
        assert real.get("/counterparties")["totalItems"] == 0
    finally:
        real.close()

    check = run_cli("check", config=config)
    assert check.returncode == 1
    assert "binding: MISMATCH - sync 'default' refused" in check.stdout

    rebind = run_cli("store", "rebind", config=config)
    assert rebind.returncode == 0, rebind.stderr
    current = ORGANIZATION.findall(rebind.stdout)
    assert current[0] == bound["flowtly"]
    assert f"  flowtly: {current[0]} -> {current[1]}\n" in rebind.stdout
    assert f"  crm: files:{crm_folder} (unchanged)\n" in rebind.stdout

    # Knowingly rebound, the run proceeds (its guards still apply to what it plans).
    after = run_cli("diff", config=config)
    assert after.returncode == 3, after.stderr
    assert "refused" not in after.stderr
    assert "mass-delete guard" in after.stdout
