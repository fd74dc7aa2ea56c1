"""The Pipedrive connector honours the connector contract, against the Pipedrive fake
(every request and answer validated against Pipedrive's OpenAPI documents)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from connectors.base import Connector
from connectors.testing import ConnectorContract
from tests.fakes.pipedrive import FakeTime, PipedriveFake, connector_for, provision


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def fake(fake_time: FakeTime) -> Iterator[PipedriveFake]:
    server = PipedriveFake(clock=fake_time.clock, burst_limit=40)
    provision(server)
    yield server
    assert server.violations == [], "traffic broke Pipedrive's OpenAPI documents"


class TestPipedriveContract(ConnectorContract):
    @pytest.fixture
    def connector_factory(
        self, fake: PipedriveFake, fake_time: FakeTime
    ) -> Callable[[], Connector]:
        return lambda: connector_for(fake, fake_time)


class TestPipedriveWithoutKindContract(ConnectorContract):
    """An account without the Flowtly fields: clients, contacts and notes only."""

    @pytest.fixture
    def connector_factory(self, fake_time: FakeTime) -> Iterator[Callable[[], Connector]]:
        server = PipedriveFake(clock=fake_time.clock)
        yield lambda: connector_for(server, fake_time)
        assert server.violations == []
