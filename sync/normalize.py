"""Canonical form of field values, record fingerprints and natural keys.

This module defines what "equal" means for the whole sync: two sides agree on a field when
their normalized values are equal, and a record changed when its fingerprint changed.
Every connector normalizes what it reads through `normalize_value` / `normalize_fields`,
so the engine only ever compares canonical values.

Normalization is idempotent: normalizing a canonical value returns it unchanged. The
functions here run for every field of every record on every run, so they avoid
re-computing lookups (country and currency tables are cached).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import pycountry

from sync.model import SCHEMAS, EntityKind, FieldSpec, FieldType, Record, Scalar

__all__ = [
    "NormalizationError",
    "compact_tax_id",
    "fingerprint",
    "natural_key",
    "normalize_fields",
    "normalize_value",
]


class NormalizationError(ValueError):
    """A raw value that has no canonical form for its field (e.g. an unknown country)."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"field {field!r}: {reason} (got {value!r})")


# Names pycountry does not resolve but which are common in CRMs and on VAT numbers.
_COUNTRY_ALIASES: Mapping[str, str] = {
    "UK": "GB",
    "EL": "GR",
}

# EU VAT numbers use a prefix that is not the ISO code for Greece.
_VAT_PREFIXES: Mapping[str, tuple[str, ...]] = {"GR": ("GR", "EL")}

_TAX_ID_JUNK = str.maketrans(dict.fromkeys(" \t\r\n\v\f\xa0\u2007\u2009\u202f./\\-"))
_WHITESPACE = re.compile(r"\s+")
_INTEGER = re.compile(r"[+-]?\d+")
_TRUE = frozenset({"true", "1", "yes", "y", "t", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "f", "off"})


@lru_cache(maxsize=4096)
def _country_code(text: str) -> str | None:
    alias = _COUNTRY_ALIASES.get(text.upper())
    if alias is not None:
        return alias
    try:
        country = pycountry.countries.lookup(text)
    except LookupError:
        return None
    return str(country.alpha_2)


@lru_cache(maxsize=1024)
def _currency_code(text: str) -> str | None:
    code = text.upper()
    if len(code) != 3 or pycountry.currencies.get(alpha_3=code) is None:
        return None
    return code


def _text(spec: FieldSpec, raw: object) -> Scalar:
    text = raw.strip() if isinstance(raw, str) else str(raw).strip()
    return text or None


def _email(spec: FieldSpec, raw: object) -> Scalar:
    if not isinstance(raw, str):
        raise NormalizationError(spec.name, raw, "an e-mail address must be text")
    text = raw.strip().lower()
    return text or None


def _country(spec: FieldSpec, raw: object) -> Scalar:
    if not isinstance(raw, str):
        raise NormalizationError(spec.name, raw, "a country must be text")
    text = raw.strip()
    if not text:
        return None
    code = _country_code(text)
    if code is None:
        raise NormalizationError(spec.name, raw, "not an ISO 3166 country code or name")
    return code


def _currency(spec: FieldSpec, raw: object) -> Scalar:
    if not isinstance(raw, str):
        raise NormalizationError(spec.name, raw, "a currency must be text")
    text = raw.strip()
    if not text:
        return None
    code = _currency_code(text)
    if code is None:
        raise NormalizationError(spec.name, raw, "not an ISO 4217 currency code")
    return code


def compact_tax_id(value: str) -> str:
    """A tax id without spaces, dots, dashes and slashes, upper-cased (``"pl 465-848"``
    -> ``"PL465848"``)."""
    return value.translate(_TAX_ID_JUNK).upper()


def _tax_id(spec: FieldSpec, raw: object) -> Scalar:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise NormalizationError(spec.name, raw, "a tax id must be text")
    return compact_tax_id(str(raw)) or None


def _integer(spec: FieldSpec, raw: object) -> Scalar:
    if isinstance(raw, bool):
        raise NormalizationError(spec.name, raw, "expected an integer, got a boolean")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return None
        if (text.isascii() and text.isdigit()) or _INTEGER.fullmatch(text):
            return int(text)
        raise NormalizationError(spec.name, raw, "not an integer")
    if isinstance(raw, float | Decimal) and raw == raw and int(raw) == raw:
        return int(raw)
    raise NormalizationError(spec.name, raw, "not an integer")


