"""Error answers of the sandbox: status codes, exact API Platform messages, problem documents."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sync.sandbox import SandboxSettings, create_app

LD = "application/ld+json"
PROBLEM = "application/problem+json; charset=utf-8"
VALID = {
    "name": "ACME",
    "country": "/countries/1",
    "currency": "/currencies/1",
    "status": "active",
    "tinType": "vat",
}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SandboxSettings(token="secret-token"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sandbox",
        headers={"Authorization": "Bearer secret-token"},
    ) as client:
        yield client
    app.state.sandbox.close()


def _detail(response: httpx.Response) -> str:
    assert response.headers["content-type"] == PROBLEM
    detail: str = response.json()["detail"]
    return detail


async def _post(http: httpx.AsyncClient, path: str, body: object) -> httpx.Response:
    return await http.post(path, json=body, headers={"Content-Type": LD})


async def test_problem_document_shape(http: httpx.AsyncClient) -> None:
    response = await http.get("/clients/999")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert "json-ld#error" in response.headers["link"]
    assert response.json() == {
        "@context": "/contexts/Error",
        "@id": "/errors/404",
        "@type": "Error",
        "title": "An error occurred",
        "detail": "Not Found",
        "status": 404,
        "type": "/errors/404",
        "description": "Not Found",
    }


async def test_non_numeric_id_is_invalid_identifier(http: httpx.AsyncClient) -> None:
    response = await http.get("/clients/abc")
    assert response.status_code == 404
    assert _detail(response) == "Invalid identifier value or configuration."


async def test_unknown_route(http: httpx.AsyncClient) -> None:
    response = await http.get("/nothing/here?x=1")
    assert response.status_code == 404
    assert _detail(response) == 'No route found for "GET http://sandbox/nothing/here"'


async def test_unknown_format_suffix(http: httpx.AsyncClient) -> None:
    assert (await http.get("/countries/1.jsonld")).status_code == 200
    response = await http.get("/countries/1.xml")
    assert response.status_code == 404
    assert _detail(response) == 'Format "xml" is not supported'


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/clients/1", "GET, PATCH"),
        ("PUT", "/clients", "GET, POST"),
        ("POST", "/countries", "GET"),
        ("GET", "/counterparty", "POST"),
    ],
)
async def test_wrong_method_is_405_with_allow(
    http: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert _detail(response) == (
        f'No route found for "{method} http://sandbox{path}": Method Not Allowed (Allow: {allow})'
    )


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}, {"Authorization": ""}],
)
async def test_unauthorized(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    http.headers.pop("Authorization")
    response = await http.get("/clients", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert _detail(response) == "Unauthorized"
    assert "secret-token" not in response.text


async def test_any_bearer_accepted_without_configured_token() -> None:
    app = create_app(SandboxSettings())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox"
    ) as http:
        assert (
            await http.get("/clients", headers={"Authorization": "Bearer x"})
        ).status_code == 200
        assert (await http.get("/clients", headers={"Authorization": "Bearer "})).status_code == 401
    app.state.sandbox.close()


@pytest.mark.parametrize("accept", ["application/ld+json", "*/*", "text/html, */*;q=0.8", None])
async def test_accept_negotiation_ok(http: httpx.AsyncClient, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    if accept is None:
        http.headers.pop("Accept", None)
    response = await http.get("/countries/1", headers=headers)
    assert response.status_code == 200
    assert response.json()["@id"] == "/countries/1"


@pytest.mark.parametrize("accept", ["application/json", "text/html", "application/ld+json;q=0"])
async def test_accept_json_is_406(http: httpx.AsyncClient, accept: str) -> None:
    response = await http.get("/countries/1", headers={"Accept": accept})
    assert response.status_code == 406
    assert _detail(response) == (
        f'Requested format "{accept}" is not supported. '
        'Supported MIME types are "application/ld+json".'
    )


async def test_patch_needs_merge_patch(http: httpx.AsyncClient) -> None:
    await _post(http, "/clients", VALID)
    response = await http.patch("/clients/1", json={"name": "x"})
    assert response.status_code == 415
    assert _detail(response) == (
        'The content-type "application/json" is not supported. '
        'Supported MIME types are "application/merge-patch+json".'
    )


async def test_missing_content_type_is_415(http: httpx.AsyncClient) -> None:
    response = await http.post("/clients", content=b'{"name": "x"}')
    assert response.status_code == 415
    assert _detail(response) == 'The "Content-Type" header must exist.'
    patched = await http.patch("/clients/1", content=b"{}")
    assert patched.status_code == 415


async def test_post_content_types(http: httpx.AsyncClient) -> None:
    bad = await http.post("/clients", content=b"{}", headers={"Content-Type": "text/plain"})
    assert bad.status_code == 415
    assert _detail(bad) == (
        'The content-type "text/plain" is not supported. '
        'Supported MIME types are "application/ld+json", "application/json".'
    )
    plain = await http.post("/clients", json=VALID)
    assert plain.status_code == 201
    charset = await http.post(
        "/clients", json=VALID, headers={"Content-Type": "application/ld+json; charset=utf-8"}
    )
    assert charset.status_code == 201


@pytest.mark.parametrize(
    "body", [b"", b"   ", b"{", b"not json", b"[1]", b'"x"', b"NaN", b'{"name": "\\ud800"}']
)
async def test_syntax_error(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post("/clients", content=body, headers={"Content-Type": LD})
    assert response.status_code == 400
    assert _detail(response) == "Syntax error"


async def test_scalar_type_errors(http: httpx.AsyncClient) -> None:
    response = await _post(http, "/clients", {**VALID, "name": 5})
    assert response.status_code == 400
    assert (
        _detail(response) == 'The type of the "name" attribute must be "string", "integer" given.'
    )
    days = await _post(http, "/clients", {**VALID, "dueDays": "14"})
    assert _detail(days) == 'The type of the "dueDays" attribute must be "int", "string" given.'
    flag = await _post(
        http, "/counterparties", {"type": "supplier", "displayName": "x", "cyclic": 1}
    )
    assert _detail(flag) == 'The type of the "cyclic" attribute must be "bool", "integer" given.'
    floaty = await _post(http, "/clients", {**VALID, "dueDays": 1.5})
    assert _detail(floaty) == 'The type of the "dueDays" attribute must be "int", "double" given.'


async def test_first_bad_key_in_body_order_is_reported(http: httpx.AsyncClient) -> None:
    response = await _post(http, "/clients", {"tinType": [], "name": 1})
    assert (
        _detail(response) == 'The type of the "tinType" attribute must be "string", "array" given.'
    )


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("1", 'Invalid IRI "1".'),
        ("certainly not an IRI", 'Invalid IRI "certainly not an IRI".'),
        ("/currencies/1", 'Invalid IRI "/currencies/1".'),
        ("/countries", 'Invalid IRI "/countries".'),
        ("/countries/99999", 'Item not found for "/countries/99999".'),
        ("/countries/xx", 'Item not found for "/countries/xx".'),
        (
            7,
            'The type of the "country" attribute must be "array" (nested document) or '
            '"string" (IRI), "integer" given.',
        ),
        (
            {"code": "PL"},
            'Nested documents for attribute "country" are not allowed. Use IRIs instead.',
        ),
    ],
)
async def test_iri_errors(http: httpx.AsyncClient, value: object, detail: str) -> None:
    response = await _post(http, "/clients", {**VALID, "country": value})
    assert response.status_code == 400
    assert _detail(response) == detail


async def test_absolute_iri_is_accepted_and_normalised(http: httpx.AsyncClient) -> None:
    response = await _post(
        http, "/clients", {**VALID, "country": "https://api.flowtly.eu/countries/2"}
    )
    assert response.status_code == 201
    assert response.json()["country"] == "/countries/2"


async def test_missing_required_fields_in_declaration_order(http: httpx.AsyncClient) -> None:
    response = await _post(http, "/clients", {"name": "", "status": "active"})
    assert response.status_code == 422
    doc = response.json()
    assert [v["propertyPath"] for v in doc["violations"]] == [
        "country",
        "currency",
        "name",
        "tinType",
    ]
    assert doc["violations"][0] == {
        "propertyPath": "country",
        "message": "This value should not be null.",
        "code": "ad32d13f-c3d4-423b-909a-857b961eb720",
    }
    assert doc["violations"][2]["message"] == "This value should not be blank."
    assert doc["detail"].split("\n")[0] == "country: This value should not be null."
    assert doc["@type"] == "ConstraintViolation"
    assert doc["@id"].startswith("/validation_errors/0=ad32d13f-c3d4-423b-909a-857b961eb720;1=")


async def test_single_violation_document(http: httpx.AsyncClient) -> None:
    response = await _post(http, "/clients", {**VALID, "name": ""})
    assert response.json() == {
        "@context": "/contexts/ConstraintViolation",
        "@id": "/validation_errors/c1051bb4-d103-4f74-8988-acbcafc7fdc3",
        "@type": "ConstraintViolation",
        "status": 422,
        "violations": [
            {
                "propertyPath": "name",
                "message": "This value should not be blank.",
                "code": "c1051bb4-d103-4f74-8988-acbcafc7fdc3",
            }
        ],
        "detail": "name: This value should not be blank.",
        "description": "name: This value should not be blank.",
        "type": "/validation_errors/c1051bb4-d103-4f74-8988-acbcafc7fdc3",
        "title": "An error occurred",
    }


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "a b@c.de"])
async def test_invalid_email_is_422(http: httpx.AsyncClient, email: str) -> None:
    response = await _post(http, "/client-contacts", {"type": "main", "name": "A", "email": email})
    assert response.status_code == 422
    assert response.json()["violations"] == [
        {
            "propertyPath": "email",
            "message": "This value is not a valid email address.",
            "code": "bd79c0ab-ddba-46cc-a703-a7a4b08de310",
        }
    ]


async def test_patch_validates_the_merged_object(http: httpx.AsyncClient) -> None:
    await _post(http, "/clients", VALID)
    response = await http.patch(
        "/clients/1",
        json={"name": None, "currency": None},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 422
    assert [v["propertyPath"] for v in response.json()["violations"]] == ["currency", "name"]
    unchanged = (await http.get("/clients/1")).json()
    assert unchanged["name"] == "ACME"


async def test_unknown_ids_on_write_are_404(http: httpx.AsyncClient) -> None:
    patched = await http.patch(
        "/client-contacts/9", json={}, headers={"Content-Type": "application/merge-patch+json"}
    )
    assert patched.status_code == 404
    assert (await http.delete("/client-contacts/9")).status_code == 404
    assert (await http.delete("/client-notes/not-a-uuid")).status_code == 404


async def test_search_needs_three_characters(http: httpx.AsyncClient) -> None:
    for query in ("", "?query=ab", "?query=%20ab%20"):
        response = await http.get(f"/clients/search{query}")
        assert response.status_code == 400
        assert "at least 3 characters" in _detail(response)


async def test_empty_array_body_is_an_empty_object(http: httpx.AsyncClient) -> None:
    response = await http.post("/clients", content=b"[]", headers={"Content-Type": LD})
    assert response.status_code == 422
