"""Field mapping: a CRM's own field names and values <-> canonical ones.

Configured per table (``[mapping.company]``, ``[mapping.contact]``, ``[mapping.note]``):
`config` validates the tables, `compile` turns them into a `CrmMapping`, `layout` is the
half a connector applies itself (renaming fields, reading the company kind), `countries`
reads country names. The other half, values, is applied around any connector by
`connectors.mapped.MappingConnector`.
"""

from sync.mapping.compile import (
    CrmMapping,
    EntityMapping,
    FieldMap,
    compile_mapping,
    mapping_directions,
)
from sync.mapping.config import (
    CompanyField,
    CompanyMapping,
    ContactField,
    ContactMapping,
    CrmKind,
    EntityMappingConfig,
    FieldRule,
    MappedEntity,
    MappingConfig,
    NoteField,
    NoteMapping,
)
from sync.mapping.layout import FieldLayout, LayoutAware, fold

__all__ = [
    "CompanyField",
    "CompanyMapping",
    "ContactField",
    "ContactMapping",
    "CrmKind",
    "CrmMapping",
    "EntityMapping",
    "EntityMappingConfig",
    "FieldLayout",
    "FieldMap",
    "FieldRule",
    "LayoutAware",
    "MappedEntity",
    "MappingConfig",
    "NoteField",
    "NoteMapping",
    "compile_mapping",
    "fold",
    "mapping_directions",
]
