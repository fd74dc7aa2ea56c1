"""The files connector's handling of real-world CSV files."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest

from connectors import _csv
from connectors.base import ChangeBatch
from connectors.files import FilesConnector, FilesSettings
from sync.errors import ConnectorError, InputError, NotFound, ValidationFailed
from sync.model import EntityKind

CLIENT = EntityKind.CLIENT
SUPPLIER = EntityKind.COUNTERPARTY


def folder(tmp_path: Path, companies: bytes | str, **files: bytes | str) -> Path:
    for name, content in {"companies": companies, **files}.items():
        path = tmp_path / f"{name}.csv"
        if isinstance(content, str):
            path.write_bytes(content.encode("utf-8"))
        else:
            path.write_bytes(content)
    return tmp_path


def connector(path: Path, **settings: str) -> FilesConnector:
    return FilesConnector(FilesSettings.model_validate({"path": path, **settings}))


async def read_all(side: FilesConnector, entity: EntityKind) -> ChangeBatch:
    batches = [batch async for batch in side.read(entity)]
    return ChangeBatch(
        entity,
        records=[r for b in batches for r in b.records],
        rejected=[e for b in batches for e in b.rejected],
        present_ids=[i for b in batches for i in b.present_ids],
    )


async def test_reads_clients_and_suppliers_by_kind(tmp_path: Path) -> None:
    side = connector(
        folder(
            tmp_path,
            (
                "id,kind,name,country,due_days\n"
                "1,,Acme,Poland,14\n"
                "2,Supplier,Parts Ltd,GB,\n"
                "3,client,Beta, pl ,30\n"
            ),
        )
    )
    clients = await read_all(side, CLIENT)
    assert [(r.id, dict(r.fields)) for r in clients.records] == [
        ("1", {"name": "Acme", "country": "PL", "due_days": 14}),
        ("3", {"name": "Beta", "country": "PL", "due_days": 30}),
    ]
    suppliers = await read_all(side, SUPPLIER)
    assert [r.id for r in suppliers.records] == ["2"]
    assert suppliers.records[0].get("due_days") is None
    assert side.fields(CLIENT) == {"name", "country", "due_days"}
    assert side.entities() == {CLIENT, SUPPLIER, EntityKind.CONTACT, EntityKind.NOTE}
    assert side.describe() == f"files:{tmp_path}"


async def test_bad_kind_and_bad_values_are_rejected_but_present(tmp_path: Path) -> None:
    side = connector(
        folder(
            tmp_path,
            (
                "id,kind,name,country\n"
                "1,client,Acme,PL\n"
                "2,partner,Who,PL\n"
                "3,client,Bad,Atlantis\n"
                "4,supplier,Worse,Narnia\n"
            ),
        )
    )
    clients = await read_all(side, CLIENT)
    assert [r.id for r in clients.records] == ["1"]
    assert {"2", "3"} <= set(clients.present_ids)
    reasons = {error.record_id: error for error in clients.rejected}
    assert set(reasons) == {"2", "3"}
    assert reasons["2"].field == "kind"
    assert "file companies.csv line 3" in reasons["2"].reason
    assert reasons["3"].field == "country"
    assert reasons["3"].value == "Atlantis"
    assert reasons["3"].side == "crm"
    assert "file companies.csv line 4" in reasons["3"].reason
    suppliers = await read_all(side, SUPPLIER)
    assert suppliers.records == []
    assert [e.record_id for e in suppliers.rejected] == ["4"]
    assert {"2", "4"} <= set(suppliers.present_ids)


async def test_bom_is_read_and_written_back(tmp_path: Path) -> None:
    path = folder(tmp_path, b"\xef\xbb\xbfid,name\r\n1,Acme\r\n")
    side = connector(path)
    [record] = (await read_all(side, CLIENT)).records
    assert record.id == "1"
    await side.update(CLIENT, "1", {"name": "Acme 2"})
    await side.commit()
    assert (tmp_path / "companies.csv").read_bytes() == b"\xef\xbb\xbfid,name\r\n1,Acme 2\r\n"


async def test_semicolon_delimiter_and_latin1(tmp_path: Path) -> None:
    path = folder(tmp_path, "id;name;city\n1;Müller GmbH;Köln\n".encode("latin-1"))
    side = connector(path, delimiter=";", encoding="latin-1")
    [record] = (await read_all(side, CLIENT)).records
    assert dict(record.fields) == {"name": "Müller GmbH", "city": "Köln"}
    created = await side.create(CLIENT, {"name": "Señor; Co", "city": "Köln-Süd"})
    with pytest.raises(ValidationFailed) as refused:
        await side.create(CLIENT, {"name": "Łódź Sp."})
    assert refused.value.violations[0].property_path == "name"
    await side.commit()
    expected = 'id;name;city\n1;Müller GmbH;Köln\n2;"Señor; Co";Köln-Süd\n'
    assert (tmp_path / "companies.csv").read_bytes() == expected.encode("latin-1")
    assert created.id == "2"


async def test_embedded_newlines_quotes_and_formulas_round_trip(tmp_path: Path) -> None:
    content = (
        "id,name,website\n"
        '1,"Acme ""Best""\nSecond line","=HYPERLINK(""http://x"")"\n'
        "2,+cmd|' /C calc'!A0,\n"
        "3,Bad,\n"
    )
    path = folder(tmp_path, content, notes='id,body\nn1,"a\n\nb"\nn1,dup\n')
    side = connector(path)
    records = {r.id: r for r in (await read_all(side, CLIENT)).records}
    assert records["1"].get("name") == 'Acme "Best"\nSecond line'
    assert records["1"].get("website") == '=HYPERLINK("http://x")'
    assert records["2"].get("name") == "+cmd|' /C calc'!A0"
    notes = await read_all(side, EntityKind.NOTE)
    assert [r.get("body") for r in notes.records] == ["a\n\nb"]
    # The duplicate starts on line 5: the quoted body spans lines 2-4.
    [duplicate] = notes.rejected
    assert "file notes.csv line 5" in duplicate.reason
    await side.update(CLIENT, "3", {"name": "Good"})
    await side.commit()
    assert (tmp_path / "companies.csv").read_text() == content.replace("3,Bad,", "3,Good,")


async def test_duplicate_ids_keep_the_first_row(tmp_path: Path) -> None:
    side = connector(folder(tmp_path, "id,name\n7,First\n8,Other\n7,Second\n"))
    batch = await read_all(side, CLIENT)
    assert [(r.id, r.get("name")) for r in batch.records] == [("7", "First"), ("8", "Other")]
    [error] = batch.rejected
    assert error.record_id == "7"
    assert "file companies.csv line 4" in error.reason
    assert "duplicate" in error.reason
    updated = await side.update(CLIENT, "7", {"name": "First!"})
    assert updated.get("name") == "First!"


async def test_empty_id_is_rejected_with_its_line(tmp_path: Path) -> None:
    batch = await read_all(connector(folder(tmp_path, "id,name\n,Nobody\n1,A\n")), CLIENT)
    assert [r.id for r in batch.records] == ["1"]
    [error] = batch.rejected
    assert error.record_id == "file companies.csv line 2"


@pytest.mark.parametrize(
    ("companies", "contacts", "file", "column"),
    [
        ("name,country\nA,PL\n", None, "companies.csv", "id"),
        ("id,country\n1,PL\n", None, "companies.csv", "name"),
        ("id,name,Name\n1,A,B\n", None, "companies.csv", "Name"),
        ("id,name\n1,A\n", "id,name,phone\nc1,X,1\n", "contacts.csv", "email"),
    ],
)
async def test_header_errors_name_file_and_column(
    tmp_path: Path, companies: str, contacts: str | None, file: str, column: str
) -> None:
    extra = {"contacts": contacts} if contacts else {}
    side = connector(folder(tmp_path, companies, **extra))
    entity = CLIENT if file == "companies.csv" else EntityKind.CONTACT
    with pytest.raises(InputError) as caught:
        await read_all(side, entity)
    assert caught.value.source.endswith(file)
    assert caught.value.column == column
    assert file in str(caught.value)


async def test_missing_companies_file_is_an_input_error(tmp_path: Path) -> None:
    side = connector(tmp_path)
    with pytest.raises(InputError, match=r"companies\.csv"):
        await side.open()
    with pytest.raises(InputError, match="not a folder"):
        await connector(tmp_path / "nowhere").open()


async def test_undecodable_bytes_name_line_and_offset(tmp_path: Path) -> None:
    side = connector(folder(tmp_path, b"id,name\n1,Acme\n2,Caf\xe9\n"))
    with pytest.raises(InputError) as caught:
        await read_all(side, CLIENT)
    assert caught.value.line == 3
    assert "byte offset 20" in caught.value.reason
    assert "companies.csv, line 3" in str(caught.value)


async def test_malformed_quoting_is_an_input_error_with_line(tmp_path: Path) -> None:
    side = connector(folder(tmp_path, 'id,name\n1,A\n2,"B"x\n'))
    with pytest.raises(InputError) as caught:
        await read_all(side, CLIENT)
    assert caught.value.line == 3


async def test_missing_optional_files_are_empty_and_created_on_write(tmp_path: Path) -> None:
    side = connector(folder(tmp_path, "id,name\r\n1,Acme\r\n"))
    assert (await read_all(side, EntityKind.CONTACT)).records == []
    assert side.fields(EntityKind.CONTACT) == {
        "company_id",
        "name",
        "email",
        "phone",
        "title",
        "type",
    }
    contact = await side.create(
        EntityKind.CONTACT, {"company_id": "1", "email": "A@B.PL", "position": 2}
    )
    assert contact.get("email") == "a@b.pl"
    assert "position" not in contact.fields
    assert not (tmp_path / "contacts.csv").exists()
    await side.commit()
    text = (tmp_path / "contacts.csv").read_bytes()
    assert text.startswith(b"id,company_id,name,email,phone,title,type\r\n")
    assert text.endswith(b",1,,a@b.pl,,,\r\n")


async def test_unknown_columns_and_row_order_are_kept(tmp_path: Path) -> None:
    content = (
        "owner,id,name,kind,city,score\n"
        "ann,30,Zeta,client,Kraków,5\n"
        "bob,10,Alpha,supplier,Gdańsk,1\n"
        "cid,20,Mid,,Poznań,3\n"
    )
    side = connector(folder(tmp_path, content))
    assert side.fields(CLIENT) == {"name", "city"}
    await side.update(SUPPLIER, "10", {"city": "Sopot", "country": "PL"})
    await side.delete(CLIENT, "20")
    created = await side.create(SUPPLIER, {"name": "New", "city": "Łódź", "due_days": 3})
    assert created.id == "31"
    assert dict(created.fields) == {"name": "New", "city": "Łódź"}
    await side.commit()
    assert (tmp_path / "companies.csv").read_text() == (
        "owner,id,name,kind,city,score\n"
        "ann,30,Zeta,client,Kraków,5\n"
        "bob,10,Alpha,supplier,Sopot,1\n"
        ",31,New,supplier,Łódź,\n"
    )
    fresh = connector(tmp_path)
    assert [r.id for r in (await read_all(fresh, SUPPLIER)).records] == ["10", "31"]


async def test_non_numeric_ids_get_fresh_unique_ids(tmp_path: Path) -> None:
    side = connector(folder(tmp_path, "id,name\nacme,Acme\n"))
    first = await side.create(CLIENT, {"name": "A"})
    second = await side.create(CLIENT, {"name": "B"})
    assert first.id.startswith("fs-")
    assert first.id != second.id


async def test_update_and_delete_check_the_entity(tmp_path: Path) -> None:
    side = connector(folder(tmp_path, "id,kind,name,country\n1,supplier,A,\n"))
    with pytest.raises(NotFound):
        await side.update(CLIENT, "1", {"name": "B"})
    with pytest.raises(NotFound):
        await side.delete(CLIENT, "1")
    with pytest.raises(ValidationFailed):
        await side.update(SUPPLIER, "1", {"country": "Atlantis"})
    with pytest.raises(ValidationFailed):
        await side.update(SUPPLIER, "1", {"nope": "x"})
    assert (await read_all(side, SUPPLIER)).records[0].get("name") == "A"


async def test_no_kind_column_means_no_counterparties(tmp_path: Path) -> None:
    side = connector(folder(tmp_path, "id,name\n1,A\n"))
    assert SUPPLIER not in side.entities()
    with pytest.raises(ConnectorError, match="kind"):
        await side.create(SUPPLIER, {"name": "S"})


async def test_failed_commit_leaves_the_original_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = "id,name\n1,Acme\n"
    side = connector(folder(tmp_path, content))
    await side.update(CLIENT, "1", {"name": "Changed"})

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_csv.os, "replace", broken_replace)
    with pytest.raises(ConnectorError, match="No space"):
        await side.commit()
    assert (tmp_path / "companies.csv").read_text() == content
    assert sorted(os.listdir(tmp_path)) == ["companies.csv"]
    monkeypatch.undo()
    await side.commit()
    assert (tmp_path / "companies.csv").read_text() == "id,name\n1,Changed\n"


async def test_file_edited_since_read_is_not_overwritten(tmp_path: Path) -> None:
    side = connector(folder(tmp_path, "id,name\n1,Acme\n"))
    await side.update(CLIENT, "1", {"name": "Ours"})
    (tmp_path / "companies.csv").write_text("id,name\n1,Acme\n2,Theirs, and longer\n")
    with pytest.raises(ConnectorError, match="changed on disk"):
        await side.commit()
    assert "Theirs" in (tmp_path / "companies.csv").read_text()
    assert [r.id for r in (await read_all(side, CLIENT)).records] == ["1"]


async def test_a_write_planned_on_an_older_read_is_not_committed(tmp_path: Path) -> None:
    # Reads stream from disk; the file is loaded whole only for the first write, by
    # which time it may have been edited: the run planned on what it read, so no commit.
    side = connector(folder(tmp_path, "id,name\n1,Acme\n2,Beta\n"))
    assert [r.id for r in (await read_all(side, CLIENT)).records] == ["1", "2"]
    (tmp_path / "companies.csv").write_text("id,name\n1,Acme\n2,Beta edited by hand\n")
    await side.update(CLIENT, "1", {"name": "Ours"})
    with pytest.raises(ConnectorError, match="changed on disk"):
        await side.commit()
    assert (tmp_path / "companies.csv").read_text().endswith("Beta edited by hand\n")


async def test_after_a_commit_reads_come_from_disk_again(tmp_path: Path) -> None:
    side = connector(folder(tmp_path, "id,name\n1,Acme\n"))
    await read_all(side, CLIENT)
    await side.update(CLIENT, "1", {"name": "Ours"})
    assert [r.get("name") for r in (await read_all(side, CLIENT)).records] == ["Ours"]
    await side.commit()
    (tmp_path / "companies.csv").write_text("id,name\n1,Ours\n2,Later\n")
    assert [r.id for r in (await read_all(side, CLIENT)).records] == ["1", "2"]


async def test_rereads_external_edits_between_runs(tmp_path: Path) -> None:
    side = connector(folder(tmp_path, "id,name\n1,Acme\n"))
    assert len((await read_all(side, CLIENT)).records) == 1
    (tmp_path / "companies.csv").write_text("id,name\n1,Acme\n2,Beta and more\n")
    assert len((await read_all(side, CLIENT)).records) == 2


async def test_commit_without_changes_writes_nothing(tmp_path: Path) -> None:
    side = connector(folder(tmp_path, "id,name\n1,Acme\n"))
    await read_all(side, CLIENT)
    before = (tmp_path / "companies.csv").stat().st_mtime_ns
    os.utime(tmp_path / "companies.csv", ns=(1, 1))
    await side.commit()
    assert (tmp_path / "companies.csv").stat().st_mtime_ns == 1 != before


async def test_large_files_come_in_batches(tmp_path: Path) -> None:
    rows = "".join(f"{n},Company {n}\n" for n in range(1, 12_002))
    side = connector(folder(tmp_path, "id,name\n" + rows + ",no id\n"))
    batches = [batch async for batch in side.read(CLIENT)]
    assert [len(b.records) for b in batches] == [5000, 5000, 2001]
    # Streamed: a bad row is reported with the batch it was read in.
    assert [len(b.rejected) for b in batches] == [0, 0, 1]
    assert sum(len(b.present_ids) for b in batches) == 12_001


@pytest.mark.parametrize(
    "settings",
    [
        {"path": ".", "delimiter": ";;"},
        {"path": ".", "encoding": "klingon"},
        {"path": ".", "companies": "../x.csv"},
        {"path": ".", "sheet": "x"},
        {},
    ],
)
def test_settings_are_validated(settings: dict[str, str]) -> None:
    with pytest.raises(pydantic.ValidationError):
        FilesSettings.model_validate(settings)


def test_a_row_stream_closes_between_rows_never_during_one() -> None:
    # A cancelled read closes the file from the event loop while a worker thread may be
    # reading a row from it: the close waits for that row.
    reading, release = threading.Event(), threading.Event()

    def rows() -> Iterator[_csv.CsvRow]:
        reading.set()
        release.wait(5)
        yield _csv.CsvRow(["1", "Acme"], 2)

    stream = _csv.RowStream(rows(), None)
    taken: list[_csv.CsvRow] = []
    worker = threading.Thread(target=lambda: taken.append(next(stream)))
    worker.start()
    assert reading.wait(5)
    closer = threading.Thread(target=stream.close)
    closer.start()
    closer.join(0.05)
    assert closer.is_alive()  # waiting for the row being read (a slow machine only passes)
    release.set()
    worker.join(5)
    closer.join(5)
    assert taken == [_csv.CsvRow(["1", "Acme"], 2)]
    with pytest.raises(StopIteration):
        next(stream)
