"""Pipedrive's limits: the burst window is paced before it answers 429, a 429 is waited
out for at least a window, the daily token budget stops the run, and the token costs
the connector counts are the ones Pipedrive's OpenAPI documents state."""

from __future__ import annotations

import pytest

from connectors.pipedrive._budget import TOKEN_COSTS, token_cost
from connectors.testing import read_all
from sync.errors import BudgetExhausted
from sync.model import EntityKind
from tests.fakes.pipedrive import FakeTime, PipedriveFake, connector_for
from tests.fakes.pipedrive._spec import token_costs

CLIENT = EntityKind.CLIENT


def test_token_costs_are_those_the_spec_states() -> None:
    documented = token_costs()
    assert {key: documented.get(key) for key in TOKEN_COSTS} == dict(TOKEN_COSTS)
    assert token_cost("PATCH", "/api/v2/organizations/123") == 5
    assert token_cost("DELETE", "/api/v1/notes/7") == 6


@pytest.mark.asyncio
async def test_the_burst_window_is_paced_without_a_single_429() -> None:
    time = FakeTime()
    fake = PipedriveFake(clock=time.clock, burst_limit=5)
    async with connector_for(fake, time, rate_limit=0, concurrency=1) as crm:
        for n in range(30):
            await crm.create(CLIENT, {"name": f"Acme {n}"})
    assert fake.rate_limited == 0
    assert crm.limits.paced > 0
    assert fake.violations == []


@pytest.mark.asyncio
async def test_a_429_is_waited_out_for_a_window_then_retried() -> None:
    time = FakeTime()
    fake = PipedriveFake(clock=time.clock)
    async with connector_for(fake, time) as crm:
        fake.fail_next("/api/v2/organizations", 429)
        slept = time.slept
        created = await crm.create(CLIENT, {"name": "Acme"})
    assert created.id
    assert time.slept - slept >= 2.0
    assert fake.calls[("POST", "/api/v2/organizations")] == 1


@pytest.mark.asyncio
async def test_a_spent_daily_budget_stops_before_sending_more() -> None:
    time = FakeTime()
    fake = PipedriveFake(clock=time.clock, daily_tokens=40)
    async with connector_for(fake, time) as crm:  # opening costs 20 of the 40
        for n in range(4):
            await crm.create(CLIENT, {"name": f"Acme {n}"})  # 5 each: none left after
        with pytest.raises(BudgetExhausted) as spent:
            await crm.create(CLIENT, {"name": "Acme 4"})
    assert "daily API token budget is spent" in str(spent.value)
    assert fake.rate_limited == 0  # stopped by what the headers said, not by a 429
    assert fake.daily_tokens == 0
    assert len(fake.state.organizations) == 4


@pytest.mark.asyncio
async def test_a_429_for_the_spent_budget_stops_at_once() -> None:
    time = FakeTime()
    fake = PipedriveFake(clock=time.clock)
    async with connector_for(fake, time) as crm:
        fake.daily_tokens = 0  # another integration spent the day's tokens meanwhile
        with pytest.raises(BudgetExhausted):
            await read_all(crm, CLIENT)
    assert fake.rate_limited == 1


@pytest.mark.asyncio
async def test_the_reserve_is_left_for_other_integrations() -> None:
    time = FakeTime()
    fake = PipedriveFake(clock=time.clock, daily_tokens=1000)
    async with connector_for(fake, time, token_reserve=975) as crm:  # opening costs 20
        await crm.create(CLIENT, {"name": "Acme"})  # 5 more: 975 left
        with pytest.raises(BudgetExhausted, match="token_reserve"):
            await crm.create(CLIENT, {"name": "Acme 2"})
    assert fake.daily_tokens == 975


@pytest.mark.asyncio
async def test_a_passing_server_error_is_retried_within_the_listing() -> None:
    time = FakeTime()
    fake = PipedriveFake(clock=time.clock)
    async with connector_for(fake, time) as crm:
        created = await crm.create(CLIENT, {"name": "Acme"})
        fake.fail_next("/api/v2/organizations", 503)
        batches = await read_all(crm, CLIENT)
    assert [r.id for b in batches for r in b.records] == [created.id]
    assert batches[-1].incomplete is None
    assert fake.violations == []
