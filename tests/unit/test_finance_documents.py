"""Documents summary: parsing, folding, the Flowtly side's listing, CRM columns, the hook."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from connectors.files import FilesConnector, FilesSettings
from sync.engine.run import RunResult
from sync.errors import ValidationFailed
from sync.extras.after_run import AfterRun, FinanceOptions
from sync.extras.documents import (
    ClientDocument,
    ColumnWriter,
    DocumentColumns,
    parse_document,
    render_summary,
    summarize,
    summary_columns,
)
from sync.flowtly.client import FlowtlyClient
from sync.flowtly.resources import Defaults
from sync.flowtly.side import FlowtlySide
from sync.model import EntityKind
from sync.sandbox import Sandbox, SandboxSettings, create_app
from sync.store import Store

TOKEN = "docs-token"


@dataclass
class Env:
    side: FlowtlySide
    client: FlowtlyClient
    sandbox: Sandbox


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    app = create_app(SandboxSettings(token=TOKEN, seed=3))
    client = FlowtlyClient(
        "http://sandbox", TOKEN, rate_limit=0, transport=httpx.ASGITransport(app=app)
    )
    async with client:
        yield Env(FlowtlySide(client, Defaults(currency="EUR")), client, app.state.sandbox)


async def _client(env: Env, name: str) -> str:
    record = await env.side.create(EntityKind.CLIENT, {"name": name, "country": "PL"})
    return record.id


def test_parse_document_reads_codes_iris_dates_and_amounts() -> None:
    doc = parse_document(
        {
            "@id": "/client-documents/7",
            "type": "invoice",
            "number": "FV/1/2026",
            "issueDate": "2026-02-03T10:00:00+00:00",
            "currency": "pln",
            "totalGross": "1230.50",
            "status": "issued",
        }
    )
    assert doc == ClientDocument(
        "7", "invoice", "FV/1/2026", date(2026, 2, 3), "PLN", Decimal("1230.50"), "issued"
    )
    bad = parse_document({"id": 8, "issueDate": "soon", "totalGross": "a lot", "type": 3})
    assert (bad.id, bad.issue_date, bad.total_gross, bad.currency) == ("8", None, None, None)
    assert parse_document({"id": 9, "totalGross": 12}).total_gross == Decimal(12)
    assert parse_document({"id": 9, "totalGross": True}).total_gross is None


def test_summarize_counts_latest_date_and_totals_per_currency() -> None:
    docs = [
        ClientDocument("1", "invoice", None, date(2026, 1, 5), "EUR", Decimal("100.10"), "paid"),
        ClientDocument("2", "invoice", None, date(2026, 3, 1), "EUR", Decimal("0.90"), "issued"),
        ClientDocument("3", "correction", None, date(2025, 12, 1), "PLN", Decimal("-50"), "paid"),
        ClientDocument("4", None, None, None, None, Decimal("999"), None),
    ]
    summary = summarize("42", docs)
    assert summary.count == 4
    assert summary.latest_issue_date == date(2026, 3, 1)
    assert dict(summary.total_gross) == {"EUR": Decimal("101.00"), "PLN": Decimal("-50")}
    assert dict(summary.by_type) == {"correction": 1, "invoice": 2}
    assert dict(summary.by_status) == {"issued": 1, "paid": 2}
    cells = summary_columns(summary, DocumentColumns(totals="totals"))
    assert cells == {
        "documents_count": "4",
        "latest_document_date": "2026-03-01",
        "totals": "EUR 101.00; PLN -50.00",
    }
    text = render_summary(summary)
    assert "documents: 4" in text
    assert "latest issue date: 2026-03-01" in text
    empty = summarize("1", [])
    assert summary_columns(empty, DocumentColumns()) == {
        "documents_count": "0",
        "latest_document_date": "",
    }
    assert "total gross: -" in render_summary(empty)


async def test_side_lists_a_clients_documents_with_currency_iris(env: Env) -> None:
    first = await _client(env, "Alpha")
    other = await _client(env, "Beta")
    await env.side.refs.load()
    pln = env.side.refs.currency_iri("PLN")
    env.sandbox.add_document(
        int(first), {"type": "invoice", "issueDate": "2026-01-02", "currency": pln}
    )
    for n in range(35):  # more than one page
        env.sandbox.add_document(
            int(first),
            {"issueDate": f"2026-02-{n % 28 + 1:02d}", "currency": "EUR", "totalGross": "1.00"},
        )
    env.sandbox.add_document(int(other), {"issueDate": "2027-01-01", "totalGross": "5"})
    docs = await env.side.client_documents(first)
    assert len(docs) == 36
    assert docs[0].currency == "PLN"
    summary = summarize(first, docs)
    assert summary.latest_issue_date == date(2026, 2, 28)
    assert dict(summary.total_gross) == {"EUR": Decimal("35.00")}


def _crm(folder: Path) -> FilesConnector:
    folder.mkdir()
    (folder / "companies.csv").write_text(
        "id,kind,name,country,segment\nC1,client,Alpha,PL,smb\nC2,client,Beta,PL,ent\n"
        "S1,supplier,Gamma,PL,x\n",
        encoding="utf-8",
    )
    return FilesConnector(FilesSettings(path=folder))


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


async def test_files_connector_writes_extra_columns_and_keeps_the_rest(tmp_path: Path) -> None:
    crm = _crm(tmp_path / "crm")
    assert isinstance(crm, ColumnWriter)
    async with crm:
        changed = await crm.write_columns(EntityKind.CLIENT, "C2", {"documents_count": "3"})
        assert changed
        assert not await crm.write_columns(EntityKind.CLIENT, "C2", {"documents_count": "3"})
        with pytest.raises(ValueError, match="synced column"):
            await crm.write_columns(EntityKind.CLIENT, "C1", {"name": "x"})
        await crm.commit()
        rows = _rows(tmp_path / "crm" / "companies.csv")
        assert [r["documents_count"] for r in rows] == ["", "3", ""]
        assert [r["segment"] for r in rows] == ["smb", "ent", "x"]
        # The extra column is not a field: reading still gives the same records.
        records = [r async for b in crm.read(EntityKind.CLIENT) for r in b.records]
        assert {r.id: dict(r.fields) for r in records}["C2"] == {
            "name": "Beta",
            "country": "PL",
        }


async def test_files_connector_refuses_text_its_encoding_cannot_hold(tmp_path: Path) -> None:
    folder = tmp_path / "crm"
    folder.mkdir()
    (folder / "companies.csv").write_bytes(b"id,name\nC1,Alpha\n")
    crm = FilesConnector(FilesSettings(path=folder, encoding="latin-1"))
    async with crm:
        with pytest.raises(ValidationFailed):
            await crm.write_columns(EntityKind.CLIENT, "C1", {"note": "zażółć"})


async def test_after_run_hook_writes_each_linked_clients_summary(env: Env, tmp_path: Path) -> None:
    crm = _crm(tmp_path / "crm")
    alpha, beta = await _client(env, "Alpha"), await _client(env, "Beta")
    env.sandbox.add_document(int(alpha), {"issueDate": "2026-04-01", "totalGross": "10"})
    env.sandbox.add_document(int(alpha), {"issueDate": "2026-05-01", "totalGross": "20"})
    store = Store.open(f"sqlite:///{tmp_path}/state.db")
    try:
        with store.transaction() as tx:
            tx.save_link("s", EntityKind.CLIENT, "C1", alpha, {}, "a", "b")
            tx.save_link("s", EntityKind.CLIENT, "C2", beta, {}, "a", "b")
            tx.save_link("s", EntityKind.CLIENT, "C9", "999", {}, "a", "b")  # gone on Flowtly
        async with crm:
            hook = AfterRun(FinanceOptions(documents=DocumentColumns()), "s", store, env.side, crm)
            result = RunResult("s", dry_run=False)
            await hook(result)
    finally:
        store.close()
    rows = {r["id"]: r for r in _rows(tmp_path / "crm" / "companies.csv")}
    assert rows["C1"]["documents_count"] == "2"
    assert rows["C1"]["latest_document_date"] == "2026-05-01"
    assert rows["C2"]["documents_count"] == "0"
    assert rows["S1"]["documents_count"] == ""
    assert [w.record_id for w in result.warnings] == ["999"]
    assert "documents summary not refreshed" in result.warnings[0].reason


def test_after_run_hook_needs_a_column_writer_for_documents() -> None:
    with pytest.raises(ValueError, match="writes columns"):
        AfterRun(FinanceOptions(documents=DocumentColumns()), "s", None, None, None)  # type: ignore[arg-type]
