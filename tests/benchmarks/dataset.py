"""A deterministic CRM for benchmarks, in the files connector's layout (docs/reference.md).

    python tests/benchmarks/dataset.py OUT_DIR --companies N [--seed S]

writes ``companies.csv`` (clients and about 15% suppliers across 17 EU countries, each
with a VAT number that python-stdnum accepts, unique; addresses and phones; about 10% of
the names unicode-heavy: diacritics, CJK including an astral-plane character, or
right-to-left text), ``contacts.csv`` (1 to 5 per client, 3 on average, unique e-mails)
and ``notes.csv`` (0 to 2 per client, 1 on average; some multi-line, some quoted). The same
seed gives byte-identical files. `edit_rows`, `delete_rows` and `set_values` mutate a
generated folder deterministically for benchmark scenarios.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from stdnum import luhn
from stdnum.at import uid
from stdnum.dk import cvr
from stdnum.ee import kmkr
from stdnum.es import cif
from stdnum.fi import alv
from stdnum.iso7064 import mod_11_10
from stdnum.lu import tva
from stdnum.nl import bsn
from stdnum.pl import nip
from stdnum.pt import nif
from stdnum.si import ddv

__all__ = [
    "COMPANY_COLUMNS",
    "CONTACT_COLUMNS",
    "NOTE_COLUMNS",
    "SOURCES",
    "DatasetSummary",
    "delete_rows",
    "edit_rows",
    "generate",
    "main",
    "make_vat",
    "set_values",
]

COMPANY_COLUMNS = [
    *("id", "kind", "name", "country", "currency", "status", "tin_type", "tin", "vat_number"),
    *("due_days", "city", "post_code", "street_line", "building_number", "phone", "website"),
]
CONTACT_COLUMNS = ["id", "company_id", "name", "email", "phone", "title", "type"]
NOTE_COLUMNS = ["id", "company_id", "body", "created_at"]
SOURCES = ("companies", "contacts", "notes")
"""The three files, by the name `edit_rows` and `delete_rows` take (``NAME.csv``)."""

SUPPLIER_SHARE = 0.15
UNICODE_SHARE = 0.10


# -- VAT numbers ----------------------------------------------------------------------------


def _digits(rng: random.Random, count: int, first: str = "123456789") -> str:
    return rng.choice(first) + "".join(rng.choices("0123456789", k=count - 1))


def _zero_checksum(checksum: Callable[[str], int], head: str) -> str | None:
    # For schemes validated as "weighted sum == 0": the one last digit that satisfies it.
    for digit in "0123456789":
        if checksum(head + digit) == 0:
            return head + digit
    return None


def _luhn(head: str) -> str:
    return head + luhn.calc_check_digit(head)


def _fr(rng: random.Random) -> str | None:
    siren = _luhn(_digits(rng, 8))
    return f"{int(siren + '12') % 97:02d}{siren}"


def _be(rng: random.Random) -> str | None:
    head = "0" + _digits(rng, 7)
    return f"{head}{97 - int(head) % 97:02d}"


def _cz(rng: random.Random) -> str | None:
    head = _digits(rng, 7, "12345678")
    check = (11 - sum((8 - i) * int(n) for i, n in enumerate(head))) % 11
    return head + str((check or 1) % 10)


def _si(rng: random.Random) -> str | None:
    head = _digits(rng, 7)
    check = ddv.calc_check_digit(head)
    return head + check if len(check) == 1 else None


_NATIONAL: dict[str, Callable[[random.Random], str | None]] = {
    "AT": lambda r: (h := "U" + _digits(r, 7)) + uid.calc_check_digit(h),
    "BE": _be,
    "CZ": _cz,
    "DE": lambda r: (h := _digits(r, 8)) + mod_11_10.calc_check_digit(h),
    "DK": lambda r: _zero_checksum(cvr.checksum, _digits(r, 7)),
    "EE": lambda r: _zero_checksum(kmkr.checksum, "10" + _digits(r, 6, "0123456789")),
    "ES": lambda r: (h := "B" + _digits(r, 7)) + cif.calc_check_digits(h)[0],
    "FI": lambda r: _zero_checksum(alv.checksum, _digits(r, 7)),
    "FR": _fr,
    "HR": lambda r: (h := _digits(r, 10)) + mod_11_10.calc_check_digit(h),
    "IT": lambda r: _luhn(_digits(r, 7) + f"{r.randint(1, 100):03d}"),
    "LU": lambda r: (h := _digits(r, 6)) + tva.calc_check_digits(h),
    "NL": lambda r: (n := _zero_checksum(bsn.checksum, _digits(r, 8))) and n + "B01",
    "PL": lambda r: _zero_checksum(nip.checksum, _digits(r, 9)),
    "PT": lambda r: (h := _digits(r, 8, "5")) + nif.calc_check_digit(h),
    "SE": lambda r: _luhn(_digits(r, 9, "5")) + "01",
    "SI": _si,
}


def make_vat(country: str, rng: random.Random) -> str:
    """A VAT number of ``country`` (ISO code, one of 17 EU countries) in compact form with
    its prefix, valid per ``stdnum.eu.vat``; the national part is drawn from ``rng``."""
    while True:
        national = _NATIONAL[country](rng)
        if national:
            return country + national


# -- reference data -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Country:
    code: str
    currency: str
    phone: str
    post_code: str
    """``#`` a digit, ``@`` a capital letter."""
    forms: tuple[str, ...]
    cities: tuple[str, ...]
    streets: tuple[str, ...]
    first: tuple[str, ...]
    last: tuple[str, ...]
    weight: float


