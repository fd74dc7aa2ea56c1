"""The HTTP kit on its own: a vendor client is a base URL, headers, an error reader and
limits; errors name the side, secrets never reach messages, retries follow the policy."""

from __future__ import annotations

import httpx
import pytest

from connectors import registry
from connectors.http import ApiClient, ErrorReader, HttpLimits, RetryScope, Side
from sync.config import FlowtlyConfig
from sync.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    NotFound,
    RateLimited,
    TransientError,
    TransportSecurityError,
    ValidationFailed,
    Violation,
)
from sync.flowtly.side import FlowtlySide
from sync.model import EntityKind
from sync.wiring import SANDBOX_URL, build_side

SECRET = "vendor-secret-7f3a9c"
DEMO = Side("demo", "DemoCRM", "crm")


def _message(body: object) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return None


def _violations(body: object) -> tuple[Violation, ...]:
    if not isinstance(body, dict):
        return ()
    return tuple(Violation(str(k), str(v)) for k, v in body.get("fields", {}).items())


READER = ErrorReader(_message, _violations)


async def _no_sleep(_: float) -> None:
    return None


def _client(handler: httpx.MockTransport, **limits: float) -> ApiClient:
    return ApiClient(
        "https://demo.example/api/v1",
        DEMO,
        READER,
        headers={"Authorization": f"Bearer {SECRET}"},
        secrets=(SECRET,),
        limits=HttpLimits(rate_limit=0, **limits),  # type: ignore[arg-type]
        transport=handler,
        sleep=_no_sleep,
    )


async def test_statuses_become_side_neutral_errors_naming_the_side() -> None:
    answers = {
        "/api/v1/a": httpx.Response(401, json={"error": "bad token"}),
        "/api/v1/b": httpx.Response(404, json={"error": "no such company"}),
        "/api/v1/c": httpx.Response(422, json={"error": "invalid", "fields": {"name": "empty"}}),
    }
    transport = httpx.MockTransport(lambda request: answers[request.url.path])
    async with _client(transport) as client:
        with pytest.raises(AuthenticationError) as auth:
            await client.send("GET", "a")
        with pytest.raises(NotFound) as missing:
            await client.send("GET", "b")
        with pytest.raises(ValidationFailed) as invalid:
            await client.send("PATCH", "c", body={"name": ""})
    assert (auth.value.side, missing.value.side, invalid.value.side) == ("demo",) * 3
    assert str(missing.value) == "GET /api/v1/b failed: HTTP 404: no such company"
    assert invalid.value.violations == (Violation("name", "empty"),)
    assert type(missing.value) is NotFound  # side-neutral: no vendor's subclass


async def test_a_secret_echoed_by_the_server_never_reaches_the_message() -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(400, json={"error": f"token {SECRET} is not valid here"})
    )
    async with _client(transport) as client:
        with pytest.raises(ValidationFailed) as caught:
            await client.send("GET", "x")
    assert SECRET not in str(caught.value)
    assert SECRET not in (caught.value.detail or "")
    assert SECRET not in repr(client)


async def test_get_is_retried_a_post_that_may_have_landed_is_not() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if len(seen) == 1 or request.method == "POST":
            return httpx.Response(503, json={"error": "busy"})
        return httpx.Response(200, json={"ok": True})

    async with _client(httpx.MockTransport(handler)) as client:
        assert await client.send("GET", "x") == {"ok": True}
        with pytest.raises(TransientError):
            await client.send("POST", "x", body={"name": "Acme"})
        assert client.stats.retries == 1
    assert seen == ["GET", "GET", "POST"]


async def test_rate_limited_then_answered_within_the_retry_after_cap() -> None:
    answers = iter(
        [httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200, json=[1])]
    )
    async with _client(httpx.MockTransport(lambda request: next(answers))) as client:
        assert await client.send("GET", "x", scope=RetryScope.IDEMPOTENT) == [1]
        assert client.stats.rate_limited == 1


async def test_requests_carry_the_client_headers_and_their_body_type_but_no_cookie() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={}, headers={"Set-Cookie": "session=abc; Path=/"})

    async with _client(httpx.MockTransport(handler)) as client:
        await client.send("POST", "x", body={"name": "Acme"})
        await client.send("PATCH", "x", body={}, content_type="application/merge-patch+json")
        await client.send("GET", "x")
    assert [r.headers.get("Content-Type") for r in seen] == [
        "application/json",
        "application/merge-patch+json",
        None,
    ]
    assert {r.headers["Authorization"] for r in seen} == {f"Bearer {SECRET}"}
    # A cookie an answer sets never rides along: the token is the only credential.
    assert [r.headers.get("Cookie") for r in seen] == [None, None, None]
    assert seen[0].extensions["timeout"] == httpx.Timeout(30.0).as_dict()


def test_plain_http_is_refused_off_loopback() -> None:
    with pytest.raises(TransportSecurityError, match="DemoCRM base URL"):
        ApiClient("http://crm.example", DEMO, READER, headers={})
    assert issubclass(TransportSecurityError, ApiError)
    assert issubclass(RateLimited, ApiError)


def test_flowtly_is_a_registered_connector() -> None:
    assert registry.get("flowtly") is FlowtlySide
    assert FlowtlySide.settings_model is FlowtlyConfig


async def test_build_side_makes_the_flowtly_connector_like_any_other() -> None:
    from sync.sandbox import SandboxSettings, create_app

    transport = httpx.ASGITransport(app=create_app(SandboxSettings(token="kit-token-123")))
    side = build_side(
        "flowtly",
        "flowtly",
        {"base_url": SANDBOX_URL, "token": "kit-token-123", "rate_limit": 0},
        transport=transport,
    )
    async with side:
        batches = [batch async for batch in side.read(EntityKind.CLIENT)]
        stats = side.request_stats()
    assert isinstance(side, FlowtlySide)
    assert batches  # a listing, even of an empty account, ends in a batch
    assert stats is not None
    assert stats.by_method["GET"] >= 1


def test_build_side_names_the_key_of_a_bad_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        build_side("flowtly", "flowtly", {"concurrency": 0})
    assert caught.value.key == "flowtly.concurrency"
    with pytest.raises(ConfigError) as unknown:
        build_side("crm", "no-such-connector", {})
    assert unknown.value.key == "crm.type"
