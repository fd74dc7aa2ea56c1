"""The judge itself: traffic that breaks Pipedrive's OpenAPI documents is caught."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.pipedrive import TOKEN, PipedriveFake

pytestmark = pytest.mark.asyncio


async def _get(fake: PipedriveFake, path: str, **params: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=fake.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="https://acme.pipedrive.com") as c:
        return await c.get(path, params=params, headers={"x-api-token": TOKEN})


async def test_a_request_outside_the_spec_is_refused_and_recorded() -> None:
    fake = PipedriveFake()
    answer = await _get(fake, "/api/v2/organizations", sort_by="name")
    assert answer.status_code == 400
    [violation] = fake.violations
    assert "GET /api/v2/organizations" in violation


async def test_two_items_in_one_recents_call_are_refused() -> None:
    fake = PipedriveFake()
    answer = await _get(
        fake, "/api/v1/recents", since_timestamp="2025-01-01 00:00:00", items="person,note"
    )
    assert answer.status_code == 400
    assert len(fake.violations) == 1


async def test_an_answer_outside_the_spec_is_recorded() -> None:
    fake = PipedriveFake()
    fake.state.organizations[1] = {"id": 1, "name": None, "is_deleted": False}
    fake.state.organizations[1]["update_time"] = "2025-01-01T00:00:00Z"
    fake.state.organizations[1]["address"] = {"locality": 7}  # a number where text is due
    answer = await _get(fake, "/api/v2/organizations")
    assert answer.status_code == 200
    assert len(fake.violations) == 1
    assert "response to GET /api/v2/organizations" in fake.violations[0]


async def test_spec_conforming_traffic_passes() -> None:
    fake = PipedriveFake()
    answer = await _get(fake, "/api/v2/organizations", sort_by="update_time", limit="500")
    assert answer.status_code == 200
    assert fake.violations == []
