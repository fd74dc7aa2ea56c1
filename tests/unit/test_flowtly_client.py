"""FlowtlyClient over httpx.MockTransport: URLs, pagination, headers, errors, security."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from sync import __version__
from sync.errors import (
    AuthenticationError,
    FlowtlyError,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    TransientError,
    TransportSecurityError,
    ValidationFailed,
    Violation,
)
from sync.flowtly._http_errors import flowtly_message, parse_retry_after, parse_violations
from sync.flowtly.client import FlowtlyClient

TOKEN = "tok-SECRET-8c1f2e"
Handler = Callable[[httpx.Request], httpx.Response]


async def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected sleep({seconds})")


def make_client(
    handler: Handler, base_url: str = "https://api.flowtly.test", **kwargs: Any
) -> FlowtlyClient:
    kwargs.setdefault("rate_limit", 0)
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("sleep", _no_sleep)
    return FlowtlyClient(base_url, TOKEN, transport=httpx.MockTransport(handler), **kwargs)


def ld(body: object, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/ld+json; charset=utf-8", **headers},
    )


def problem(status: int, **body: object) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps({"status": status, **body}).encode(),
        headers={"Content-Type": "application/problem+json; charset=utf-8"},
    )


def paged(pages: dict[str, object]) -> tuple[Handler, list[str]]:
    """A handler serving ``pages`` keyed by path+query, and the log of requested URLs."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        key = request.url.raw_path.decode()
        seen.append(key)
        return ld(pages[key])

    return handler, seen


def hydra_page(ids: list[int], nxt: str | None, *, prefix: str = "", hydra: bool = False) -> object:
    member_key, view_key, next_key = (
        ("hydra:member", "hydra:view", "hydra:next") if hydra else ("member", "view", "next")
    )
    page: dict[str, object] = {
        "@id": f"{prefix}/clients",
        member_key: [{"@id": f"{prefix}/clients/{i}", "id": i} for i in ids],
    }
    if nxt is not None:
        page[view_key] = {next_key: nxt}
    return page


# -- pagination ------------------------------------------------------------------------


@pytest.mark.parametrize("hydra", [False, True], ids=["unprefixed", "hydra-prefixed"])
async def test_iterate_follows_next_links_until_absent(hydra: bool) -> None:
    handler, seen = paged(
        {
            "/clients": hydra_page([1, 2], "/clients?page=2", hydra=hydra),
            "/clients?page=2": hydra_page([3, 4], "/clients?page=3", hydra=hydra),
            "/clients?page=3": hydra_page([5], None, hydra=hydra),
        }
    )
    async with make_client(handler) as client:
        ids = [m["id"] async for m in client.iterate("/clients")]
    assert ids == [1, 2, 3, 4, 5]
    assert seen == ["/clients", "/clients?page=2", "/clients?page=3"]


async def test_iterate_accepts_bare_list_and_missing_member_key() -> None:
    handler, seen = paged({"/things": [{"id": 1}, {"id": 2}], "/empty": {"@id": "/empty"}})
    async with make_client(handler) as client:
        assert [m["id"] async for m in client.iterate("things")] == [1, 2]
        assert [m async for m in client.iterate("empty")] == []
    assert seen == ["/things", "/empty"]


async def test_api_prefix_joins_relative_paths_and_resolves_next_against_origin() -> None:
    handler, seen = paged(
        {
            "/api/clients?status=active": hydra_page(
                [1], "/api/clients?status=active&page=2", prefix="/api"
            ),
            "/api/clients?status=active&page=2": hydra_page([2], None, prefix="/api"),
            "/api/clients/2": {"@id": "/api/clients/2", "id": 2},
        }
    )
    async with make_client(handler, base_url="https://api.flowtly.test/api/") as client:
        members = [m async for m in client.iterate("/clients", {"status": "active"})]
        # an @id already carries the prefix and must not get it twice
        item = await client.get(members[1]["@id"])
        assert client.iri("clients", 2) == "/api/clients/2"
    assert item["id"] == 2
    assert seen == [
        "/api/clients?status=active",
        "/api/clients?status=active&page=2",
        "/api/clients/2",
    ]


async def test_absolute_next_url_on_same_origin_is_followed() -> None:
    handler, seen = paged(
        {
            "/clients": hydra_page([1], "https://api.flowtly.test/clients?page=2"),
            "/clients?page=2": hydra_page([2], None),
        }
    )
    async with make_client(handler) as client:
        assert [m["id"] async for m in client.iterate("/clients")] == [1, 2]
    assert seen == ["/clients", "/clients?page=2"]


