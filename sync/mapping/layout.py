"""How a CRM names things: the part of a field mapping a connector applies itself.

`connectors.mapped` turns the ``[mapping.*]`` tables into a `FieldLayout` for connectors that
address fields by name (the files connector: CSV headers). Renaming a CRM field and
reading a company's kind can only be done where the raw names and cells exist, so a
connector opts in by implementing `LayoutAware`; everything else a mapping does (value
maps, constants, defaults) works on values and is done by `connectors.mapped.MappingConnector`
around any connector.

``verbatim`` fields are handed over as plain text, exactly as the CRM holds them (stripped),
and written back as given: the mapping translates them (``Deutschland`` -> ``DE``), which
a connector normalizing them first would refuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from sync.model import EntityKind

__all__ = ["DEFAULT_KIND_LABELS", "FieldLayout", "LayoutAware", "fold"]

DEFAULT_KIND_LABELS: Mapping[EntityKind, str] = MappingProxyType(
    {EntityKind.CLIENT: "client", EntityKind.COUNTERPARTY: "supplier"}
)
"""The ``kind`` cell of a company row without a kind mapping."""

_DEFAULT_KINDS: Mapping[str, EntityKind] = MappingProxyType(
    {"": EntityKind.CLIENT, "client": EntityKind.CLIENT, "supplier": EntityKind.COUNTERPARTY}
)


def fold(text: str) -> str:
    """The form names and values are compared in: stripped, lower-case."""
    return text.strip().lower()


def _empty() -> Mapping[EntityKind, Mapping[str, str]]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class FieldLayout:
    """CRM field names and kind labels of one CRM, for a `LayoutAware` connector.

    The default layout is the identity: canonical names, ``client``/``supplier`` kinds.
    """

    aliases: Mapping[EntityKind, Mapping[str, str]] = field(default_factory=_empty)
    """Per entity: folded CRM field name -> canonical name (or ``id`` / ``kind``)."""
    verbatim: Mapping[EntityKind, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Per entity: canonical fields read and written as plain, untranslated text."""
    kinds: Mapping[str, EntityKind] = field(default_factory=lambda: MappingProxyType({}))
    """Folded CRM kind value -> entity (``client``, ``supplier`` and empty always work)."""
    kind_labels: Mapping[EntityKind, str] = field(default_factory=lambda: DEFAULT_KIND_LABELS)
    """The kind value written for a company created in the CRM."""

    def canonical_name(self, entity: EntityKind, crm_name: str) -> str:
        """The canonical name of the CRM field ``crm_name`` (folded when not mapped)."""
        folded = fold(crm_name)
        return self.aliases.get(entity, {}).get(folded, folded)

    def mapped_names(self, entity: EntityKind) -> frozenset[str]:
        """The canonical names some CRM field is explicitly mapped to."""
        return frozenset(self.aliases.get(entity, {}).values())

    def is_verbatim(self, entity: EntityKind, name: str) -> bool:
        """Whether ``name`` is handed over as untranslated text."""
        return name in self.verbatim.get(entity, frozenset())

    def kind_of(self, text: str) -> EntityKind | None:
        """The entity a company's kind value stands for; None when unknown."""
        folded = fold(text)
        return self.kinds.get(folded) or _DEFAULT_KINDS.get(folded)

    def kind_names(self) -> tuple[str, ...]:
        """The accepted kind values, for messages."""
        return tuple(dict.fromkeys([*self.kinds, "client", "supplier"]))

    def kind_label(self, entity: EntityKind) -> str:
        """The kind value to write for a company of ``entity``."""
        return self.kind_labels.get(entity, DEFAULT_KIND_LABELS[entity])


@runtime_checkable
class LayoutAware(Protocol):
    """A connector that can read and write fields under the CRM's own names."""

    def use_layout(self, layout: FieldLayout) -> None:
        """Apply ``layout`` from now on (before the first read)."""