def _boolean(spec: FieldSpec, raw: object) -> Scalar:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        text = raw.strip().lower()
        if not text:
            return None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise NormalizationError(spec.name, raw, "not a boolean (true/false, 1/0, yes/no)")


def _decimal(spec: FieldSpec, raw: object) -> Scalar:
    if isinstance(raw, bool):
        raise NormalizationError(spec.name, raw, "expected a decimal number, got a boolean")
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return None
    elif isinstance(raw, int | Decimal):
        text = str(raw)
    elif isinstance(raw, float):
        text = repr(raw)
    else:
        raise NormalizationError(spec.name, raw, "not a decimal number")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise NormalizationError(spec.name, raw, "not a decimal number") from None
    if not number.is_finite():
        raise NormalizationError(spec.name, raw, "not a finite decimal number")
    if number.is_zero():
        return "0"
    return format(number.normalize(), "f")


def _datetime(spec: FieldSpec, raw: object) -> Scalar:
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, date):
        moment = datetime(raw.year, raw.month, raw.day)
    elif isinstance(raw, str):
        text = raw.strip()
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise NormalizationError(spec.name, raw, "not an ISO 8601 date-time") from None
    else:
        raise NormalizationError(spec.name, raw, "not an ISO 8601 date-time")
    # A moment without an offset is taken as UTC: both sides exchange UTC times.
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat()


def _reference(spec: FieldSpec, raw: object) -> Scalar:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise NormalizationError(spec.name, raw, "a reference must be an id")
    text = raw.strip() if isinstance(raw, str) else str(raw)
    return text or None


_NORMALIZERS: Mapping[FieldType, Callable[[FieldSpec, object], Scalar]] = {
    FieldType.TEXT: _text,
    FieldType.EMAIL: _email,
    FieldType.COUNTRY: _country,
    FieldType.CURRENCY: _currency,
    FieldType.TAX_ID: _tax_id,
    FieldType.INTEGER: _integer,
    FieldType.BOOLEAN: _boolean,
    FieldType.DECIMAL: _decimal,
    FieldType.DATETIME: _datetime,
    FieldType.REFERENCE: _reference,
}


# Results for text input of the types whose values repeat a lot across records (codes,
# flags, numbers, dates), so a run over many records parses each distinct text once.
# Bounded: cleared when full, so hostile input cannot grow it without limit.
_MEMO_TYPES = frozenset(
    {
        FieldType.COUNTRY,
        FieldType.CURRENCY,
        FieldType.INTEGER,
        FieldType.BOOLEAN,
        FieldType.DECIMAL,
        FieldType.DATETIME,
    }
)
_MEMO: dict[FieldType, dict[str, Scalar]] = {kind: {} for kind in _MEMO_TYPES}
_MEMO_LIMIT = 20_000
_INTERN_UP_TO = 64
"""Texts of a field that `repeats` are interned (`sys.intern`) up to this length: longer
ones rarely repeat."""


def normalize_value(spec: FieldSpec, raw: object) -> Scalar:
    """The canonical form of ``raw`` for the field ``spec``; ``None`` for empty values.

    Text is stripped and otherwise kept verbatim (formula-like values included). Raises
    `NormalizationError` when ``raw`` has no canonical form for the field's type.
    """
    if raw is None:
        return None
    kind = spec.type
    if type(raw) is str:
        if kind is FieldType.TEXT or kind is FieldType.REFERENCE:
            # The common case, inlined: most fields are plain text.
            text = raw.strip()
            if not text:
                return None
            if spec.repeats and len(text) <= _INTERN_UP_TO:
                return sys.intern(text)
            return text
        memo = _MEMO.get(kind)
        if memo is not None:
            if raw in memo:
                return memo[raw]
            value = _NORMALIZERS[kind](spec, raw)
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[raw] = value
            return value
    return _NORMALIZERS[kind](spec, raw)


