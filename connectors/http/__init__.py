"""The HTTP kit every API side is built on (Flowtly and the CRM APIs alike).

Public names are re-exported here; modules whose name starts with ``_`` are private.
"""

from connectors.http.transport import network_transport

__all__ = ["network_transport"]
