"""Hydra collections of the sandbox: exact view/link rules, query parsing, page parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sync.sandbox import SandboxSettings, create_app
from sync.sandbox._query import build_query, parse_query, php_int
from sync.sandbox._resources import Resource

LD = "application/ld+json"


def _client(n: int) -> dict[str, object]:
    return {
        "name": f"Client {n:03d}",
        "country": "/countries/1",
        "currency": "/currencies/1",
        "status": "active",
        "tinType": "vat",
    }


async def _http(count: int, base_path: str = "") -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SandboxSettings(base_path=base_path))
    sandbox = app.state.sandbox
    for n in range(count):
        sandbox.insert(Resource.CLIENTS, _client(n))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox", headers={"Authorization": "Bearer t"}
    ) as http:
        yield http
    sandbox.close()


@pytest.fixture
async def http0() -> AsyncIterator[httpx.AsyncClient]:
    async for http in _http(0):
        yield http


@pytest.fixture
async def http30() -> AsyncIterator[httpx.AsyncClient]:
    async for http in _http(30):
        yield http


@pytest.fixture
async def http31() -> AsyncIterator[httpx.AsyncClient]:
    async for http in _http(31):
        yield http


@pytest.fixture
async def http75() -> AsyncIterator[httpx.AsyncClient]:
    async for http in _http(75):
        yield http


async def test_empty_collection_has_no_view(http0: httpx.AsyncClient) -> None:
    response = await http0.get("/clients")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/ld+json; charset=utf-8"
    assert response.json() == {
        "@context": "/contexts/Client",
        "@id": "/clients",
        "@type": "Collection",
        "totalItems": 0,
        "member": [],
    }


async def test_exactly_one_full_page_has_no_view(http30: httpx.AsyncClient) -> None:
    doc = (await http30.get("/clients")).json()
    assert doc["totalItems"] == 30
    assert len(doc["member"]) == 30
    assert "view" not in doc
    assert list(doc) == ["@context", "@id", "@type", "totalItems", "member"]


async def test_single_page_with_page_param_only_has_no_view(http30: httpx.AsyncClient) -> None:
    doc = (await http30.get("/clients?page=1")).json()
    assert "view" not in doc


async def test_single_page_with_other_param_gets_bare_view(http30: httpx.AsyncClient) -> None:
    doc = (await http30.get("/clients?foo=bar&page=1")).json()
    assert doc["view"] == {"@id": "/clients?foo=bar", "@type": "PartialCollectionView"}


async def test_pagination_param_alone_does_not_make_a_view(http30: httpx.AsyncClient) -> None:
    doc = (await http30.get("/clients?pagination=true")).json()
    assert "view" not in doc


async def test_thirty_one_items_make_two_pages(http31: httpx.AsyncClient) -> None:
    first = (await http31.get("/clients")).json()
    assert len(first["member"]) == 30
    assert first["view"] == {
        "@id": "/clients?page=1",
        "@type": "PartialCollectionView",
        "first": "/clients?page=1",
        "last": "/clients?page=2",
        "next": "/clients?page=2",
    }
    second = (await http31.get("/clients?page=2")).json()
    assert [m["id"] for m in second["member"]] == [31]
    assert second["view"] == {
        "@id": "/clients?page=2",
        "@type": "PartialCollectionView",
        "first": "/clients?page=1",
        "last": "/clients?page=2",
        "previous": "/clients?page=1",
    }


async def test_seventy_five_items_middle_page(http75: httpx.AsyncClient) -> None:
    doc = (await http75.get("/clients?page=2")).json()
    assert doc["totalItems"] == 75
    assert [m["id"] for m in doc["member"]] == list(range(31, 61))
    assert doc["view"] == {
        "@id": "/clients?page=2",
        "@type": "PartialCollectionView",
        "first": "/clients?page=1",
        "last": "/clients?page=3",
        "previous": "/clients?page=1",
        "next": "/clients?page=3",
    }
    assert "@context" not in doc["member"][0]
    assert doc["member"][0]["@id"] == "/clients/31"


async def test_following_next_visits_every_item_once(http75: httpx.AsyncClient) -> None:
    seen: list[int] = []
    url: str | None = "/clients"
    while url is not None:
        doc = (await http75.get(url)).json()
        seen.extend(m["id"] for m in doc["member"])
        url = doc.get("view", {}).get("next")
    assert seen == list(range(1, 76))


async def test_page_past_the_end_is_empty_with_previous(http75: httpx.AsyncClient) -> None:
    doc = (await http75.get("/clients?page=5")).json()
    assert doc["member"] == []
    assert doc["totalItems"] == 75
    assert doc["view"]["previous"] == "/clients?page=4"
    assert doc["view"]["last"] == "/clients?page=3"
    assert "next" not in doc["view"]


async def test_links_keep_params_and_append_page_last(http75: httpx.AsyncClient) -> None:
    doc = (await http75.get("/clients?page=2&order[name]=asc&name=a b&tag[]=x&tag[]=y")).json()
    query = "order%5Bname%5D=asc&name=a%20b&tag%5B%5D=x&tag%5B%5D=y"
    assert doc["view"]["@id"] == f"/clients?{query}&page=2"
    assert doc["view"]["next"] == f"/clients?{query}&page=3"
    assert doc["view"]["first"] == f"/clients?{query}&page=1"


async def test_items_per_page_is_honoured_and_clamped(http75: httpx.AsyncClient) -> None:
    small = (await http75.get("/clients?itemsPerPage=10&page=2")).json()
    assert [m["id"] for m in small["member"]] == list(range(11, 21))
    assert small["view"]["last"] == "/clients?itemsPerPage=10&page=8"
    big = (await http75.get("/clients?itemsPerPage=100")).json()
    assert len(big["member"]) == 30
    assert big["view"]["next"] == "/clients?itemsPerPage=100&page=2"


async def test_items_per_page_zero(http75: httpx.AsyncClient) -> None:
    doc = (await http75.get("/clients?itemsPerPage=0")).json()
    assert doc["member"] == []
    assert doc["totalItems"] == 75
    assert doc["view"] == {"@id": "/clients?itemsPerPage=0", "@type": "PartialCollectionView"}
    bad = await http75.get("/clients?itemsPerPage=0&page=2")
    assert bad.status_code == 400
    assert bad.json()["detail"] == "Page should not be greater than 1 if limit is equal to 0"


@pytest.mark.parametrize("page", ["0", "-1", "abc", ""])
async def test_page_below_one_is_400(http0: httpx.AsyncClient, page: str) -> None:
    response = await http0.get(f"/clients?page={page}")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json; charset=utf-8"
    assert response.json()["detail"] == "Page should not be less than 1"


async def test_negative_items_per_page_is_400(http0: httpx.AsyncClient) -> None:
    response = await http0.get("/clients?itemsPerPage=-1")
    assert response.status_code == 400
    assert response.json()["detail"] == "Limit should not be less than 0"


async def test_page_param_is_php_int_cast(http75: httpx.AsyncClient) -> None:
    doc = (await http75.get("/clients?page=2abc")).json()
    assert doc["member"][0]["id"] == 31
    assert doc["view"]["@id"] == "/clients?page=2"


async def test_base_path_prefixes_iris_and_links() -> None:
    async for http in _http(31, base_path="/api"):
        doc = (await http.get("/api/clients")).json()
        assert doc["@id"] == "/api/clients"
        assert doc["@context"] == "/api/contexts/Client"
        assert doc["member"][0]["@id"] == "/api/clients/1"
        assert doc["member"][0]["country"] == "/countries/1"  # stored as inserted (no check)
        assert doc["view"]["next"] == "/api/clients?page=2"
        missing = await http.get("/clients")
        assert missing.status_code == 404


def test_parse_query_follows_php() -> None:
    assert parse_query("a=1&a=2&b[]=x&b[]=y&c[k][]=z&d&e=%20+") == {
        "a": "2",
        "b": {"0": "x", "1": "y"},
        "c": {"k": {"0": "z"}},
        "d": "",
        "e": "  ",
    }
    assert parse_query("&=x&client.name=foo") == {"client.name": "foo"}
    assert parse_query("x[=1") == {"x[": "1"}


def test_build_query_is_rfc3986_with_collapsed_leaf_indexes() -> None:
    tree = parse_query("filters[0][a]=1&tag[]=x&q=a/b c&order[name]=asc")
    assert (
        build_query(tree) == "filters%5B0%5D%5Ba%5D=1&tag%5B%5D=x&q=a%2Fb%20c&order%5Bname%5D=asc"
    )


@pytest.mark.parametrize(
    ("raw", "expected"), [("12", 12), ("  7x", 7), ("-3", -3), ("x", 0), ("", 0), ("5.9", 5)]
)
def test_php_int(raw: str, expected: int) -> None:
    assert php_int(raw) == expected


def test_remembered_counts_and_positions_never_serve_stale_pages() -> None:
    from sync.sandbox._store import SandboxDb, Where, parent_is

    store = SandboxDb(None)
    for seq in range(1, 101):
        store.put("clients", seq, str(seq), seq % 3, {"n": seq})

    def walk(size: int, *wheres: Where) -> list[list[object]]:
        pages, offset = [], 0
        while page := store.page("clients", offset, size, wheres).items:
            pages.append([item["n"] for item in page])
            offset += size
        return pages

    expected = [list(range(n, min(n + 7, 101))) for n in range(1, 101, 7)]
    assert walk(7) == expected
    assert walk(7) == expected  # again from the start: no position carried over
    assert [i["n"] for i in store.page("clients", 14, 7).items] == list(range(15, 22))
    assert store.page("clients", 7, 7).total == 100
    store.delete("clients", "10")  # a write between two pages forgets what was remembered
    after = [i["n"] for i in store.page("clients", 14, 7).items]
    assert after == [16, 17, 18, 19, 20, 21, 22]
    assert store.page("clients", 0, 7).total == 99
    only_ones = [n for n in range(1, 101) if n % 3 == 1 and n != 10]
    assert [n for page in walk(5, parent_is(1)) for n in page] == only_ones
    store.close()