async def test_next_link_to_another_origin_is_refused_without_sending_the_token() -> None:
    handler, seen = paged({"/clients": hydra_page([1], "https://evil.test/clients?page=2")})
    async with make_client(handler) as client:
        stream = client.iterate("/clients")
        assert (await anext(stream))["id"] == 1
        with pytest.raises(FlowtlyError, match="not on the Flowtly origin"):
            await anext(stream)
    assert seen == ["/clients"]


async def test_page_size_and_params_are_sent_on_the_first_request_only() -> None:
    handler, seen = paged(
        {
            "/clients?order%5Bname%5D=asc&itemsPerPage=10": hydra_page(
                [1], "/clients?order%5Bname%5D=asc&itemsPerPage=10&page=2"
            ),
            "/clients?order%5Bname%5D=asc&itemsPerPage=10&page=2": hydra_page([2], None),
        }
    )
    async with make_client(handler) as client:
        ids = [
            m["id"] async for m in client.iterate("/clients", {"order[name]": "asc"}, page_size=10)
        ]
    assert ids == [1, 2]
    assert len(seen) == 2


async def test_pagination_loop_is_detected() -> None:
    handler, seen = paged(
        {
            "/clients": hydra_page([1], "/clients?page=2"),
            "/clients?page=2": hydra_page([2], "/clients"),
        }
    )
    async with make_client(handler) as client:
        with pytest.raises(FlowtlyError, match="loops back"):
            _ = [m async for m in client.iterate("/clients")]
    assert seen == ["/clients", "/clients?page=2"]


async def test_iterate_streams_one_page_at_a_time() -> None:
    handler, seen = paged(
        {
            "/clients": hydra_page([1, 2], "/clients?page=2"),
            "/clients?page=2": hydra_page([3], None),
        }
    )
    async with make_client(handler) as client:
        stream = client.iterate("/clients")
        assert (await anext(stream))["id"] == 1
        assert seen == ["/clients"]
        assert (await anext(stream))["id"] == 2
        assert seen == ["/clients"]  # page 2 not fetched until member 3 is asked for
        assert (await anext(stream))["id"] == 3
        assert seen == ["/clients", "/clients?page=2"]
        with pytest.raises(StopAsyncIteration):
            await anext(stream)


async def test_non_object_members_are_rejected() -> None:
    handler, _ = paged({"/clients": {"member": ["/clients/1"]}})
    async with make_client(handler) as client:
        with pytest.raises(FlowtlyError, match="not JSON objects"):
            _ = [m async for m in client.iterate("/clients")]


# -- requests and headers --------------------------------------------------------------


async def test_headers_bodies_and_methods() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.method == "DELETE":
            return httpx.Response(204)
        if request.method == "POST":
            return ld({"@id": "/clients/7", "id": 7}, 201, Location="/clients/7")
        return ld({"@id": "/clients/7", "id": 7, "name": "X"})

    async with make_client(handler) as client:
        created = await client.post("/clients", {"name": "ACME"})
        patched = await client.patch(client.iri("clients", created["id"]), {"name": None})
        fetched = await client.get("clients/7", {"x": 1})
        await client.delete("/client-contacts/3")
    assert created["id"] == 7
    assert patched["name"] == "X"
    assert fetched["id"] == 7
    post, patch, get, delete = requests
    for request in requests:
        assert request.headers["Accept"] == "application/ld+json"
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["User-Agent"] == f"flowtly-sync/{__version__}"
    assert post.headers["Content-Type"] == "application/ld+json"
    assert json.loads(post.content) == {"name": "ACME"}
    assert patch.method == "PATCH"
    assert patch.url.path == "/clients/7"
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert json.loads(patch.content) == {"name": None}
    assert str(get.url) == "https://api.flowtly.test/clients/7?x=1"
    assert "Content-Type" not in get.headers
    assert delete.method == "DELETE"
    assert delete.url.path == "/client-contacts/3"
    assert client.stats.by_method == {"POST": 1, "PATCH": 1, "GET": 1, "DELETE": 1}
    assert client.stats.by_status == {201: 1, 200: 2, 204: 1}


@pytest.mark.parametrize("token", [None, "", SecretStr(TOKEN)])
async def test_authorization_header_only_with_a_token(token: str | SecretStr | None) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ld({"id": 1})

    transport = httpx.MockTransport(handler)
    async with FlowtlyClient("https://h.test", token, transport=transport, rate_limit=0) as c:
        await c.get("/x")
    expected = f"Bearer {TOKEN}" if isinstance(token, SecretStr) else None
    assert seen[0].headers.get("Authorization") == expected


async def test_success_bodies_that_are_not_json_objects_fail_clearly() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/html":
            return httpx.Response(200, text="<html>maintenance</html>")
        return ld([1, 2])

    async with make_client(handler) as client:
        with pytest.raises(FlowtlyError, match=r"GET /html: HTTP 200 answer is not JSON"):
            await client.get("/html")
        with pytest.raises(FlowtlyError, match="expected a JSON object, got list"):
            await client.get("/list")


