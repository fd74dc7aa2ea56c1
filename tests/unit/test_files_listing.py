"""The files connector's listings: a row without an id or with a repeated one makes the
listing incomplete (no deletes inferred from it), in the connector and end to end through
the CLI against the embedded sandbox."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from connectors.files import FilesConnector, FilesSettings
from sync.cli.main import main
from sync.model import EntityKind
from sync.sandbox import Sandbox, SandboxSettings
from sync.sandbox._resources import Resource

CLIENT, SUPPLIER, CONTACT = EntityKind.CLIENT, EntityKind.COUNTERPARTY, EntityKind.CONTACT


async def _incomplete(path: Path, entity: EntityKind) -> tuple[str | None, int]:
    side = FilesConnector(FilesSettings(path=path))
    batches = [batch async for batch in side.read(entity)]
    assert all(batch.incomplete is None for batch in batches[:-1])
    return batches[-1].incomplete, len(batches)


async def test_a_whole_file_is_a_complete_listing(tmp_path: Path) -> None:
    (tmp_path / "companies.csv").write_text("id,name\n1,Acme\n2,Beta\n")
    assert await _incomplete(tmp_path, CLIENT) == (None, 1)


async def test_rows_without_an_id_make_the_listing_incomplete(tmp_path: Path) -> None:
    (tmp_path / "companies.csv").write_text("id,name\n1,Acme\n,Beta\n2,Gamma\n  ,Delta\n")
    assert await _incomplete(tmp_path, CLIENT) == (
        "companies.csv had 2 rows without an id (first at line 3)",
        1,
    )


async def test_a_repeated_id_makes_the_listing_incomplete(tmp_path: Path) -> None:
    (tmp_path / "companies.csv").write_text("id,name\n1,Acme\n2,Beta\n1,Acme again\n")
    assert await _incomplete(tmp_path, CLIENT) == (
        "companies.csv repeated 1 id listed before (first '1' at line 4)",
        1,
    )


async def test_an_id_taken_by_a_row_of_another_kind_counts_for_both(tmp_path: Path) -> None:
    (tmp_path / "companies.csv").write_text(
        "id,kind,name\n5,client,Acme\n5,supplier,Parts\n6,supplier,Bolts\n"
    )
    for entity in (CLIENT, SUPPLIER):
        reason, _ = await _incomplete(tmp_path, entity)
        assert reason == "companies.csv repeated 1 id listed before (first '5' at line 3)"


async def test_the_verdict_rides_on_the_last_batch_of_a_large_file(tmp_path: Path) -> None:
    rows = "".join(f"{n},Company {n}\n" for n in range(1, 12_002))
    (tmp_path / "companies.csv").write_text("id,name\n" + rows + ",no id\n")
    reason, count = await _incomplete(tmp_path, CLIENT)
    assert count == 3
    assert reason == "companies.csv had 1 row without an id (first at line 12003)"


# -- end to end: the CLI, the files CRM and the embedded sandbox -----------------------


def _edit_contacts(path: Path) -> tuple[str, str, str]:
    """Blank one id, repeat another, edit a row and add a new contact; returns the e-mails
    of the contacts blanked, repeating and edited."""
    with path.open(encoding="utf-8", newline="") as handle:
        header, *body = list(csv.reader(handle))
    email, title = header.index("email"), header.index("title")
    blanked, edited, repeating = body[0], body[1], body[2]
    blanked[0] = ""
    repeating[0] = edited[0]  # a copy-paste slip: this row now repeats an earlier row's id
    edited[title] = "Chief listing officer"
    body.append(["P900", edited[1], "New Person", "new.person@example.com", "", "", "main"])
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *body])
    return blanked[email], repeating[email], edited[email]


def _flowtly_titles(config: Path) -> dict[str, object]:
    sandbox = Sandbox(SandboxSettings(db=config.parent / ".flowtly-sync" / "sandbox.db"))
    try:
        return {c["email"]: c.get("title") for c in sandbox.records(Resource.CONTACTS)}
    finally:
        sandbox.close()


def test_a_contacts_file_with_broken_ids_deletes_nothing_on_flowtly(
    example_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = example_config
    assert main(["run", "--config", str(config)]) == 0
    capsys.readouterr()
    before = _flowtly_titles(config)
    blanked, repeating, edited = _edit_contacts(config.parent / "crm" / "contacts.csv")

    main(["run", "--config", str(config), "--output", "json"])
    report = json.loads(capsys.readouterr().out)

    assert not [op for op in report["operations"] if op["action"] in ("delete", "archive")]
    (warning,) = [w for w in report["warnings"] if w["entity"] == "contact"]
    assert (warning["side"], warning["id"]) == ("crm", "*")
    assert warning["reason"] == (
        "incomplete listing, no deletes inferred from it this run: contacts.csv had 1 row "
        "without an id (first at line 2); contacts.csv repeated 1 id listed before "
        "(first 'P002' at line 4); until a complete listing, 2 linked record(s) missing from "
        "it are left as they are"
    )
    rejected = sorted(e["reason"] for e in report["errors"] if e["entity"] == "contact")
    assert rejected == [
        "file contacts.csv line 2: the id is empty",
        "file contacts.csv line 4: duplicate id 'P002'; the first row with it is kept",
    ]
    after = _flowtly_titles(config)
    assert {blanked, repeating} <= after.keys()
    assert len(after) == len(before) + 1
    assert after[edited] == "Chief listing officer"
    assert after["new.person@example.com"] is None
