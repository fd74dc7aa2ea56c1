"""The mapping wrapper honours the connector contract over the connector it wraps."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors.base import Connector
from connectors.mapped import MappingConnector, wrap_crm
from connectors.memory import IncrementalMemoryConnector
from connectors.testing import ConnectorContract
from sync.mapping import MappingConfig
from sync.model import EntityKind

# CRM status words for canonical ones: writes and reads translate, the contract sees only
# canonical values.
CONFIG = MappingConfig.model_validate(
    {
        "company": {
            "fields": {
                "status": {
                    "field": "status",
                    "values": {"Customer - Active": "active", "Customer - Lost": "archived"},
                }
            }
        }
    }
)


class TestMappingContract(ConnectorContract):
    """Over an incremental side with a deletes feed for contacts: the wrapper must pass
    capabilities per entity, cursors, deletes and batches through."""

    persistent = False

    @pytest.fixture
    def connector_factory(self) -> Callable[[], Connector]:
        def build() -> Connector:
            inner = IncrementalMemoryConnector(deletes_feed={EntityKind.CONTACT})
            wrapped = wrap_crm(inner, CONFIG)
            assert isinstance(wrapped, MappingConnector)
            return wrapped

        return build