def _country(
    code: str, currency: str, phone: str, post: str, *lists: str, w: float = 1
) -> _Country:
    forms, cities, streets, first, last = (tuple(item.split("|")) for item in lists)
    return _Country(code, currency, phone, post, forms, cities, streets, first, last, w)


_COUNTRIES = (
    _country("PL", "PLN", "+48", "##-###", "sp. z o.o.|S.A.|sp.j.|sp.k.",
             "Warszawa|Kraków|Gdańsk|Poznań|Łódź|Wrocław",
             "ul. Długa|ul. Floriańska|ul. Piotrkowska|ul. Chłodna|ul. Świętojańska",
             "Anna|Piotr|Katarzyna|Michał|Małgorzata|Paweł|Łucja|Grzegorz",
             "Nowak|Kowalski|Wiśniewski|Wójcik|Kamiński|Lewandowski|Zieliński|Dąbrowski", w=3),
    _country("DE", "EUR", "+49", "#####", "GmbH|AG|KG|GmbH & Co. KG",
             "Berlin|München|Köln|Hamburg|Düsseldorf|Stuttgart",
             "Hauptstraße|Königstraße|Schloßallee|Bahnhofstraße|Gartenweg",
             "Jürgen|Sabine|Lukas|Claudia|Jörg|Anna|Markus|Käthe",
             "Müller|Schmidt|Schneider|Fischer|Weiß|Schäfer|Koch|Groß", w=3),
    _country("FR", "EUR", "+33", "#####", "SAS|SARL|SA",
             "Paris|Lyon|Marseille|Bordeaux|Lille|Nantes",
             "Rue de la République|Boulevard Haussmann|Rue Saint-Ferréol|Avenue Foch",
             "Julien|Amélie|François|Hélène|Léa|Théo|Chloé|Noël",
             "Dubois|Lefèvre|Moreau|Laurent|Girard|Rousseau|Bonnet|Faure", w=2),
    _country("NL", "EUR", "+31", "#### @@", "B.V.|N.V.|V.O.F.",
             "Amsterdam|Rotterdam|Utrecht|Den Haag|Eindhoven|Groningen",
             "Herengracht|Oudegracht|Keizersgracht|Havenstraat|Stationsweg",
             "Ruud|Sanne|Daan|Anouk|Joost|Fleur|Bram|Eline",
             "de Vries|Jansen|van den Berg|Bakker|Visser|Smit|de Jong|Mulder", w=1.5),
    _country("ES", "EUR", "+34", "#####", "S.L.|S.A.",
             "Madrid|Barcelona|Valencia|Sevilla|Bilbao|Málaga",
             "Calle de Alcalá|Gran Vía|Calle Mayor|Paseo de Gracia",
             "José|María|Núria|Íñigo|Lucía|Sergio|Ángel|Begoña",
             "García|Fernández|González|Rodríguez|López|Martínez|Sánchez|Núñez", w=1.5),
    _country("IT", "EUR", "+39", "#####", "S.r.l.|S.p.A.|S.n.c.",
             "Milano|Roma|Torino|Napoli|Bologna|Firenze",
             "Via Roma|Corso Italia|Via Garibaldi|Piazza del Duomo|Via Nazionale",
             "Giuseppe|Francesca|Niccolò|Giulia|Luca|Chiara|Andrea|Elena",
             "Rossi|Russo|Ferrari|Esposito|Bianchi|Romano|Colombo|Ricci", w=2),
    _country("AT", "EUR", "+43", "####", "GmbH|AG|OG", "Wien|Graz|Linz|Salzburg|Innsbruck",
             "Mariahilfer Straße|Getreidegasse|Herrengasse|Landstraße",
             "Lukas|Lena|Florian|Hannah|Maximilian|Sophie",
             "Gruber|Huber|Bauer|Wagner|Pichler|Steiner"),
    _country("BE", "EUR", "+32", "####", "BV|NV|SRL|SA", "Bruxelles|Antwerpen|Gent|Liège|Brugge",
             "Rue Neuve|Meir|Veldstraat|Boulevard d'Avroy|Steenstraat",
             "Lotte|Thomas|Élodie|Wout|Manon|Pieter", "Peeters|Janssens|Maes|Dupont|Claes"),
    _country("SE", "SEK", "+46", "### ##", "AB|HB", "Stockholm|Göteborg|Malmö|Uppsala|Västerås",
             "Drottninggatan|Kungsgatan|Storgatan|Götgatan|Vasagatan",
             "Åsa|Björn|Karin|Erik|Märta|Lars",
             "Andersson|Johansson|Karlsson|Nilsson|Åkerlund|Öberg"),
    _country("DK", "DKK", "+45", "####", "ApS|A/S|I/S", "København|Aarhus|Odense|Aalborg",
             "Strøget|Nørregade|Østergade|Vesterbrogade|Søndergade",
             "Søren|Mette|Jørgen|Line|Rasmus|Sørine", "Jensen|Nielsen|Hansen|Sørensen|Møller"),
    _country("FI", "EUR", "+358", "#####", "Oy|Oyj|Ky", "Helsinki|Espoo|Tampere|Turku|Oulu",
             "Mannerheimintie|Aleksanterinkatu|Hämeenkatu|Kauppakatu",
             "Mikko|Päivi|Jukka|Sanna|Väinö|Aino",
             "Virtanen|Korhonen|Mäkinen|Nieminen|Hämäläinen|Järvinen"),
    _country("PT", "EUR", "+351", "####-###", "Lda.|S.A.", "Lisboa|Porto|Braga|Coimbra|Faro",
             "Rua Augusta|Avenida da Liberdade|Rua de Santa Catarina|Rua do Ouro",
             "João|Inês|Gonçalo|Beatriz|Tomás|Conceição",
             "Silva|Santos|Ferreira|Pereira|Gonçalves|Magalhães"),
    _country("CZ", "CZK", "+420", "### ##", "s.r.o.|a.s.|v.o.s.",
             "Praha|Brno|Ostrava|Plzeň|Liberec",
             "Václavské náměstí|Národní|Pražská|Masarykova|Husova",
             "Jiří|Petra|Tomáš|Lucie|Martin|Kateřina",
             "Novák|Svoboda|Dvořák|Černý|Procházka|Kučera"),
    _country("LU", "EUR", "+352", "L-####", "S.à r.l.|S.A.",
             "Luxembourg|Esch-sur-Alzette|Differdange|Dudelange",
             "Grand-Rue|Avenue de la Liberté|Rue de Hollerich|Boulevard Royal",
             "Luc|Anne|Marc|Sophie|Jean|Claire", "Schmit|Muller|Weber|Wagner|Thill"),
    _country("HR", "EUR", "+385", "#####", "d.o.o.|d.d.", "Zagreb|Split|Rijeka|Osijek|Zadar",
             "Ilica|Vukovarska|Marmontova|Korzo", "Ivan|Ana|Đuro|Marija|Luka|Željka",
             "Horvat|Kovačević|Babić|Marić|Jurić|Đurđević"),
    _country("SI", "EUR", "+386", "####", "d.o.o.|d.d.", "Ljubljana|Maribor|Celje|Kranj|Koper",
             "Slovenska cesta|Čopova ulica|Glavni trg|Prešernova cesta",
             "Janez|Maja|Luka|Špela|Matej|Nuša", "Novak|Horvat|Kovačič|Krajnc|Zupančič"),
    _country("EE", "EUR", "+372", "#####", "OÜ|AS", "Tallinn|Tartu|Narva|Pärnu",
             "Narva mnt|Pärnu mnt|Viru tänav|Rüütli", "Mart|Kadri|Jüri|Liis|Tõnu|Ülle",
             "Tamm|Saar|Sepp|Mägi|Kask|Rebane"),
)  # fmt: skip
_WEIGHTS = [country.weight for country in _COUNTRIES]


