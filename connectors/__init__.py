"""CRM connectors. Built-ins and third-party connectors are found the same way: through
the entry-point group ``flowtly_sync.connectors`` (see `connectors.registry`)."""

from connectors.base import Capability, ChangeBatch, Connector, ConnectorSettings, Cursor
from connectors.registry import available, get

__all__ = [
    "Capability",
    "ChangeBatch",
    "Connector",
    "ConnectorSettings",
    "Cursor",
    "available",
    "get",
]