def normalize_fields(
    entity: EntityKind, raw: Mapping[str, object]
) -> tuple[dict[str, Scalar], list[NormalizationError]]:
    """Normalize every field of ``raw`` for ``entity``.

    Returns the canonical values of the fields that normalized and one error per field
    that did not (including names that are not fields of ``entity``); never raises for
    a bad value, so a caller can reject one field or the whole record as it sees fit.
    """
    schema = SCHEMAS[entity]
    values: dict[str, Scalar] = {}
    errors: list[NormalizationError] = []
    for name, value in raw.items():
        spec = schema.get(name)
        if spec is None:
            errors.append(NormalizationError(name, value, f"not a field of {entity}"))
            continue
        try:
            values[name] = normalize_value(spec, value)
        except NormalizationError as error:
            errors.append(error)
    return values, errors


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@lru_cache(maxsize=256)
def _layout(names: frozenset[str]) -> tuple[tuple[str, ...], bytes]:
    # The sorted names and their JSON, hashed ahead of the values: the values then
    # encode as a flat list, which is several times faster than name/value pairs.
    ordered = tuple(sorted(names))
    return ordered, _ENCODER.encode(ordered).encode("utf-8") + b"\n"


_SCHEMA_LAYOUTS: Mapping[EntityKind, tuple[tuple[str, ...], bytes]] = {
    entity: _layout(frozenset(schema)) for entity, schema in SCHEMAS.items()
}


def fingerprint(
    entity: EntityKind, fields: Mapping[str, Scalar], names: Iterable[str] | None = None
) -> str:
    """A stable hash (32 hex chars of SHA-256) of the canonical values of ``names``.

    ``names`` defaults to every canonical field of ``entity``; a name missing from
    ``fields`` counts as ``None``, so "not carried" and "empty" hash alike. The hash
    depends only on the names and values (not on dict order, process or hash seed).
    """
    if names is None:
        ordered, header = _SCHEMA_LAYOUTS[entity]
    else:
        ordered, header = _layout(names if isinstance(names, frozenset) else frozenset(names))
    values = _ENCODER.encode(list(map(fields.get, ordered)))
    return hashlib.sha256(header + values.encode("utf-8")).hexdigest()[:32]


def _company_key(fields: Mapping[str, Scalar]) -> str | None:
    country = fields.get("country")
    country_code = country if isinstance(country, str) else None
    tax = fields.get("vat_number") or fields.get("tin")
    if tax is not None:
        compact = compact_tax_id(str(tax))
        prefixes: tuple[str, ...] = ()
        if country_code:
            prefixes = _VAT_PREFIXES.get(country_code, (country_code,))
        for prefix in prefixes:
            if compact.startswith(prefix) and len(compact) > len(prefix):
                compact = compact[len(prefix) :]
                break
        if compact:
            # Tax numbers are unique within a country only: DK40940993 and FI40940993
            # are two companies, so the country stays in the key once its prefix is gone.
            return f"tax:{country_code}:{compact}" if country_code else f"tax:{compact}"
    name = fields.get("name")
    if name is None:
        return None
    folded = _WHITESPACE.sub(" ", str(name)).strip().casefold()
    if not folded:
        return None
    return f"name:{folded}|{country_code or ''}"


def natural_key(
    record_or_fields: Record | Mapping[str, Scalar], entity: EntityKind | None = None
) -> str | None:
    """The key that recognizes the same real-world record on both sides, or ``None``.

    Companies match by country plus tax id (VAT number, else TIN; a leading country prefix
    equal to the company's country is ignored), else by case-folded name plus country; contacts by
    e-mail; notes by a hash of their body. ``entity`` may be omitted for a `Record`.
    """
    if isinstance(record_or_fields, Record):
        fields: Mapping[str, Scalar] = record_or_fields.fields
        kind = entity or record_or_fields.entity
    else:
        if entity is None:
            raise TypeError("natural_key() needs the entity for a plain mapping of fields")
        fields = record_or_fields
        kind = entity
    if kind is EntityKind.CLIENT or kind is EntityKind.COUNTERPARTY:
        return _company_key(fields)
    if kind is EntityKind.CONTACT:
        email = fields.get("email")
        if email is None:
            return None
        text = str(email).strip().lower()
        return "email:" + text if text else None
    body = fields.get("body")
    if body is None:
        return None
    text = str(body).strip()
    if not text:
        return None
    return "note:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
