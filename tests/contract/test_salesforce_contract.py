"""The Salesforce connector honours the connector contract against the fake org."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fakes.salesforce import Org, transport
from pydantic import SecretStr

from connectors.base import Connector
from connectors.salesforce import SalesforceConnector, SalesforceSettings
from connectors.testing import ConnectorContract


class Ticking:
    """A clock that moves one second each time it is read (every write stamps anew)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def _settings(org: Org, **extra: object) -> SalesforceSettings:
    return SalesforceSettings(
        instance_url="http://salesforce.test",
        client_id=org.client_id,
        client_secret=SecretStr(org.client_secret),
        rate_limit=0,
        overlap_seconds=0,
        **extra,
    )


class TestSalesforceContract(ConnectorContract):
    @pytest.fixture
    def connector_factory(self) -> Callable[[], Connector]:
        clock = Ticking()
        org = Org(clock=clock)
        wire = transport(org)
        return lambda: SalesforceConnector(_settings(org), transport=wire, now=clock)


class TestSalesforceClassicNotesContract(ConnectorContract):
    @pytest.fixture
    def connector_factory(self) -> Callable[[], Connector]:
        clock = Ticking()
        org = Org(clock=clock, country_picklists=False, custom={"Account": set(), "Contact": set()})
        wire = transport(org)
        return lambda: SalesforceConnector(_settings(org, notes="Note"), transport=wire, now=clock)