def _words(text: str) -> tuple[str, ...]:
    # Long word lists read better as one "|"-separated string than one item a line.
    return tuple(text.split("|"))


_WORDS = _words(
    "Atlas|Nordic|Vertex|Baltic|Alpine|Silver|Blue|Green|Summit|Harbor|Crown|Delta|Pioneer|"
    "Sun|Oak|River|Metro|Prime|Union|Star|Eagle|Arctic|Coastal|Golden|Amber|Falcon|Granite"
)
_SECTORS = _words(
    "Logistics|Software|Foods|Consulting|Print|Engineering|Textiles|Analytics|Furniture|"
    "Trading|Medical|Energy|Media|Construction|Bakery|Optics|Robotics|Packaging|Travel|Design"
)
_UNICODE_NAMES = _words(
    "Zażółć Gęślą Jaźń|Łąkowe Źródło|Ærøskøbing Fiskeri|Ångström Ölfabrik|Crème Brûlée & Fils|"
    "Škoda Čeština Řemesla|Þór Íslenskur|Đurđevac Žitarice|Göttinger Bäckerei Größe|Œuvre Façade|"
    "東京精密 Europe|上海贸易|서울무역 Trading|大阪商事|深圳电子 Components|𠮷野家 Foods|京都織物|"
    "النور للتجارة|شركة الأمل|אור ים|מגן סחר|دار السلام"
)
_TITLES = _words(
    "Managing director|Bookkeeper|Accounts payable|Office manager|CFO|Sales coordinator|"
    "IT manager|Procurement lead"
)
_NOTES = (
    "Kick-off call with the finance team; invoices in {currency}, {days}-day terms.",
    "Asked for a statement of account for Q{quarter}. Sent the same day.",
    'Prefers "net {days}" terms. Offered a 2% early-payment discount instead.',
    "Visited the {city} office. Invoices go to the accounts payable mailbox.",
    "Payment arrived {late} days late; no reminder needed for now.",
    "Contract renewed.\nPurchase order number must be quoted on every invoice.\nOwner: {name}.",
)
_ASCII = str.maketrans(
    {"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "Ae", "ß": "ss", "đ": "d",
     "Đ": "D", "þ": "th", "Þ": "Th", "œ": "oe", "Œ": "Oe"}
)  # fmt: skip


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII))
    return decomposed.encode("ascii", "ignore").decode("ascii")


