"""Values between Pipedrive's shapes and canonical ones, one slot at a time.

Reading, a property that is null and one that is missing altogether are both empty (the
spec leaves many out rather than send null). Writing, only what the spec allows is sent:
no null where a property is not nullable (an address part, ``job_title``, ``org_id``),
so clearing one sends an empty string or is refused with the field named.

A country travels as a name in Pipedrive (``Poland``) and as an ISO code in canonical
form (``PL``); a note's body is HTML in Pipedrive and plain text in canonical form.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from typing import Any, Final

import pycountry

from connectors.pipedrive._slots import Slot, Where
from connectors.pipedrive._time import parse_time, v1_time
from sync.model import FieldSpec, FieldType, Scalar
from sync.normalize import NormalizationError, normalize_value

__all__ = [
    "ADDRESS_PARTS",
    "address_value",
    "canonical",
    "country_name",
    "html_of",
    "primary_entry",
    "raw_value",
    "text_of_html",
    "with_primary",
    "write_text",
]

ADDRESS_PARTS: Final = (
    "route",
    "street_number",
    "subpremise",
    "postal_code",
    "locality",
    "sublocality",
    "admin_area_level_2",
    "admin_area_level_1",
    "country",
)
"""Every part of an organization's address (each a non-nullable string in the spec)."""

_BREAKS: Final = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})


class _Text(HTMLParser):
    """The text of an HTML fragment, a line per paragraph or line break."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: Sequence[tuple[str, str | None]]) -> None:
        if tag == "br" or (tag in _BREAKS and self.parts and not self.parts[-1].endswith("\n")):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def text_of_html(content: str) -> str:
    """The plain text a note's HTML ``content`` shows."""
    parser = _Text()
    parser.feed(content)
    parser.close()
    return "".join(parser.parts).strip()


def html_of(text: str) -> str:
    """A plain text as note HTML: escaped, its line breaks as ``<br>``."""
    return "<br>".join(html.escape(line, quote=False) for line in text.split("\n"))


def country_name(code: str) -> str:
    """The English name of an ISO country code, as Pipedrive's address holds it."""
    country = pycountry.countries.get(alpha_2=code.upper())
    return str(country.name) if country is not None else code


def primary_entry(entries: object) -> str | None:
    """The value of the entry flagged primary in ``emails`` / ``phones``."""
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        return None
    for entry in entries:
        if isinstance(entry, Mapping) and entry.get("primary") and entry.get("value"):
            return str(entry["value"])
    return None


def with_primary(entries: object, value: str | None) -> list[dict[str, Any]]:
    """``entries`` with the primary one's value set to ``value`` (dropped for None),
    every other entry kept as it was."""
    kept: list[dict[str, Any]] = []
    for entry in entries if isinstance(entries, Sequence) and not isinstance(entries, str) else ():
        if not isinstance(entry, Mapping) or entry.get("primary"):
            continue
        kept.append(
            {
                "value": str(entry.get("value") or ""),
                "primary": False,
                "label": str(entry.get("label") or "work"),
            }
        )
    if value is None:
        return kept
    return [{"value": value, "primary": True, "label": "work"}, *kept]


def address_value(parts: Mapping[str, str]) -> str:
    """The one-line address Pipedrive shows, composed from its parts."""
    street = " ".join(p for p in (parts.get("route"), parts.get("street_number")) if p)
    if parts.get("subpremise"):
        street = f"{street}/{parts['subpremise']}" if street else parts["subpremise"]
    town = " ".join(p for p in (parts.get("postal_code"), parts.get("locality")) if p)
    return ", ".join(p for p in (street, town, parts.get("country")) if p)


def _custom(slot: Slot, raw: object) -> object:
    """A custom field's value as text or number; an enum's option id becomes its label."""
    field = slot.field
    if isinstance(raw, Mapping):
        raw = raw.get("value")  # monetary and the like: {"value": ..., "currency": ...}
    if field is not None and field.is_enum and raw is not None:
        if isinstance(raw, list):
            raw = raw[0] if raw else None
        return field.options.get(raw, raw) if isinstance(raw, int | str) else raw
    return raw


def raw_value(slot: Slot, item: Mapping[str, Any]) -> object:
    """What ``item`` holds for ``slot``, before normalization (None when empty)."""
    where = slot.where
    if where is Where.ADDRESS:
        address = item.get("address")
        return address.get(slot.key) if isinstance(address, Mapping) else None
    if where is Where.CUSTOM:
        custom = item.get("custom_fields")
        return _custom(slot, custom.get(slot.key)) if isinstance(custom, Mapping) else None
    if where in (Where.EMAIL, Where.PHONE):
        return primary_entry(item.get(slot.key))
    value = item.get(slot.key)
    if where is Where.ORG:
        if isinstance(value, Mapping):  # v1 may expand a reference into an object
            value = value.get("value")
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else None
    if where is Where.HTML:
        return text_of_html(value) if isinstance(value, str) else None
    if where is Where.TIME:
        moment = parse_time(value)
        return moment.isoformat() if moment is not None else None
    return value


def canonical(spec: FieldSpec, raw: object, *, verbatim: bool) -> Scalar:
    """The canonical form of ``raw`` (plain stripped text for a ``verbatim`` field).

    Raises `NormalizationError` when ``raw`` has none.
    """
    if raw is None:
        return None
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)  # a number field's 14.0 is the integer 14
    if isinstance(raw, Mapping | list):
        raise NormalizationError(spec.name, raw, "not a plain value")
    if verbatim:
        return str(raw).strip() or None
    return normalize_value(spec, raw)


def write_text(spec: FieldSpec, value: Scalar) -> str | None:
    """A canonical value as the text a Pipedrive property holds."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if spec.type is FieldType.COUNTRY and isinstance(value, str) and len(value) == 2:
        return country_name(value)
    if spec.type is FieldType.DATETIME and isinstance(value, str):
        moment = parse_time(value)
        return v1_time(moment) if moment is not None else value
    return str(value)
