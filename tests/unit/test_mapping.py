"""Field mapping: config validation, reading and writing back through the files connector,
value maps both ways, constants, defaults, directions into the policy, other connectors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from connectors.base import ChangeBatch, Connector
from connectors.files import FilesConnector, FilesSettings
from connectors.mapped import MappingConnector, wrap_crm
from connectors.memory import MemoryConnector
from sync.config import load_settings
from sync.errors import ConfigError, InputError
from sync.extras.documents import ColumnWriter
from sync.mapping import MappingConfig, compile_mapping
from sync.model import EntityKind, Side
from sync.policy import Direction
from sync.wiring import build_crm, policy_of

CLIENT = EntityKind.CLIENT
SUPPLIER = EntityKind.COUNTERPARTY
ROOT = Path(__file__).resolve().parents[2]

MAPPING = """
[mapping.company]
kinds = { "Customer" = "client", "Vendor" = "supplier", "Lieferant" = "supplier" }
[mapping.company.fields."Type"]
field = "kind"
[mapping.company.fields."Company Name"]
field = "name"
[mapping.company.fields."Lifecycle"]
field = "status"
values = { "Customer - Active" = "active", "Customer - Lost" = "archived", "Lost" = "archived" }
[mapping.company.fields."Land"]
field = "country"
[mapping.company.fields."Needs Receipt"]
field = "require_attachment"
values = { "Ja" = true, "Nein" = false }
[mapping.company.constants]
documents_language = "de"
[mapping.company.defaults]
currency = "EUR"
due_days = 14
[mapping.contact.fields."E-Mail"]
field = "email"
direction = "flowtly_to_crm"
"""

COMPANIES = (
    "id,Type,Company Name,Lifecycle,Land,Needs Receipt,due_days,Segment,name\n"
    "1,Customer,Acme GmbH,Customer - Active,Deutschland,,,A,old name\n"
    "2,Vendor,Parts SA,Lost,Pologne,Ja,30,B,\n"
    "3,customer,Beta Ltd,active,United Kingdom,,7,,\n"
)


def config(tmp_path: Path, mapping: str = MAPPING, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[crm]\ntype = "files"\npath = "crm"\n{extra}\n{mapping}', encoding="utf-8")
    return path


def crm_folder(tmp_path: Path, companies: str = COMPANIES, contacts: str | None = None) -> Path:
    folder = tmp_path / "crm"
    folder.mkdir(exist_ok=True)
    (folder / "companies.csv").write_text(companies, encoding="utf-8")
    if contacts is not None:
        (folder / "contacts.csv").write_text(contacts, encoding="utf-8")
    return folder


async def read_all(side: Connector, entity: EntityKind) -> ChangeBatch:
    batches = [batch async for batch in side.read(entity)]
    return ChangeBatch(
        entity,
        records=[r for b in batches for r in b.records],
        rejected=[e for b in batches for e in b.rejected],
        present_ids=[i for b in batches for i in b.present_ids],
    )


def mapped_crm(tmp_path: Path, **kwargs: str) -> Connector:
    crm_folder(tmp_path, **kwargs)
    return build_crm(load_settings(config(tmp_path)))


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (
            '[mapping.company.fields."Lifecycle"]\nfield = "lifecycle"\n',
            "mapping.company.fields.Lifecycle.field",
            "unknown canonical field 'lifecycle'",
        ),
        (
            "[mapping.company.constants]\nlanguage = 'de'\n",
            "mapping.company.constants.language",
            "unknown canonical field 'language'",
        ),
        (
            "[mapping.note.defaults]\nemail = 'x@example.com'\n",
            "mapping.note.defaults.email",
            "unknown canonical field 'email' of note",
        ),
        (
            '[mapping.contact.fields."Kind"]\nfield = "kind"\n',
            "mapping.contact.fields.Kind.field",
            "unknown canonical field 'kind'",
        ),
        (
            "[mapping.company.constants]\ndue_days = 'soon'\n",
            "mapping.company",
            "constants.due_days: not an integer",
        ),
        (
            '[mapping.company.fields."A"]\nfield = "name"\n[mapping.company.fields."B"]\n'
            'field = "name"\n',
            "mapping.company",
            "both map to 'name'",
        ),
        (
            '[mapping.company.fields."C"]\nfield = "country"\nvalues = { "Atlantis" = "AT1" }\n',
            "mapping.company.fields.C",
            "values.Atlantis: not an ISO 3166 country",
        ),
        (
            '[mapping.company.fields."D"]\nfield = "status"\ndirection = "sideways"\n',
            "mapping.company.fields.D.direction",
            "",
        ),
        (
            "[mapping.company]\nkinds = { Partner = 'friend' }\n",
            "mapping.company.kinds.Partner",
            "",
        ),
        (
            '[mapping.company.fields."S"]\nfield = "status"\ndirection = "crm_to_flowtly"\n'
            '[mapping.contact.fields."N"]\nfield = "name"\ndirection = "flowtly_to_crm"\n'
            "[mapping.company.constants]\nname = 'x'\n",
            "mapping",
            "directions apply to the field 'name'",
        ),
        ("[mapping.deal]\nx = 1\n", "mapping.deal", ""),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(config(tmp_path, text))
    assert caught.value.key == key
    assert words in caught.value.reason


def test_the_commented_example_block_loads_when_uncommented(tmp_path: Path) -> None:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    block = text[text.index("# [mapping.company]\n") :]
    lines = [re.sub(r"^# ?", "", line) for line in block.splitlines()]
    settings = load_settings(config(tmp_path, "\n".join(lines)))
    company = settings.mapping.company
    assert company.fields["Lifecycle"].direction is Direction.CRM_TO_FLOWTLY
    assert company.kinds["Vendor"].entity is SUPPLIER
    assert settings.mapping.contact.fields["E-Mail"].field == "email"


def test_no_mapping_leaves_the_connector_as_it_is(tmp_path: Path) -> None:
    crm_folder(tmp_path, "id,name\n1,Acme\n")
    crm = build_crm(load_settings(config(tmp_path, "")))
    assert isinstance(crm, FilesConnector)


def test_syncs_override_the_mapping(tmp_path: Path) -> None:
    extra = (
        '[syncs.a]\n[syncs.b.mapping.company.fields."Firma"]\nfield = "name"\n'
        "[syncs.c.mapping.company.constants]\nnope = 1\n"
    )
    settings = load_settings(config(tmp_path, "", extra))
    assert settings.for_sync("a").mapping == MappingConfig()
    assert settings.for_sync("b").mapping.company.fields["Firma"].field == "name"
    with pytest.raises(ConfigError) as caught:
        settings.for_sync("c")
    assert caught.value.key == "syncs.c.mapping.company.constants.nope"


# -- reading through the files connector -----------------------------------------------------


async def test_reads_crm_names_and_values_as_canonical(tmp_path: Path) -> None:
    crm = mapped_crm(tmp_path)
    assert isinstance(crm, MappingConnector)
    async with crm:
        assert crm.entities() == {CLIENT, SUPPLIER, EntityKind.CONTACT, EntityKind.NOTE}
        clients = await read_all(crm, CLIENT)
        suppliers = await read_all(crm, SUPPLIER)
    assert clients.rejected == []
    assert suppliers.rejected == []
    by_id = {r.id: dict(r.fields) for r in [*clients.records, *suppliers.records]}
    assert by_id["1"] == {
        "name": "Acme GmbH",  # from "Company Name"; the unmapped "name" column is ignored
        "status": "active",
        "country": "DE",
        "due_days": 14,  # default: the cell is empty
        "currency": "EUR",  # default: the CRM has no currency column
        "documents_language": "de",  # constant
    }
    assert by_id["2"]["status"] == "archived"
    assert by_id["2"]["country"] == "PL"
    assert by_id["2"]["require_attachment"] is True
    assert by_id["2"]["due_days"] == 30
    assert by_id["3"]["status"] == "active"  # an unlisted value passes as is
    assert by_id["3"]["country"] == "GB"
    assert [r.id for r in suppliers.records] == ["2"]
    assert crm.fields(SUPPLIER) >= {"require_attachment", "currency", "documents_language"}
    assert "require_attachment" not in crm.fields(CLIENT)


async def test_a_value_without_canonical_form_rejects_the_record_only(tmp_path: Path) -> None:
    companies = (
        "id,Company Name,Land,Needs Receipt\n1,Acme,Atlantis,\n2,Beta,DE,Vielleicht\n3,Ok,FR,\n"
    )
    crm = mapped_crm(tmp_path, companies=companies)
    async with crm:
        batch = await read_all(crm, CLIENT)
    assert [r.id for r in batch.records] == ["2", "3"]
    assert {(e.record_id, e.field, e.value) for e in batch.rejected} == {
        ("1", "country", "Atlantis")
    }
    assert "not an ISO 3166 country" in batch.rejected[0].reason
    # A supplier-only field is not read for clients: row 2 is fine; every id stays present.
    assert set(batch.present_ids) >= {"1", "3"}


async def test_unknown_kind_names_the_configured_values(tmp_path: Path) -> None:
    crm = mapped_crm(tmp_path, companies="id,Type,Company Name\n1,Partner,Acme\n2,Lieferant,X\n")
    async with crm:
        clients = await read_all(crm, CLIENT)
        suppliers = await read_all(crm, SUPPLIER)
    assert [r.id for r in suppliers.records] == ["2"]
    assert len(clients.rejected) == 1
    assert "unknown kind 'Partner'" in clients.rejected[0].reason
    assert "customer" in clients.rejected[0].reason


async def test_required_column_can_come_from_a_mapped_header(tmp_path: Path) -> None:
    crm = mapped_crm(tmp_path, companies="id,Land\n1,DE\n")
    with pytest.raises(InputError) as caught:
        async with crm:
            pass
    assert caught.value.column == "name"
    assert "mapped from 'company name'" in caught.value.reason


async def test_two_headers_for_one_field_are_refused(tmp_path: Path) -> None:
    crm = mapped_crm(tmp_path, companies="id,Company Name,company name \n1,A,B\n")
    with pytest.raises(InputError, match="duplicate column"):
        async with crm:
            pass


# -- writing back ------------------------------------------------------------------------------


async def test_update_writes_the_crm_value_of_a_canonical_one(tmp_path: Path) -> None:
    crm = mapped_crm(tmp_path)
    async with crm:
        record = await crm.update(
            SUPPLIER,
            "2",
            {"status": "active", "require_attachment": False, "documents_language": "en"},
        )
        await crm.commit()
        # The returned record is canonical again; the constant is not the CRM's to change.
        assert record.get("status") == "active"
        assert record.get("require_attachment") is False
        assert record.get("documents_language") == "de"
        updated = await crm.update(CLIENT, "1", {"status": "archived", "country": "AT"})
        await crm.commit()
        assert updated.get("status") == "archived"
    lines = (tmp_path / "crm" / "companies.csv").read_text(encoding="utf-8").splitlines()
    # The first CRM value listed for "archived" is written; names untouched; other cells kept.
    assert lines[1] == "1,Customer,Acme GmbH,Customer - Lost,AT,,,A,old name"
    assert lines[2] == "2,Vendor,Parts SA,Customer - Active,Pologne,Nein,30,B,"
    async with crm:
        again = {r.id: r for r in (await read_all(crm, CLIENT)).records}
    assert again["1"].get("status") == "archived"
    assert again["1"].get("country") == "AT"


async def test_create_uses_the_crm_kind_and_values(tmp_path: Path) -> None:
    crm = mapped_crm(tmp_path)
    async with crm:
        created = await crm.create(
            SUPPLIER,
            {
                "name": "New Parts",
                "status": "archived",
                "country": "FR",
                "require_attachment": True,
                "documents_language": "fr",
                "currency": "PLN",
                "cyclic": True,
            },
        )
        await crm.commit()
    assert created.id == "4"
    assert created.get("status") == "archived"
    assert created.get("currency") == "EUR"  # no currency column: the default stands
    assert created.get("documents_language") == "de"
    last = (tmp_path / "crm" / "companies.csv").read_text(encoding="utf-8").splitlines()[-1]
    assert last == "4,Vendor,New Parts,Customer - Lost,FR,Ja,,,"


async def test_contacts_map_their_own_columns(tmp_path: Path) -> None:
    crm = mapped_crm(
        tmp_path,
        contacts="id,company_id,name,E-Mail\n10,1,Anna,ANNA@Example.com\n",
    )
    async with crm:
        contacts = await read_all(crm, EntityKind.CONTACT)
        await crm.update(EntityKind.CONTACT, "10", {"email": "anna@acme.example"})
        await crm.commit()
    assert contacts.records[0].get("email") == "anna@example.com"
    text = (tmp_path / "crm" / "contacts.csv").read_text(encoding="utf-8")
    assert text.splitlines()[1] == "10,1,Anna,anna@acme.example"


# -- directions ------------------------------------------------------------------------------


async def test_directions_reach_the_policy(tmp_path: Path) -> None:
    crm_folder(tmp_path, contacts="id,company_id,name,E-Mail\n")
    extra = '[sync]\ndirections = { due_days = "flowtly_to_crm" }\n'
    settings = load_settings(config(tmp_path, MAPPING, extra))
    static = policy_of(settings)
    assert static.directions["email"] is Direction.FLOWTLY_TO_CRM
    assert static.directions["documents_language"] is Direction.CRM_TO_FLOWTLY
    assert static.directions["due_days"] is Direction.FLOWTLY_TO_CRM  # [sync] wins
    crm = build_crm(settings)
    async with crm:
        policy = policy_of(settings, crm)
    # currency has a default but no CRM column: a constant in effect.
    assert policy.directions["currency"] is Direction.CRM_TO_FLOWTLY
    assert not policy.may_write("currency", Side.CRM)
    assert "status" not in policy.directions  # "both" is the default


# -- connectors that cannot rename -------------------------------------------------------------


async def test_value_maps_work_over_any_connector() -> None:
    memory = MemoryConnector()
    cfg = MappingConfig.model_validate(
        {
            "company": {
                "fields": {
                    "status": {"field": "status", "values": {"Customer - Active": "active"}}
                },
                "constants": {"documents_language": "de"},
            }
        }
    )
    crm = wrap_crm(memory, cfg)
    assert isinstance(crm, MappingConnector)
    assert crm.capabilities == memory.capabilities
    async with crm:
        created = await crm.create(CLIENT, {"name": "Acme", "status": "active"})
        inner = await read_all(memory, CLIENT)
        outer = await read_all(crm, CLIENT)
    assert inner.records[0].get("status") == "Customer - Active"
    assert "documents_language" not in inner.records[0].fields or (
        inner.records[0].get("documents_language") is None
    )
    assert created.get("status") == "active"
    assert outer.records[0].get("status") == "active"
    assert outer.records[0].get("documents_language") == "de"


def test_renaming_needs_a_connector_that_can() -> None:
    cfg = MappingConfig.model_validate({"contact": {"fields": {"Mail": {"field": "email"}}}})
    with pytest.raises(ConfigError) as caught:
        wrap_crm(MemoryConnector(), cfg)
    assert caught.value.key == "mapping.contact.fields.Mail"
    kinds = MappingConfig.model_validate({"company": {"kinds": {"Vendor": "supplier"}}})
    with pytest.raises(ConfigError) as caught:
        wrap_crm(MemoryConnector(), kinds)
    assert caught.value.key == "mapping.company.kinds"


def test_compiled_layout_and_reverse_maps() -> None:
    cfg = load_settings(None).mapping.model_validate(
        {
            "company": {
                "fields": {
                    "Lifecycle": {
                        "field": "status",
                        "values": {"Lost": "archived", "Customer - Lost": "archived"},
                    }
                },
                "kinds": {"Vendor": "supplier", "Supplier AG": "supplier"},
            }
        }
    )
    mapping = compile_mapping(cfg)
    status = mapping.entities[CLIENT].fields["status"]
    assert status.write("archived", verbatim=True) == "Lost"  # the first listed
    assert status.read("customer - lost") == "archived"  # ignoring case
    assert mapping.layout.kind_label(SUPPLIER) == "Vendor"
    assert mapping.layout.kind_label(CLIENT) == "client"
    assert mapping.layout.canonical_name(SUPPLIER, " LIFECYCLE ") == "status"
    assert mapping.layout.is_verbatim(CLIENT, "status")


def test_files_settings_unchanged_without_layout(tmp_path: Path) -> None:
    crm_folder(tmp_path, "id,kind,name\n1,supplier,X\n")
    files = FilesConnector(FilesSettings(path=tmp_path / "crm"))
    assert files.fields(SUPPLIER) == {"name"}


async def test_a_supplier_flag_outside_its_value_map_is_rejected(tmp_path: Path) -> None:
    crm = mapped_crm(
        tmp_path,
        companies="id,Type,Company Name,Needs Receipt\n1,Vendor,A,Vielleicht\n2,Vendor,B,Nein\n",
    )
    async with crm:
        batch = await read_all(crm, SUPPLIER)
    assert [(r.id, r.get("require_attachment")) for r in batch.records] == [("2", False)]
    assert [(e.record_id, e.field, e.value) for e in batch.rejected] == [
        ("1", "require_attachment", "Vielleicht")
    ]


class _ColumnsMemory(MemoryConnector):
    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[str, dict[str, str]] = {}

    async def write_columns(
        self, entity: EntityKind, record_id: str, values: Mapping[str, str]
    ) -> bool:
        self.cells[record_id] = dict(values)
        return True


async def test_extra_column_writes_pass_through_the_wrapper() -> None:
    inner = _ColumnsMemory()
    cfg = MappingConfig.model_validate({"company": {"defaults": {"currency": "EUR"}}})
    crm = wrap_crm(inner, cfg)
    assert isinstance(crm, ColumnWriter)
    assert await crm.write_columns(CLIENT, "7", {"Documents": "3"})
    assert inner.cells == {"7": {"Documents": "3"}}
    assert not isinstance(wrap_crm(MemoryConnector(), cfg), ColumnWriter)
