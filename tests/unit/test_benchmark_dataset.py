"""The benchmark dataset generator (tests/benchmarks/dataset.py): deterministic, valid, and
readable by the files connector without a single rejected row."""

from __future__ import annotations

import csv
import importlib.util
import random
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
from stdnum.eu import vat

from connectors.base import ChangeBatch
from connectors.files import FilesConnector, FilesSettings
from sync.model import EntityKind
from sync.normalize import natural_key

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "dataset.py"
# The sandbox's e-mail rule (Symfony's html5 mode): what Flowtly would accept.
_EMAIL = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+\\/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+$"
)
_NON_LATIN = re.compile(r"[\u0590-\u06ff\u3040-\u9fff\uac00-\ud7af\U00020000-\U0002ffff]")


def _load() -> ModuleType:
    # tests/benchmarks is not a package; registered before exec so dataclasses resolve.
    spec = importlib.util.spec_from_file_location("benchmark_dataset", _PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


dataset = _load()


def _rows(folder: Path, name: str) -> list[dict[str, str]]:
    with (folder / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / f"{name}.csv").read_bytes() for name in dataset.SOURCES}


async def _read(folder: Path, entity: EntityKind) -> ChangeBatch:
    side = FilesConnector(FilesSettings(path=folder))
    batches = [batch async for batch in side.read(entity)]
    return ChangeBatch(
        entity,
        records=[r for b in batches for r in b.records],
        rejected=[e for b in batches for e in b.rejected],
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crm")
    dataset.generate(path, 200, seed=7)
    return path


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path, folder: Path) -> None:
    summary = dataset.generate(tmp_path / "again", 200, seed=7)
    assert _files(tmp_path / "again") == _files(folder)
    dataset.generate(tmp_path / "other", 200, seed=8)
    assert _files(tmp_path / "other")["companies"] != _files(folder)["companies"]
    assert summary.records == summary.companies + summary.contacts + summary.notes
    assert summary.companies == len(_rows(folder, "companies")) == 200
    assert summary.contacts == len(_rows(folder, "contacts"))
    assert summary.notes == len(_rows(folder, "notes"))


def test_companies_mix_kinds_countries_and_scripts(folder: Path) -> None:
    companies = _rows(folder, "companies")
    kinds = Counter(row["kind"] for row in companies)
    assert set(kinds) == {"client", "supplier"}
    assert 0.05 < kinds["supplier"] / len(companies) < 0.30
    assert len({row["country"] for row in companies}) >= 12
    unicode_heavy = [row["name"] for row in companies if not row["name"].isascii()]
    assert any(_NON_LATIN.search(name) for name in unicode_heavy)
    assert all(row["street_line"] and row["post_code"] and row["city"] for row in companies)


def test_vat_numbers_are_valid_unique_and_of_the_company_country(folder: Path) -> None:
    companies = _rows(folder, "companies")
    vats = [row["vat_number"] for row in companies]
    assert all(vat.is_valid(number) for number in vats)
    assert len(set(vats)) == len(vats)
    assert all(row["vat_number"].startswith(row["country"]) for row in companies)


@pytest.mark.parametrize("country", sorted(dataset._NATIONAL))
def test_make_vat_is_valid_for_every_country(country: str) -> None:
    rng = random.Random(country)
    numbers = [dataset.make_vat(country, rng) for _ in range(200)]
    invalid = [number for number in numbers if not vat.is_valid(number)]
    assert not invalid
    assert len(set(numbers)) > 190


def test_ids_unique_and_children_reference_clients(folder: Path) -> None:
    companies = _rows(folder, "companies")
    contacts = _rows(folder, "contacts")
    notes = _rows(folder, "notes")
    for rows in (companies, contacts, notes):
        ids = [row["id"] for row in rows]
        assert len(set(ids)) == len(ids)
    clients = {row["id"] for row in companies if row["kind"] == "client"}
    assert {row["company_id"] for row in contacts} <= clients
    assert {row["company_id"] for row in notes} <= clients
    assert 2.5 < len(contacts) / len(clients) < 3.5
    assert 0.7 < len(notes) / len(clients) < 1.3
    emails = [row["email"] for row in contacts]
    assert len(set(emails)) == len(emails)
    assert all(_EMAIL.match(email) for email in emails)


@pytest.mark.parametrize(
    ("entity", "count"),
    [
        (EntityKind.CLIENT, "clients"),
        (EntityKind.COUNTERPARTY, "suppliers"),
        (EntityKind.CONTACT, "contacts"),
        (EntityKind.NOTE, "notes"),
    ],
)
async def test_files_connector_reads_everything_without_rejections(
    tmp_path: Path, entity: EntityKind, count: str
) -> None:
    summary = dataset.generate(tmp_path, 50, seed=3)
    batch = await _read(tmp_path, entity)
    assert not batch.rejected
    assert len(batch.records) == getattr(summary, count) > 0
    assert all(record.get("name") or entity is EntityKind.NOTE for record in batch.records)