async def test_empty_success_body_is_an_empty_object() -> None:
    async with make_client(lambda request: httpx.Response(202)) as client:
        assert await client.post("/counterparties/1/enrich-branding-ai", {}) == {}


# -- error mapping ---------------------------------------------------------------------

ERROR_CASES = [
    (401, AuthenticationError),
    (403, AuthenticationError),
    (404, NotFound),
    (400, ValidationFailed),
    (422, ValidationFailed),
    (405, MethodNotAllowed),
    (406, MethodNotAllowed),
    (409, MethodNotAllowed),
    (415, MethodNotAllowed),
    (429, RateLimited),
    (500, TransientError),
    (502, TransientError),
    (503, TransientError),
    (504, TransientError),
]


@pytest.mark.parametrize(("status", "kind"), ERROR_CASES)
async def test_error_statuses_map_to_typed_exceptions(
    status: int, kind: type[FlowtlyError]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return problem(status, title="An error occurred", detail=f"said {status}")

    async with make_client(handler) as client:
        with pytest.raises(kind) as caught:
            await client.get("/clients/5", {"query": "private-term"})
    error = caught.value
    assert type(error) is kind
    assert str(error) == f"GET /clients/5 failed: HTTP {status}: said {status}"
    assert (error.status, error.method, error.url, error.detail) == (
        status,
        "GET",
        "/clients/5",
        f"said {status}",
    )
    assert "private-term" not in str(error)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"detail": "d", "hydra:description": "hd", "title": "t"}, "d"),
        ({"hydra:description": "hd", "hydra:title": "An error occurred"}, "hd"),
        ({"description": "desc", "title": "t"}, "desc"),
        ({"title": "only title"}, "only title"),
        ({"hydra:title": "only hydra title"}, "only hydra title"),
        ({"message": "JWT Token not found", "code": 401}, "JWT Token not found"),
        ({"detail": "  ", "title": "blank detail skipped"}, "blank detail skipped"),
        ({"unrelated": 1}, None),
        ([1, 2], None),
        ("text", None),
    ],
)
def test_flowtly_message_preference_order(body: object, expected: str | None) -> None:
    assert flowtly_message(body) == expected


async def test_non_json_error_body_falls_back_to_reason_phrase() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad gateway from proxy</html>")

    async with make_client(handler) as client:
        with pytest.raises(TransientError) as caught:
            await client.delete("/client-notes/abc")
    assert str(caught.value) == "DELETE /client-notes/abc failed: HTTP 502: Bad Gateway"
    assert caught.value.detail is None


async def test_unmapped_status_is_a_plain_flowtly_error() -> None:
    async with make_client(lambda r: problem(410, detail="Gone for good")) as client:
        with pytest.raises(FlowtlyError) as caught:
            await client.get("/x")
    assert type(caught.value) is FlowtlyError
    assert caught.value.status == 410


async def test_422_violations_are_parsed_in_order() -> None:
    body = {
        "@type": "ConstraintViolation",
        "status": 422,
        "violations": [
            {
                "propertyPath": "name",
                "message": "This value should not be blank.",
                "code": "c1051bb4-d103-4f74-8988-acbcafc7fdc3",
            },
            {"propertyPath": "", "message": "Class-level problem."},
        ],
        "detail": "name: This value should not be blank.\nClass-level problem.",
    }

    async with make_client(lambda r: problem(**body)) as client:  # type: ignore[arg-type]
        with pytest.raises(ValidationFailed) as caught:
            await client.post("/clients", {"name": ""})
    assert caught.value.violations == (
        Violation(
            "name", "This value should not be blank.", "c1051bb4-d103-4f74-8988-acbcafc7fdc3"
        ),
        Violation("", "Class-level problem.", None),
    )
    assert "POST /clients failed: HTTP 422: name: This value should not be blank." in str(
        caught.value
    )


async def test_400_bad_iri_has_no_violations() -> None:
    async with make_client(lambda r: problem(400, detail='Invalid IRI "1".')) as client:
        with pytest.raises(ValidationFailed) as caught:
            await client.patch("/clients/1", {"country": "1"})
    assert caught.value.violations == ()
    assert str(caught.value) == 'PATCH /clients/1 failed: HTTP 400: Invalid IRI "1".'


def test_parse_violations_tolerates_odd_shapes() -> None:
    assert parse_violations({"violations": "nope"}) == ()
    assert parse_violations(None) == ()
    assert parse_violations({"violations": [3, {"message": "m", "code": 5}]}) == (
        Violation("", "m", None),
    )


