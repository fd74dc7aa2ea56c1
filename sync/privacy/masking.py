"""A structlog processor masking sensitive field values (tax ids and configured fields).

Values are masked wherever the event names their field: an event key or a mapping key
equal to a sensitive field (``tin=...``, ``{"vat_number": ...}``), and change or finding
entries that carry the field name beside the values (``{"field": "tin", "old": ..., "new":
...}``, and `FieldChange`, `ParkedConflict` or `RecordError` objects alike).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import structlog

from sync.model import SCHEMA_SENSITIVE, Scalar
from sync.privacy.redact import mask

__all__ = ["mask_sensitive"]

_VALUE_KEYS = ("old", "new", "value", "base", "crm", "flowtly")
"""Keys of an entry that hold values of the entry's ``field``."""
_MAX_DEPTH = 8


def _hide(value: Any) -> Scalar:
    if value is None or isinstance(value, str | int | bool):
        return mask(value)
    return mask(str(value))


def mask_sensitive(fields: Iterable[str] = ()) -> structlog.types.Processor:
    """A processor masking the values of the model's sensitive fields and of ``fields``."""
    sensitive = SCHEMA_SENSITIVE | frozenset(fields)

    def entry(value: Mapping[Any, Any], depth: int) -> dict[Any, Any]:
        named = value.get("field")
        hides_values = isinstance(named, str) and named in sensitive
        return {
            key: _hide(item)
            if str(key) in sensitive or (hides_values and key in _VALUE_KEYS)
            else clean(item, depth + 1)
            for key, item in value.items()
        }

    def clean(value: Any, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH or isinstance(value, str | int | float | bool) or value is None:
            return value
        if isinstance(value, Mapping):
            return entry(value, depth)
        if isinstance(value, list | tuple):
            return type(value)(clean(item, depth + 1) for item in value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            named = getattr(value, "field", None)
            if isinstance(named, str) and named in sensitive:
                hidden = {
                    key: _hide(getattr(value, key)) for key in _VALUE_KEYS if hasattr(value, key)
                }
                return dataclasses.replace(value, **hidden)
        return value

    def processor(
        _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event):
            event[key] = _hide(event[key]) if key in sensitive else clean(event[key])
        return event

    return processor
