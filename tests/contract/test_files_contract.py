"""The files connector honours the connector contract."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.base import Connector
from connectors.files import FilesConnector, FilesSettings
from connectors.testing import ConnectorContract

HEADER = (
    "id,kind,name,country,currency,status,tin_type,tin,vat_number,due_days,city,post_code,"
    "street_line,building_number,phone,website,crm_owner\n"
)


class TestFilesContract(ConnectorContract):
    @pytest.fixture
    def connector_factory(self, tmp_path: Path) -> Callable[[], Connector]:
        (tmp_path / "companies.csv").write_text(HEADER, encoding="utf-8")
        settings = FilesSettings(path=tmp_path)
        return lambda: FilesConnector(settings)


class TestSemicolonLatin1FilesContract(ConnectorContract):
    @pytest.fixture
    def connector_factory(self, tmp_path: Path) -> Callable[[], Connector]:
        (tmp_path / "firms.csv").write_bytes(
            HEADER.replace(",", ";").replace("\n", "\r\n").encode("latin-1")
        )
        (tmp_path / "people.csv").write_bytes(
            b"id;company_id;name;email;phone;title;type;position\r\n"
        )
        settings = FilesSettings(
            path=tmp_path,
            delimiter=";",
            encoding="latin-1",
            companies="firms.csv",
            contacts="people.csv",
        )
        return lambda: FilesConnector(settings)