def test_parse_retry_after_seconds_and_http_dates() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 4, 3, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after(" 2.5 ", now=now) == 2.5
    assert parse_retry_after("-3", now=now) == 0.0
    assert parse_retry_after("Fri, 03 Apr 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Fri, 03 Apr 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("", now=now) is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("nan") is None


async def test_transport_errors_are_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slow":
            raise httpx.ReadTimeout("timed out", request=request)
        raise httpx.ConnectError("connection refused", request=request)

    async with make_client(handler) as client:
        with pytest.raises(TransientError, match=r"^GET /slow timed out: ReadTimeout") as slow:
            await client.get("/slow")
        with pytest.raises(TransientError, match=r"^GET /down failed: ConnectError"):
            await client.get("/down")
    assert slow.value.status is None
    assert client.stats.transport_errors == 2


# -- transport security ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://api.flowtly.eu", "http://10.0.0.5:8000/api", "http://user:pw@example.com/"],
)
def test_plain_http_to_remote_host_is_refused(url: str) -> None:
    with pytest.raises(TransportSecurityError) as caught:
        FlowtlyClient(url, TOKEN)
    message = str(caught.value)
    assert "http" in message
    assert "unencrypted" in message
    assert url.split("@")[-1].rstrip("/") in message
    assert "pw" not in message
    assert TOKEN not in message


@pytest.mark.parametrize(
    "url",
    [
        "https://api.flowtly.eu",
        "http://127.0.0.1:8000",
        "http://127.8.9.10",
        "http://[::1]:81",
        "http://localhost:9000/api",
    ],
)
async def test_https_and_loopback_are_accepted(url: str) -> None:
    client = FlowtlyClient(url, TOKEN)
    await client.aclose()


async def test_any_host_is_accepted_with_an_injected_transport() -> None:
    async with make_client(lambda r: ld({"id": 1}), base_url="http://sandbox") as client:
        assert (await client.get("/clients/1"))["id"] == 1


def test_non_http_scheme_is_refused() -> None:
    with pytest.raises(TransportSecurityError, match="not an http"):
        FlowtlyClient("ftp://files.example.com", TOKEN)


# -- secrecy ---------------------------------------------------------------------------


async def test_token_never_in_repr_errors_or_logs() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        # a misbehaving server echoing the credentials back
        return problem(401, detail=f"bad token {request.headers['Authorization']}")

    client = make_client(handler, base_url="https://api.flowtly.test/api")
    assert TOKEN not in repr(client)
    assert repr(client) == (
        "FlowtlyClient(base_url='https://api.flowtly.test/api', concurrency=8, rate_limit=0)"
    )
    with capture_logs() as logs, pytest.raises(AuthenticationError) as caught:
        await client.get("/clients")
    await client.aclose()
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value)
    assert TOKEN not in (caught.value.detail or "")
    assert "***" in str(caught.value)
    assert logs, "expected request logs"
    assert TOKEN not in repr(logs)
    assert logs[0]["event"] == "flowtly.request"
    assert logs[0]["method"] == "GET"
    assert logs[0]["path"] == "/api/clients"
    assert logs[0]["status"] == 401
    assert logs[0]["log_level"] == "debug"


# -- IRIs ------------------------------------------------------------------------------


async def test_iri_and_id_from_iri() -> None:
    async with make_client(lambda r: ld({})) as plain:
        assert plain.iri("clients", 5) == "/clients/5"
        assert plain.iri("/client-notes/", "9f1c") == "/client-notes/9f1c"
    assert FlowtlyClient.id_from_iri("/clients/5") == "5"
    assert FlowtlyClient.id_from_iri("/api/clients/5") == "5"
    assert FlowtlyClient.id_from_iri("https://api.flowtly.eu/api/clients/5/") == "5"
    assert FlowtlyClient.id_from_iri({"@id": "/client-notes/ab-12", "@type": "ClientNote"}) == (
        "ab-12"
    )
    assert FlowtlyClient.id_from_iri({"id": 12, "name": "plain json"}) == "12"
    with pytest.raises(ValueError, match="neither"):
        FlowtlyClient.id_from_iri({"name": "no id"})
    with pytest.raises(ValueError, match="not an item IRI"):
        FlowtlyClient.id_from_iri("/")


async def test_short_token_redaction_does_not_garble_messages() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return problem(404, detail="Not Found: token t was used")

    transport = httpx.MockTransport(handler)
    async with FlowtlyClient("https://h.test", "t", transport=transport, rate_limit=0) as client:
        with pytest.raises(NotFound) as caught:
            await client.get("/clients/1")
    assert str(caught.value) == "GET /clients/1 failed: HTTP 404: Not Found: token *** was used"