@lru_cache(maxsize=4096)
def _slug(text: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in _ascii(text).lower()).split()
    return "-".join(words)[:30].strip("-")


def _pattern(rng: random.Random, pattern: str) -> str:
    return "".join(
        rng.choice("0123456789") if c == "#" else rng.choice("ABCDEFGHJKLMNPRSTVWXZ")
        if c == "@" else c
        for c in pattern
    )  # fmt: skip


def _phone(rng: random.Random, prefix: str) -> str:
    digits = str(rng.randrange(10**8, 10**9))
    return f"{prefix} {digits[:3]} {digits[3:6]} {digits[6:]}"


# -- generation -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """What `generate` wrote."""

    companies: int
    clients: int
    suppliers: int
    contacts: int
    notes: int
    unicode_names: int

    @property
    def records(self) -> int:
        """Companies, contacts and notes together (what a first sync creates)."""
        return self.companies + self.contacts + self.notes


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.vats: set[str] = set()
        self.names: set[tuple[str, str]] = set()
        self.companies: list[list[str]] = []
        self.contacts: list[list[str]] = []
        self.notes: list[list[str]] = []
        self.unicode = 0
        self.epoch = datetime(2025, 1, 1, tzinfo=UTC)

    def _name(self, number: int, country: _Country) -> str:
        rng = self.rng
        form = rng.choice(country.forms)
        if rng.random() < UNICODE_SHARE:
            self.unicode += 1
            stem = rng.choice(_UNICODE_NAMES)
        else:
            stem = f"{rng.choice(_WORDS)} {rng.choice(_SECTORS)}"
        name = f"{stem} {form}"
        if (name, country.code) in self.names:
            name = f"{stem} {number} {form}"
        self.names.add((name, country.code))
        return name

    def _vat(self, country: _Country) -> str:
        while True:
            vat = make_vat(country.code, self.rng)
            if vat not in self.vats:
                self.vats.add(vat)
                return vat

    def company(self, number: int) -> None:
        rng = self.rng
        company_id = f"C{number:06d}"
        country = rng.choices(_COUNTRIES, weights=_WEIGHTS)[0]
        supplier = rng.random() < SUPPLIER_SHARE
        name = self._name(number, country)
        vat = self._vat(country)
        domain = f"{_slug(name) or 'company'}-{number}.example"
        city = rng.choice(country.cities)
        status = rng.choices(("active", "prospect", "inactive"), weights=(90, 7, 3))[0]
        tin = vat[2:] if country.code == "PL" and rng.random() < 0.5 else ""
        self.companies.append(
            [company_id, "supplier" if supplier else "client", name, country.code,
             country.currency, status, "vat", tin, vat, str(rng.choice((7, 14, 30, 45, 60))),
             city, _pattern(rng, country.post_code), rng.choice(country.streets),
             str(rng.randint(1, 250)), _phone(rng, country.phone), f"https://{domain}"]
        )  # fmt: skip
        if not supplier:
            self._contacts(company_id, country, domain)
            self._notes(company_id, country, city)

    def _contacts(self, company_id: str, country: _Country, domain: str) -> None:
        rng = self.rng
        emails: set[str] = set()
        for position in range(rng.randint(1, 5)):
            first, last = rng.choice(country.first), rng.choice(country.last)
            local = _slug(f"{first} {last}").replace("-", ".")
            email, extra = f"{local}@{domain}", 2
            while email in emails:
                email, extra = f"{local}{extra}@{domain}", extra + 1
            emails.add(email)
            phone = _phone(rng, country.phone) if rng.random() < 0.8 else ""
            kind = "main" if position == 0 else rng.choice(("billing", "other"))
            self.contacts.append(
                [f"P{len(self.contacts) + 1:06d}", company_id, f"{first} {last}", email, phone,
                 rng.choice(_TITLES), kind]
            )  # fmt: skip

    def _notes(self, company_id: str, country: _Country, city: str) -> None:
        rng = self.rng
        bodies: set[str] = set()
        for _ in range(rng.choice((0, 1, 1, 1, 2))):
            # Notes match by body within their company: two equal ones would be ambiguous.
            body = ""
            while not body or body in bodies:
                body = rng.choice(_NOTES).format(
                    currency=country.currency,
                    days=rng.choice((14, 30, 45, 60)),
                    quarter=rng.randint(1, 4),
                    city=city,
                    late=rng.randint(2, 30),
                    name=rng.choice(country.first),
                )
            bodies.add(body)
            created = self.epoch + timedelta(seconds=rng.randrange(365 * 86400))
            self.notes.append(
                [f"N{len(self.notes) + 1:06d}", company_id, body, created.isoformat()]
            )


