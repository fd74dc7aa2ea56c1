"""Data-quality gates: each gate with real numbers, levels, the engine hook, log masking."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import structlog
from stdnum.de import idnr
from stdnum.eu import vat as eu_vat
from stdnum.pl import nip, pesel

from connectors.memory import MemoryConnector
from sync.config import QualityConfig, load_settings
from sync.engine.ops import FieldChange
from sync.engine.run import SyncJob, run_sync
from sync.errors import ConfigError, RecordError
from sync.model import EntityKind, Record, Scalar, Side
from sync.quality.gates import GateLevel, Gates, QualityProblem, sensitive_fields
from sync.report.logs import configure_logging, mask_sensitive
from sync.report.render import mask
from sync.store import Store

CLIENT, COUNTERPARTY = EntityKind.CLIENT, EntityKind.COUNTERPARTY
CONTACT, NOTE = EntityKind.CONTACT, EntityKind.NOTE

# Real VAT numbers (valid checksums), with their country prefix.
VALID_VAT = {
    "PL": "PL9295973794",
    "DE": "DE136695976",
    "FR": "FR40303265045",
    "NL": "NL004495445B01",
    "IT": "IT00743110157",
    "ES": "ESA13585625",
    "BE": "BE0403019261",
    "CZ": "CZ25123891",
    "SE": "SE123456789701",
    "AT": "ATU13585627",
    "PT": "PT501964843",
    "DK": "DK13585628",
    "GR": "EL094259216",
}


def altered(number: str) -> str:
    """``number`` with its first digit after the prefix changed (breaks the checksum)."""
    position = next(i for i in range(3, len(number)) if number[i].isdigit())
    return number[:position] + str((int(number[position]) + 1) % 10) + number[position + 1 :]


def nip_with_check(base: str) -> str:
    """A Polish NIP: nine digits and the check digit stdnum's checksum accepts."""
    for digit in "0123456789":
        if nip.is_valid(base + digit):
            return base + digit
    raise AssertionError(f"no check digit completes {base}")


def company(**fields: Scalar) -> dict[str, Scalar]:
    return {"name": "Acme", "country": "PL", "currency": "PLN", **fields}


def reasons(problems: list[QualityProblem]) -> dict[str, str]:
    return {p.field: p.reason for p in problems}


GATES = Gates()


# -- VAT -------------------------------------------------------------------------------------


def test_the_numbers_are_real() -> None:
    for number in VALID_VAT.values():
        assert eu_vat.is_valid(number)
        assert not eu_vat.is_valid(altered(number))


@pytest.mark.parametrize("country", sorted(VALID_VAT))
def test_vat_valid_with_and_without_prefix(country: str) -> None:
    number = VALID_VAT[country]
    assert GATES(CLIENT, company(country=country, vat_number=number), Side.FLOWTLY) == []
    # Without the prefix, the company's country supplies it (EL for Greece).
    bare = number[2:]
    assert GATES(CLIENT, company(country=country, vat_number=bare), Side.FLOWTLY) == []


@pytest.mark.parametrize("country", sorted(VALID_VAT))
def test_vat_bad_checksum_rejected_with_and_without_prefix(country: str) -> None:
    bad = altered(VALID_VAT[country])
    for value in (bad, bad[2:]):
        problems = GATES(CLIENT, company(country=country, vat_number=value), Side.FLOWTLY)
        assert [(p.field, p.value, p.rejects) for p in problems] == [("vat_number", value, True)]
        assert "checksum" in problems[0].reason
        assert bad[:2] in problems[0].reason


def test_vat_built_from_stdnum_checksums() -> None:
    for base in ("526000101", "777123456", "952000001", "701000999"):
        number = nip_with_check(base)
        assert GATES(CLIENT, company(vat_number="PL" + number), Side.CRM) == []
        assert reasons(GATES(CLIENT, company(vat_number=altered("PL" + number)), Side.CRM))


def test_vat_registered_in_another_member_state_passes() -> None:
    values = company(country="PL", vat_number=VALID_VAT["DE"])
    assert GATES(CLIENT, values, Side.FLOWTLY) == []


def test_vat_wrong_format_and_non_eu_countries() -> None:
    assert "vat_number" in reasons(GATES(CLIENT, company(vat_number="PL123"), Side.FLOWTLY))
    # Outside the EU stdnum's own module decides: the UK and Switzerland have one ...
    gb = company(country="GB", currency="GBP", vat_number="980780684")
    assert GATES(CLIENT, gb, Side.FLOWTLY) == []
    assert reasons(GATES(CLIENT, {**gb, "vat_number": "980780685"}, Side.FLOWTLY))
    assert GATES(CLIENT, company(country="CH", vat_number="CHE-116.281.710"), Side.CRM) == []
    # ... the US has none, and a number without any country cannot be judged.
    assert GATES(CLIENT, company(country="US", vat_number="12-3456789"), Side.CRM) == []
    assert GATES(CLIENT, company(country=None, vat_number="12345"), Side.CRM) == []


