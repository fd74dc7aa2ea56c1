"""JSON text columns: one encoding, so SQLite and PostgreSQL store identical text."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import cast

from sync.errors import StoreError
from sync.model import Scalar, Side
from sync.store.rows import JSONInput, JSONValue, SentValues

__all__ = [
    "decode_object",
    "decode_scalar",
    "decode_scalar_map",
    "decode_sent",
    "decode_value",
    "encode",
]


def _plain(value: object) -> object:
    # Read-only mappings (MappingProxyType in Record.fields) are not dicts to json.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode(value: JSONInput) -> str:
    """Canonical JSON text: sorted keys, no insignificant whitespace."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
    )


def _decode(text: str) -> object:
    try:
        value: object = json.loads(text)
    except ValueError as exc:
        raise StoreError(f"corrupt JSON in the store: {exc}") from exc
    return value


def decode_value(text: str) -> JSONValue:
    """Any stored JSON value."""
    # json.loads builds only str/int/float/bool/None/list/dict: a JSONValue by construction.
    return cast(JSONValue, _decode(text))


def decode_scalar(text: str) -> Scalar:
    """A stored canonical field value (str, int, bool or None)."""
    value = _decode(text)
    if value is None or isinstance(value, str | int | bool):
        return value
    raise StoreError(f"stored value is not a scalar: {text[:80]!r}")


def decode_object(text: str) -> dict[str, JSONValue]:
    """A stored JSON object (cursor, run summary)."""
    value = _decode(text)
    if not isinstance(value, dict):
        raise StoreError(f"stored value is not a JSON object: {text[:80]!r}")
    return value


def decode_scalar_map(text: str) -> dict[str, Scalar]:
    """A stored base record: field name -> canonical value."""
    value = _decode(text)
    if not isinstance(value, dict):
        raise StoreError(f"stored base is not a JSON object: {text[:80]!r}")
    for name, item in value.items():
        if item is not None and not isinstance(item, str | int | bool):
            raise StoreError(f"stored base field {name!r} is not a scalar")
    return value


def decode_sent(text: str) -> SentValues:
    """What a link's updates sent (side -> field -> values), as `StoreTx.note_sent` wrote it."""
    value = _decode(text)
    if not isinstance(value, dict):
        raise StoreError(f"stored sent values are not a JSON object: {text[:80]!r}")
    sent: dict[Side, dict[str, tuple[Scalar, ...]]] = {}
    for side, fields in value.items():
        if side not in {s.value for s in Side} or not isinstance(fields, dict):
            raise StoreError(f"stored sent values name no side: {text[:80]!r}")
        sent[Side(side)] = {}
        for name, values in fields.items():
            if not isinstance(values, list) or not all(
                item is None or isinstance(item, str | int | bool) for item in values
            ):
                raise StoreError(f"stored sent values of {name!r} are not scalars")
            sent[Side(side)][name] = tuple(values)
    return sent