@pytest.mark.parametrize("entity", list(EntityKind))
async def test_natural_keys_are_unique_so_nothing_is_ambiguous(
    folder: Path, entity: EntityKind
) -> None:
    records = (await _read(folder, entity)).records
    keys = [(r.get("company_id"), natural_key(r)) for r in records]
    assert None not in {key for _, key in keys}
    assert len(set(keys)) == len(keys)


async def test_edit_rows_changes_exactly_the_share_asked_and_stays_readable(
    tmp_path: Path,
) -> None:
    dataset.generate(tmp_path, 200, seed=5)
    before = {name: _rows(tmp_path, name) for name in dataset.SOURCES}
    edited = dataset.edit_rows(tmp_path, 5, seed=1)
    after = {name: _rows(tmp_path, name) for name in dataset.SOURCES}
    for name in dataset.SOURCES:
        changed = sum(1 for old, new in zip(before[name], after[name], strict=True) if old != new)
        assert changed == edited[name] == round(len(before[name]) * 0.05)
    for entity in EntityKind:
        assert not (await _read(tmp_path, entity)).rejected


def test_edit_rows_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        dataset.generate(tmp_path / name, 100, seed=2)
        dataset.edit_rows(tmp_path / name, 10, seed=9, sources=["contacts"])
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    with pytest.raises(ValueError, match="unknown source"):
        dataset.edit_rows(tmp_path / "a", 1, seed=1, sources=["clients"])


def test_delete_rows_cascades_from_companies(tmp_path: Path) -> None:
    dataset.generate(tmp_path, 200, seed=4)
    contacts_before = len(_rows(tmp_path, "contacts"))
    removed = dataset.delete_rows(tmp_path, 10, seed=1, sources=["companies"])
    companies = _rows(tmp_path, "companies")
    assert removed["companies"] == 20
    assert len(companies) == 180
    remaining = {row["id"] for row in companies}
    contacts = _rows(tmp_path, "contacts")
    assert {row["company_id"] for row in contacts} <= remaining
    assert removed["contacts"] == contacts_before - len(contacts) > 0
    assert {row["company_id"] for row in _rows(tmp_path, "notes")} <= remaining


def test_delete_rows_of_leaves_only(tmp_path: Path) -> None:
    dataset.generate(tmp_path, 100, seed=4)
    companies = _files(tmp_path)["companies"]
    notes_before = len(_rows(tmp_path, "notes"))
    removed = dataset.delete_rows(tmp_path, 50, seed=3)
    assert _files(tmp_path)["companies"] == companies
    assert (
        removed["notes"]
        == round(notes_before * 0.5)
        == notes_before - len(_rows(tmp_path, "notes"))
    )


def test_cli_writes_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dataset.main([str(tmp_path / "out"), "--companies", "20", "--seed", "1"]) == 0
    assert "20 companies" in capsys.readouterr().out
    assert len(_rows(tmp_path / "out", "companies")) == 20


def test_set_values_changes_only_the_named_cells(tmp_path: Path) -> None:
    dataset.generate(tmp_path, 20, seed=6)
    before = _rows(tmp_path, "companies")
    first, third = before[0]["id"], before[2]["id"]
    new = {first: {"city": "Atlantis"}, third: {"city": before[2]["city"], "phone": "+00 1"}}
    assert dataset.set_values(tmp_path, "companies", new) == 2
    after = _rows(tmp_path, "companies")
    assert after[0] == {**before[0], "city": "Atlantis"}
    assert after[2] == {**before[2], "phone": "+00 1"}
    assert after[1] == before[1]
    assert after[3:] == before[3:]
    assert dataset.set_values(tmp_path, "companies", {first: {"city": "Atlantis"}}) == 0
    with pytest.raises(ValueError, match="unknown column"):
        dataset.set_values(tmp_path, "companies", {first: {"town": "x"}})
    with pytest.raises(ValueError, match="no row"):
        dataset.set_values(tmp_path, "companies", {"C999999": {"city": "x"}})


def test_plot_without_matplotlib_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The scaling figure's module (tests/benchmarks/_plot.py) imports matplotlib lazily.
    spec = importlib.util.spec_from_file_location("benchmark_plot", _PATH.with_name("_plot.py"))
    assert spec is not None
    assert spec.loader is not None
    plot = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, plot)
    spec.loader.exec_module(plot)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(SystemExit, match=re.escape("pip install -e '.[bench]'")):
        plot.plot_scaling([plot.Point("noop", 10, 1.0, 80.0, 0.1)], Path("unused.png"), "t")