# -- TIN -------------------------------------------------------------------------------------

VALID_TIN = [
    ("PL", "8826286845"),  # NIP
    ("PL", pesel.compact("44051401359")),  # PESEL of a sole trader
    ("DE", "36574261809"),  # Steuer-IdNr
    ("FR", "732829320"),  # SIREN
    ("IT", "RCCMNL83S18D969H"),  # codice fiscale
    ("ES", "54362315K"),  # DNI
    ("NL", "111222333"),  # BSN / RSIN
    ("SE", "1234567897"),  # organisationsnummer
    ("CZ", "25123891"),  # DIČ
    ("BE", "0403019261"),  # enterprise number
]
INVALID_TIN = [
    ("PL", "8826286846"),
    ("PL", "44051401358"),
    ("FR", "732829321"),
    ("IT", "RCCMNL83S18D969I"),
    ("ES", "54362315Z"),
    ("NL", "111222334"),
    ("SE", "1234567898"),
    ("CZ", "25123892"),
    ("BE", "0403019262"),
    ("DE", "12AB"),
]


@pytest.mark.parametrize(("country", "tin"), VALID_TIN)
def test_tin_valid(country: str, tin: str) -> None:
    assert idnr.is_valid("36574261809")
    assert pesel.is_valid("44051401359")
    assert GATES(CLIENT, company(country=country, tin=tin), Side.FLOWTLY) == []


@pytest.mark.parametrize(("country", "tin"), INVALID_TIN)
def test_tin_invalid_is_rejected_naming_the_country(country: str, tin: str) -> None:
    problems = GATES(CLIENT, company(country=country, tin=tin), Side.FLOWTLY)
    assert [(p.field, p.value, p.rejects) for p in problems] == [("tin", tin, True)]
    assert f"invalid {country} tax id" in problems[0].reason


def test_tin_country_wins_over_company_country() -> None:
    values = company(country="DE", tin="8826286845", tin_country="PL")
    assert GATES(CLIENT, values, Side.FLOWTLY) == []
    assert reasons(GATES(CLIENT, {**values, "tin_country": "FR"}, Side.FLOWTLY))["tin"]


def test_tin_as_full_vat_number_and_unknown_country() -> None:
    assert GATES(CLIENT, company(tin="PL8826286845"), Side.FLOWTLY) == []
    assert GATES(CLIENT, company(country="JM", currency="JMD", tin="whatever"), Side.CRM) == []


# -- country, currency, e-mail, phone --------------------------------------------------------


def test_country_codes() -> None:
    ok = company(country="DE", address_country="FR", tin_country="PL")
    assert GATES(CLIENT, ok, Side.FLOWTLY) == []
    for bad in ("XX", "Germany", "DEU", "de"):
        problems = GATES(CLIENT, company(address_country=bad), Side.CRM)
        assert [(p.field, p.value, p.rejects) for p in problems] == [("address_country", bad, True)]
        assert "ISO 3166-1 alpha-2" in problems[0].reason


def test_currency_codes() -> None:
    assert GATES(CLIENT, company(currency="EUR"), Side.FLOWTLY) == []
    for bad in ("EURO", "XYZ", "eur", "€"):
        problems = GATES(CLIENT, company(currency=bad), Side.FLOWTLY)
        assert reasons(problems) == {"currency": "not an ISO 4217 currency code"}


@pytest.mark.parametrize(
    "email",
    ["anna@firma.pl", "a.b+invoices@sub.example.com", "łukasz@żółw.pl", "x@host.xn--p1ai"],
)
def test_valid_emails(email: str) -> None:
    assert GATES(CONTACT, {"name": "A", "email": email}, Side.FLOWTLY) == []


@pytest.mark.parametrize(
    "email",
    ["anna", "anna@", "@firma.pl", "anna@firma", "an na@firma.pl", "a@@firma.pl",
     "anna@-firma.pl", "anna@firma..pl", "anna.@firma.pl", "a" * 65 + "@firma.pl"],
)  # fmt: skip
def test_invalid_emails(email: str) -> None:
    problems = GATES(CONTACT, {"name": "A", "email": email}, Side.CRM)
    assert [(p.field, p.value, p.rejects) for p in problems] == [("email", email, True)]


