"""The individual data-quality checks behind `sync.quality.gates.Gates`.

Each check looks at one canonical value (plus, for tax ids, the company's country) and
returns the reason it is not acceptable, or ``None``. Levels, fields and entities are
`sync.quality.gates`'s business; nothing here knows about configuration.

Tax ids are validated with python-stdnum (format and checksum):

* VAT numbers: EU member states (prefix ``EL`` for Greece, ``XI`` for Northern Ireland) go
  through ``stdnum.eu.vat``; other countries through ``stdnum.<cc>.vat`` when stdnum has
  one (plus ``ch.uid`` and ``no.orgnr``, the forms of CH and NO numbers without their
  ``MWST``/``MVA`` suffix); a country stdnum has no module for is not checked.
* TINs: any of the forms a company or sole trader may use in that country passes:
  ``stdnum.<cc>.tin`` when it exists, the per-country list in `TIN_MODULES` (e.g. PL
  ``nip``/``pesel``, DE ``stnr``/``idnr``, FR ``siren``/``siret``/``nif``), and the
  country's VAT number with or without its prefix. Some forms have no check digit in
  stdnum (a German Steuernummer is checked for its format only), so a TIN of such a
  country is only as strict as its loosest form.

A number may carry its country prefix or not: every plausible reading is tried and the
value passes when one of them validates, so a rejection always means "no reading of this
value is a valid number", never a guess about which reading was meant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from types import MappingProxyType, ModuleType

import pycountry
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import (
    InvalidChecksum,
    InvalidComponent,
    InvalidFormat,
    InvalidLength,
    ValidationError,
)
from stdnum.util import get_cc_module

from sync.normalize import compact_tax_id

__all__ = [
    "TIN_MODULES",
    "country_problem",
    "currency_problem",
    "email_problem",
    "phone_problem",
    "tin_problem",
    "vat_problem",
]

TIN_MODULES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "AT": ("tin", "uid"),
        "BE": ("vat", "nn"),
        "CZ": ("dic", "rc"),
        "DE": ("stnr", "idnr", "vat"),
        "DK": ("cvr", "cpr"),
        "ES": ("nif",),
        "FI": ("ytunnus", "hetu", "alv"),
        "FR": ("siren", "siret", "nif", "tva"),
        "GB": ("utr", "vat"),
        "IE": ("vat", "pps"),
        "IT": ("iva", "codicefiscale"),
        "NL": ("bsn", "btw"),
        "NO": ("orgnr", "mva"),
        "PL": ("nip", "pesel"),
        "PT": ("nif",),
        "RO": ("cui", "cnp"),
        "SE": ("orgnr", "personnummer", "vat"),
        "SK": ("dph", "rc"),
    }
)
"""stdnum module names tried for a TIN, by country (besides ``<cc>.tin`` and VAT)."""

_EXTRA_VAT: Mapping[str, tuple[str, ...]] = MappingProxyType({"CH": ("uid",), "NO": ("orgnr",)})

# The VAT prefix of a country when it is not the ISO code.
_VAT_PREFIX: Mapping[str, str] = MappingProxyType({"GR": "EL"})
_EU_PREFIXES = frozenset(cc.upper() for cc in eu_vat.MEMBER_STATES) | {"EL"}

_STDNUM_ERRORS = (ValidationError, ValueError, IndexError, KeyError)
_ERROR_RANK: Mapping[type[Exception], int] = MappingProxyType(
    {InvalidLength: 1, InvalidFormat: 2, InvalidComponent: 3, InvalidChecksum: 4}
)

_EMAIL_LOCAL = r"[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*"
_EMAIL_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_EMAIL_TLD = r"(?:[^\W\d_]{2,63}|xn--[a-z0-9-]+)"
_EMAIL = re.compile(rf"(?P<local>{_EMAIL_LOCAL})@(?P<domain>(?:{_EMAIL_LABEL}\.)+{_EMAIL_TLD})")

_PHONE_CHARS = re.compile(r"\+?[\d\s().\-/]+")
_PHONE_EXTENSION = re.compile(r"\s*(?:ext\.?|x|#)\s*\d{1,6}\s*$", re.IGNORECASE)
_PHONE_MIN_DIGITS, _PHONE_MAX_DIGITS = 7, 15


def _country_code(country: str | None) -> str | None:
    """``country`` when it looks like an alpha-2 code (the country gate judges the rest)."""
    if country is None or len(country) != 2 or not country.isalpha():
        return None
    return country.upper()


@lru_cache(maxsize=512)
def _module(cc: str, name: str) -> ModuleType | None:
    module = get_cc_module(cc, name)
    return module if isinstance(module, ModuleType) else None


def _modules(cc: str, names: Iterable[str]) -> list[ModuleType]:
    found: list[ModuleType] = []
    for name in names:
        module = _module(cc, name)
        if module is not None and module not in found:
            found.append(module)
    return found


def _closest_error(modules: Iterable[ModuleType], candidates: Iterable[str]) -> str | None:
    """None when a module validates a candidate, else the failure that got furthest.

    A checksum failure says more than a wrong length (the number had the right shape for
    that module), so it is the one reported when several readings fail.
    """
    best: tuple[int, str] | None = None
    readings = tuple(candidates)
    for module in modules:
        for candidate in readings:
            try:
                module.validate(candidate)
            except _STDNUM_ERRORS as exc:
                rank = _ERROR_RANK.get(type(exc), 0)
                if best is None or rank > best[0]:
                    best = (rank, str(exc) or type(exc).__name__)
            else:
                return None
    return best[1] if best is not None else "not a valid number"


def _readings(number: str, prefix: str | None) -> list[str]:
    """The number as given, and with ``prefix`` added or removed."""
    if not prefix:
        return [number]
    if number.startswith(prefix) and len(number) > len(prefix):
        return [number, number[len(prefix) :]]
    return [number, prefix + number]


def vat_problem(value: str, country: str | None) -> str | None:
    """Why ``value`` is not a valid VAT number of ``country`` (or of its own prefix).

    None when valid, and when no reading of it can be checked (no country, or a country
    stdnum has no VAT module for).
    """
    number = compact_tax_id(value)
    if not number:
        return "empty VAT number"
    cc = _country_code(country)
    own_prefix = _VAT_PREFIX.get(cc, cc) if cc else None
    readings: list[tuple[str, str]] = []  # (prefix, number with that prefix)
    given = number[:2]
    if given.isalpha() and (given in _EU_PREFIXES or _vat_modules(given)):
        readings.append((given, number))
    if own_prefix is not None and given != own_prefix:
        readings.append((own_prefix, own_prefix + number))
    first: str | None = None
    for prefix, prefixed in readings:
        checked, error = _vat_reading(prefix, prefixed)
        if checked and error is None:
            return None
        first = first or error
    return first


def _vat_modules(prefix: str) -> list[ModuleType]:
    if prefix in _EU_PREFIXES:
        return []
    return _modules(prefix, ("vat", *_EXTRA_VAT.get(prefix, ())))


def _vat_reading(prefix: str, prefixed: str) -> tuple[bool, str | None]:
    """(whether stdnum can check this reading, why it is invalid)."""
    if prefix in _EU_PREFIXES:
        try:
            eu_vat.validate(prefixed)
        except _STDNUM_ERRORS as exc:
            return True, f"invalid {prefix} VAT number: {exc}"
        return True, None
    modules = _vat_modules(prefix)
    if not modules:
        return False, None
    error = _closest_error(modules, _readings(prefixed, prefix))
    return True, None if error is None else f"invalid {prefix} VAT number: {error}"


def tin_problem(value: str, country: str | None) -> str | None:
    """Why ``value`` is not a valid tax id in ``country``; None when valid or uncheckable."""
    cc = _country_code(country)
    if cc is None:
        return None
    number = compact_tax_id(value)
    if not number:
        return "empty tax id"
    modules = _modules(cc, ("tin", *TIN_MODULES.get(cc, ()), "vat"))
    if not modules:
        return None
    error = _closest_error(modules, _readings(number, _VAT_PREFIX.get(cc, cc)))
    if error is None:
        return None
    tried = ", ".join(module.__name__.removeprefix("stdnum.") for module in modules)
    return f"invalid {cc} tax id (checked as {tried}): {error}"


def country_problem(value: str) -> str | None:
    """Why ``value`` is not an ISO 3166-1 alpha-2 code."""
    if len(value) == 2 and value.isupper() and pycountry.countries.get(alpha_2=value):
        return None
    return "not an ISO 3166-1 alpha-2 country code"


def currency_problem(value: str) -> str | None:
    """Why ``value`` is not an ISO 4217 currency code."""
    if len(value) == 3 and value.isupper() and pycountry.currencies.get(alpha_3=value):
        return None
    return "not an ISO 4217 currency code"


def email_problem(value: str) -> str | None:
    """Why ``value`` is not a syntactically valid e-mail address (no DNS lookups)."""
    if len(value) > 254:
        return "an e-mail address has at most 254 characters"
    match = _EMAIL.fullmatch(value)
    if match is None:
        return "not a valid e-mail address"
    if len(match.group("local")) > 64:
        return "the part before @ has at most 64 characters"
    return None


def phone_problem(value: str) -> str | None:
    """Why ``value`` does not look like a phone number: digits with the usual separators,
    an optional leading ``+`` and extension, and 7 to 15 digits (E.164's maximum)."""
    number = _PHONE_EXTENSION.sub("", value)
    if not _PHONE_CHARS.fullmatch(number.strip()):
        return "a phone number has only digits, spaces, + ( ) . - / and an extension"
    digits = sum(char.isdigit() for char in number)
    if not _PHONE_MIN_DIGITS <= digits <= _PHONE_MAX_DIGITS:
        return (
            f"a phone number has {_PHONE_MIN_DIGITS} to {_PHONE_MAX_DIGITS} digits "
            f"(this one has {digits})"
        )
    return None
