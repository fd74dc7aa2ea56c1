"""CSV files as people make them: spreadsheet exports, hand edits, links and shared
folders. Each case reads or writes through the files connector."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from test_files_connector import connector, read_all

from connectors import _csv
from sync.errors import InputError
from sync.model import EntityKind

CLIENT = EntityKind.CLIENT
EXCEL = (
    b"\xef\xbb\xbfid;kind;name;country\r\n1;client;M\xc3\xbcller GmbH;DE\r\n2;client;Acme;PL\r\n"
)


def companies(folder: Path, content: bytes | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    (folder / "companies.csv").write_bytes(data)
    return folder


async def test_an_excel_export_reads_with_the_default_delimiter_and_keeps_its_shape(
    tmp_path: Path,
) -> None:
    side = connector(companies(tmp_path, EXCEL))
    batch = await read_all(side, CLIENT)
    assert [(r.id, r.get("name"), r.get("country")) for r in batch.records] == [
        ("1", "Müller GmbH", "DE"),
        ("2", "Acme", "PL"),
    ]
    assert batch.rejected == []
    await side.update(CLIENT, "2", {"name": "Acme; Best"})
    await side.create(EntityKind.CONTACT, {"company_id": "1", "email": "a@b.de"})
    await side.commit()
    assert (tmp_path / "companies.csv").read_bytes() == EXCEL.replace(
        b"2;client;Acme;PL", b'2;client;"Acme; Best";PL'
    )
    # A file the connector creates follows the companies file's delimiter.
    assert (tmp_path / "contacts.csv").read_bytes().startswith(b"id;company_id;name;email")


@pytest.mark.parametrize("configured", [",", ";"])
def test_the_configured_delimiter_wins_when_it_splits_the_header(configured: str) -> None:
    assert _csv.header_delimiter("id,name;x", configured) == configured
    assert _csv.header_delimiter("id;name", ",") == ";"
    assert _csv.header_delimiter("id\tname", ",") == "\t"
    assert _csv.header_delimiter("id", ",") == ","


async def test_a_header_no_delimiter_splits_says_the_delimiter_is_probably_wrong(
    tmp_path: Path,
) -> None:
    side = connector(companies(tmp_path, "id name country\n1 Acme PL\n"))
    with pytest.raises(InputError) as caught:
        await read_all(side, CLIENT)
    assert caught.value.column == "id"
    assert "delimiter is probably wrong" in caught.value.reason
    assert "'id name country'" in caught.value.reason


@pytest.mark.parametrize("whole", [False, True], ids=["streamed", "loaded"])
async def test_an_unterminated_quote_is_reported_where_it_opens(
    tmp_path: Path, whole: bool
) -> None:
    rows = "".join(f"{n},Company {n}\n" for n in range(4, 40))
    side = connector(companies(tmp_path, f'id,name\n1,Acme\n2,"Beta\n3,Gamma\n{rows}'))
    with pytest.raises(InputError) as caught:
        await (side.update(CLIENT, "1", {"name": "Acme 2"}) if whole else read_all(side, CLIENT))
    assert caught.value.line == 3
    assert "never closed" in caught.value.reason


async def test_a_row_with_fewer_cells_than_the_header_is_rejected_with_its_line(
    tmp_path: Path,
) -> None:
    side = connector(
        companies(tmp_path, "id,kind,name,country,vat_number\n1,client,Acme,PL,\n2,client,Beta\n")
    )
    batch = await read_all(side, CLIENT)
    assert [r.id for r in batch.records] == ["1"]
    [rejected] = batch.rejected
    assert rejected.record_id == "2"
    assert "line 3" in rejected.reason
    assert "3 cells but the header has 5" in rejected.reason
    assert "2" in batch.present_ids


@pytest.mark.parametrize("whole", [False, True], ids=["streamed", "loaded"])
async def test_a_decode_error_suggests_the_encoding_setting(tmp_path: Path, whole: bool) -> None:
    side = connector(companies(tmp_path, b"id,name\n1,Acme\n2,Caf\xe9\n"))
    with pytest.raises(InputError) as caught:
        await (side.update(CLIENT, "1", {"name": "Acme 2"}) if whole else read_all(side, CLIENT))
    assert caught.value.line == 3
    assert "`encoding`" in caught.value.reason
    assert "cp1252" in caught.value.reason


async def test_a_symlinked_file_is_written_through_to_its_target(tmp_path: Path) -> None:
    shared = companies(tmp_path / "shared", "id,name\n1,Acme\n")
    crm = tmp_path / "crm"
    crm.mkdir()
    (crm / "companies.csv").symlink_to(shared / "companies.csv")
    side = connector(crm)
    await read_all(side, CLIENT)
    await side.update(CLIENT, "1", {"name": "Acme 2"})
    await side.commit()
    assert (crm / "companies.csv").is_symlink()
    assert (shared / "companies.csv").read_text(encoding="utf-8") == "id,name\n1,Acme 2\n"
    assert sorted(p.name for p in os.scandir(shared)) == ["companies.csv"]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
async def test_a_rewrite_keeps_owner_group_and_mode(tmp_path: Path) -> None:
    path = companies(tmp_path, "id,name\n1,Acme\n") / "companies.csv"
    os.chown(path, 12345, 23456)
    os.chmod(path, 0o664)
    side = connector(tmp_path)
    await side.update(CLIENT, "1", {"name": "Acme 2"})
    await side.commit()
    after = path.stat()
    assert (after.st_uid, after.st_gid) == (12345, 23456)
    assert stat.S_IMODE(after.st_mode) == 0o664
    assert path.read_text(encoding="utf-8") == "id,name\n1,Acme 2\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
async def test_a_file_whose_owner_cannot_be_kept_is_overwritten_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = companies(tmp_path, "id,name\n1,Acme\n") / "companies.csv"
    os.chown(path, 12345, -1)
    os.chmod(path, 0o660)
    inode = path.stat().st_ino

    def refused(*args: object) -> None:
        raise PermissionError("not the owner")  # as for a user writing through its group

    monkeypatch.setattr(os, "chown", refused)
    side = connector(tmp_path)
    await side.update(CLIENT, "1", {"name": "Acme 2"})
    await side.commit()
    after = path.stat()
    assert (after.st_ino, after.st_uid, stat.S_IMODE(after.st_mode)) == (inode, 12345, 0o660)
    assert path.read_text(encoding="utf-8") == "id,name\n1,Acme 2\n"
    assert sorted(p.name for p in os.scandir(tmp_path)) == ["companies.csv"]