def test_phone_is_a_warning_by_default() -> None:
    for ok in ("+48 22 202 15 14", "(030) 123-4567", "+1 555 123 4567 ext. 12", "0711/884105"):
        assert GATES(CONTACT, {"name": "A", "email": "a@b.eu", "phone": ok}, Side.CRM) == []
    for bad in ("12345", "call me", "1+2345678", "+48 22 202 15 14 99 88 77 66"):
        problems = GATES(CLIENT, company(phone=bad), Side.FLOWTLY)
        assert [(p.field, p.value, p.rejects) for p in problems] == [("phone", bad, False)]


# -- required fields -------------------------------------------------------------------------


def test_required_fields_per_entity_for_flowtly_only() -> None:
    cases: list[tuple[EntityKind, dict[str, Scalar], set[str]]] = [
        (
            CLIENT,
            {"name": None, "country": None, "currency": None},
            {"name", "country", "currency"},
        ),
        (COUNTERPARTY, {"name": " ", "country": "PL"}, {"name"}),
        (CONTACT, {"name": None, "email": None}, {"name", "email"}),
        (NOTE, {"body": None, "company_id": "C1"}, {"body"}),
    ]
    for entity, values, missing in cases:
        problems = GATES(entity, values, Side.FLOWTLY)
        assert {p.field for p in problems} == missing
        assert all(p.rejects and p.value is None for p in problems)
        assert all("Flowtly requires" in p.reason for p in problems)
        assert GATES(entity, values, Side.CRM) == []


def test_defaults_fill_required_fields_and_uncarried_fields_are_not_judged() -> None:
    gates = Gates(defaults={CLIENT: {"currency": "EUR"}})
    problems = gates(CLIENT, {"name": "Acme", "country": "PL", "currency": None}, Side.FLOWTLY)
    assert problems == []
    problems = gates(CLIENT, {"name": "Acme", "country": None}, Side.FLOWTLY)
    assert reasons(problems).keys() == {"country"}
    # A sync that does not carry country leaves it to Flowtly.
    assert gates(CLIENT, {"name": "Acme"}, Side.FLOWTLY) == []


# -- levels and configuration ----------------------------------------------------------------


def test_levels_reject_warn_off() -> None:
    bad = company(vat_number=altered(VALID_VAT["PL"]), phone="12", name=None)
    default = {p.field: p.rejects for p in GATES(CLIENT, bad, Side.FLOWTLY)}
    assert default == {"vat_number": True, "phone": False, "name": True}
    relaxed = Gates(QualityConfig(vat=GateLevel.WARN, phone=GateLevel.OFF, required=GateLevel.OFF))
    assert {p.field: p.rejects for p in relaxed(CLIENT, bad, Side.FLOWTLY)} == {"vat_number": False}
    strict = Gates(QualityConfig(phone=GateLevel.REJECT, vat=GateLevel.OFF))
    assert {p.field: p.rejects for p in strict(CLIENT, bad, Side.FLOWTLY)} == {
        "phone": True,
        "name": True,
    }


def test_every_gate_can_be_switched_off() -> None:
    off = Gates(QualityConfig(**{gate: GateLevel.OFF for gate in QualityConfig.model_fields
                                 if gate != "sensitive_fields"}))  # fmt: skip
    awful = {"name": None, "country": "XX", "currency": "XYZ", "vat_number": "PL1",
             "tin": "1", "tin_country": "PL", "phone": "?"}  # fmt: skip
    assert off(CLIENT, awful, Side.FLOWTLY) == []
    assert off(CONTACT, {"name": "A", "email": "nope"}, Side.FLOWTLY) == []
    assert len(GATES(CLIENT, awful, Side.FLOWTLY)) == 6


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_quality_section_is_loaded_and_validated(tmp_path: Path) -> None:
    settings = load_settings(
        _config(tmp_path, '[quality]\nvat = "warn"\nsensitive_fields = ["phone"]\n')
    )
    assert settings.quality.vat is GateLevel.WARN
    assert settings.quality.tin is GateLevel.REJECT
    assert sensitive_fields(settings.quality) == {"tin", "vat_number", "phone"}
    with pytest.raises(ConfigError) as unknown:
        load_settings(_config(tmp_path, '[quality]\nsensitive_fields = ["phone", "iban"]\n'))
    assert unknown.value.key == "quality.sensitive_fields"
    assert "iban" in str(unknown.value)
    with pytest.raises(ConfigError) as level:
        load_settings(_config(tmp_path, '[quality]\nemail = "maybe"\n'))
    assert level.value.key == "quality.email"


def test_example_config_has_the_default_levels() -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    assert load_settings(example).quality == QualityConfig()


# -- the engine keeps rejected records out ---------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/state.db")
    yield opened
    opened.close()


