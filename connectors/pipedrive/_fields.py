"""Pipedrive's field definitions (``/api/v2/organizationFields``, ``/personFields``).

Custom fields are addressed by a 40-character hash (``field_code``) in records, but users
know them by name (``Flowtly vat_number``); a `FieldCatalog` resolves either to the
definition, whose options turn an enum's option id into its label and back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sync.mapping.layout import fold

__all__ = ["FieldCatalog", "PipedriveField", "field_of"]


@dataclass(frozen=True, slots=True)
class PipedriveField:
    """One field definition of an organization or person."""

    code: str
    name: str
    type: str
    custom: bool
    options: Mapping[int | str, str] = field(default_factory=dict)
    """Option id -> label, for ``enum`` and ``set`` fields."""

    @property
    def is_enum(self) -> bool:
        return self.type in ("enum", "set")

    def option_id(self, label: str) -> int | str | None:
        """The id of the option labelled ``label`` (compared folded); None if none is."""
        wanted = fold(label)
        for option_id, text in self.options.items():
            if fold(text) == wanted:
                return option_id
        return None


def field_of(item: Mapping[str, Any]) -> PipedriveField | None:
    """The definition in one member of a fields listing; None when it lacks a code."""
    code = item.get("field_code")
    if not isinstance(code, str) or not code:
        return None
    options: dict[int | str, str] = {}
    for option in item.get("options") or ():
        if isinstance(option, Mapping) and isinstance(option.get("label"), str):
            option_id = option.get("id")
            if isinstance(option_id, int | str):
                options[option_id] = option["label"]
    return PipedriveField(
        code=code,
        name=str(item.get("field_name") or code),
        type=str(item.get("field_type") or "varchar"),
        custom=bool(item.get("is_custom_field")),
        options=options,
    )


class FieldCatalog:
    """The fields of one Pipedrive entity, found by code or by (folded) name."""

    def __init__(self, fields: Iterable[PipedriveField] = ()) -> None:
        self._by_code: dict[str, PipedriveField] = {}
        self._by_name: dict[str, PipedriveField] = {}
        for one in fields:
            self.add(one)

    def add(self, one: PipedriveField) -> None:
        self._by_code[one.code] = one
        # A name two fields share is ambiguous: the first one listed keeps it.
        self._by_name.setdefault(fold(one.name), one)

    def find(self, name_or_code: str) -> PipedriveField | None:
        """The field whose code is ``name_or_code``, else the one so named."""
        return self._by_code.get(name_or_code.strip()) or self._by_name.get(fold(name_or_code))

    @property
    def fields(self) -> Sequence[PipedriveField]:
        return tuple(self._by_code.values())