def _write(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def generate(out_dir: Path, companies: int, seed: int = 0) -> DatasetSummary:
    """Write ``companies.csv``, ``contacts.csv`` and ``notes.csv`` for ``companies``
    companies into ``out_dir`` (created if missing). Deterministic for a given seed."""
    if companies < 0:
        raise ValueError("companies must be >= 0")
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = _Generator(seed)
    for number in range(1, companies + 1):
        gen.company(number)
    _write(out_dir / "companies.csv", COMPANY_COLUMNS, gen.companies)
    _write(out_dir / "contacts.csv", CONTACT_COLUMNS, gen.contacts)
    _write(out_dir / "notes.csv", NOTE_COLUMNS, gen.notes)
    suppliers = sum(1 for row in gen.companies if row[1] == "supplier")
    return DatasetSummary(
        companies, companies - suppliers, suppliers, len(gen.contacts), len(gen.notes), gen.unicode
    )


# -- mutations ------------------------------------------------------------------------------


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def _chosen(rows: Sequence[object], percent: float, rng: random.Random) -> list[int]:
    count = min(len(rows), round(len(rows) * percent / 100))
    return sorted(rng.sample(range(len(rows)), count))


def _check_sources(sources: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(sources)
    unknown = sorted(set(chosen) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; expected some of {SOURCES}")
    return chosen


def edit_rows(
    folder: Path, percent: float, seed: int, sources: Iterable[str] = SOURCES
) -> dict[str, int]:
    """Change ``percent``% of the rows of each file in ``sources``, in fields both sides
    carry: a client's phone and street, a supplier's website, a contact's title and phone,
    a note's body. Every chosen row really changes. Returns the edited rows per file."""
    edited: dict[str, int] = {}
    for source in _check_sources(sources):
        path = folder / f"{source}.csv"
        header, rows = _read(path)
        col = {name: index for index, name in enumerate(header)}
        rng = random.Random(f"{seed}:edit:{source}")
        chosen = _chosen(rows, percent, rng)
        for index in chosen:
            row = rows[index]
            if source == "companies" and row[col["kind"]] == "supplier":
                row[col["website"]] = (
                    f"https://shop-{rng.randint(1, 10**6)}.{row[0].lower()}.example"
                )
            elif source == "companies":
                row[col["phone"]] = f"+00 {rng.randint(10**8, 10**9 - 1)}"
                row[col["street_line"]] += " (Hof)"
            elif source == "contacts":
                row[col["title"]] = f"{row[col['title']]} (acting)"
                row[col["phone"]] = f"+00 {rng.randint(10**8, 10**9 - 1)}"
            else:
                row[col["body"]] += f" Follow-up #{rng.randint(1, 999)} logged."
        _write(path, header, rows)
        edited[source] = len(chosen)
    return edited


def delete_rows(
    folder: Path, percent: float, seed: int, sources: Iterable[str] = ("contacts", "notes")
) -> dict[str, int]:
    """Remove ``percent``% of the rows of each file in ``sources``. Deleting companies also
    removes their contacts and notes, so the folder stays consistent. Returns the removed
    rows per file (cascaded removals included)."""
    chosen_sources = _check_sources(sources)
    removed: dict[str, int] = {}
    gone_companies: set[str] = set()
    # Companies first, so their children are removed with them.
    for source in sorted(chosen_sources, key=SOURCES.index):
        path = folder / f"{source}.csv"
        header, rows = _read(path)
        drop = set(_chosen(rows, percent, random.Random(f"{seed}:delete:{source}")))
        if source == "companies":
            gone_companies = {rows[index][0] for index in drop}
        kept = [row for index, row in enumerate(rows) if index not in drop]
        _write(path, header, kept)
        removed[source] = len(rows) - len(kept)
    if gone_companies:
        for source in ("contacts", "notes"):
            path = folder / f"{source}.csv"
            header, rows = _read(path)
            kept = [row for row in rows if row[1] not in gone_companies]
            _write(path, header, kept)
            removed[source] = removed.get(source, 0) + len(rows) - len(kept)
    return removed


def set_values(folder: Path, source: str, values: Mapping[str, Mapping[str, str]]) -> int:
    """Set columns of rows by id: ``values`` maps a row id to ``{column: new value}``.
    Raises ValueError for an unknown source, column or id. Returns the rows changed."""
    (source,) = _check_sources([source])
    path = folder / f"{source}.csv"
    header, rows = _read(path)
    col = {name: index for index, name in enumerate(header)}
    unknown = sorted({name for row in values.values() for name in row} - set(col))
    if unknown:
        raise ValueError(f"unknown column(s) {unknown} in {source}.csv")
    missing = set(values) - {row[0] for row in rows}
    if missing:
        raise ValueError(f"no row(s) {sorted(missing)} in {source}.csv")
    changed = 0
    for row in rows:
        new = values.get(row[0])
        if new:
            before = list(row)
            for name, value in new.items():
                row[col[name]] = value
            changed += row != before
    _write(path, header, rows)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """``python tests/benchmarks/dataset.py OUT_DIR --companies N --seed S``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--companies", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summary = generate(args.out_dir, args.companies, args.seed)
    print(
        f"{args.out_dir}: {summary.companies} companies ({summary.clients} clients, "
        f"{summary.suppliers} suppliers, {summary.unicode_names} unicode-heavy names), "
        f"{summary.contacts} contacts, {summary.notes} notes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