def test_a_run_writes_good_records_and_rejects_bad_ones(store: Store) -> None:
    fields: Mapping[EntityKind, tuple[str, ...]] = {
        CLIENT: ("name", "country", "currency", "vat_number", "phone"),
        CONTACT: ("company_id", "name", "email"),
    }
    crm = MemoryConnector(entities=(CLIENT, CONTACT), fields=fields, id_prefix="c")
    flowtly = MemoryConnector(entities=(CLIENT, CONTACT), fields=fields, id_prefix="f")
    good_vat, bad_vat = VALID_VAT["DE"], altered(VALID_VAT["DE"])
    crm.put(Record(CLIENT, "C1", company(country="DE", currency="EUR", vat_number=good_vat)))
    crm.put(Record(CLIENT, "C2", company(country="DE", currency="EUR", vat_number=bad_vat)))
    crm.put(Record(CLIENT, "C3", company(phone="12")))
    crm.put(Record(CONTACT, "P1", {"company_id": "C1", "name": "Ann", "email": "ann@x"}))
    flowtly.put(Record(CLIENT, "9", company(country="FR", vat_number="FR1")))
    job = SyncJob("q", crm, flowtly, store, gate=Gates(defaults={CLIENT: {"currency": "EUR"}}))
    result = asyncio.run(run_sync(job))

    assert sorted(r.get("name") for r in flowtly.records(CLIENT)) == ["Acme", "Acme", "Acme"]
    assert {r.get("vat_number") for r in flowtly.records(CLIENT)} == {good_vat, None, "FR1"}
    assert flowtly.records(CONTACT) == []
    assert sorted(r.id for r in crm.records(CLIENT)) == ["C1", "C2", "C3"]
    found = {(e.side, e.record_id, e.field): e for e in result.errors}
    assert found.keys() == {("crm", "C2", "vat_number"), ("crm", "P1", "email"),
                            ("flowtly", "9", "vat_number")}  # fmt: skip
    assert found[("crm", "C2", "vat_number")].value == bad_vat
    assert found[("crm", "C2", "vat_number")].reason.startswith("rejected: invalid DE VAT")
    assert [(w.record_id, w.field) for w in result.warnings] == [("C3", "phone")]
    assert not result.clean
    stored = {(r.record_id, r.field, r.value) for r in store.rejections("q")}
    assert stored == {("C2", "vat_number", bad_vat), ("P1", "email", "ann@x"),
                      ("9", "vat_number", "FR1")}  # fmt: skip


# -- masking in logs -------------------------------------------------------------------------


def test_log_processor_masks_sensitive_keys_and_changes() -> None:
    processor = mask_sensitive(["phone"])
    with structlog.testing.capture_logs(processors=[processor]) as logs:
        log = structlog.get_logger("test")
        log.info(
            "write",
            tin="8826286845",
            city="Gdańsk",
            record={"vat_number": "PL8826286845", "name": "Acme", "phone": "+48 58 1"},
            changes=[
                {"field": "vat_number", "old": "PL9295973794", "new": "PL8826286845"},
                {"field": "name", "old": "A", "new": "B"},
                FieldChange("tin", None, "8826286845"),
                FieldChange("city", "X", "Y"),
            ],
            error=RecordError("client", "crm", "C1", "bad", field="tin", value="8826286846"),
        )
    (event,) = logs
    rendered = json.dumps(event, default=repr)
    for secret in ("8826286845", "PL8826286845", "PL9295973794", "+48 58 1", "8826286846"):
        assert secret not in rendered
    assert event["tin"] == mask("8826286845") == "•••••••845"
    assert event["city"] == "Gdańsk"
    assert event["record"] == {
        "vat_number": mask("PL8826286845"),
        "name": "Acme",
        "phone": mask("+48 58 1"),
    }
    assert event["changes"][0] == {
        "field": "vat_number",
        "old": mask("PL9295973794"),
        "new": mask("PL8826286845"),
    }
    assert event["changes"][1] == {"field": "name", "old": "A", "new": "B"}
    assert event["changes"][2] == FieldChange("tin", None, mask("8826286845"))
    assert event["changes"][3] == FieldChange("city", "X", "Y")
    assert event["error"].value == mask("8826286846")


def test_configured_logging_masks_before_rendering(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json", secrets=["tok-0123456789"], sensitive=["street_line"])
    try:
        structlog.get_logger("test").info(
            "sent", vat_number="DE136695976", street_line="Königstraße 28", token="tok-0123456789"
        )
    finally:
        structlog.reset_defaults()
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["vat_number"] == mask("DE136695976")
    assert line["street_line"] == mask("Königstraße 28")
    assert "tok-0123456789" not in json.dumps(line)
    assert "DE136695976" not in json.dumps(line)
