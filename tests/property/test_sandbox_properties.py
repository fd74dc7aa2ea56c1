"""Property test: random client payloads get the answer a small independent oracle predicts.

The oracle restates the rules from flowtly-wire.md (sections 2.8, 2.9, 3) without using the
sandbox's code: a wrong JSON type or a bad IRI is a 400 naming the first bad key in body
order; otherwise missing/blank/null required fields are a 422 listing them in declaration
order; otherwise 201.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from sync.sandbox import SandboxSettings, create_app

COUNTRIES = 249
CURRENCIES = 178
REQUIRED = ("country", "currency", "status", "name", "tinType")
STRINGS = (
    "status", "name", "tinType", "tinCountry", "tin", "externalPaymentCustomerId",
    "invoiceComment", "defaultTaxRate", "documentsLanguage", "addressPhoneNumber",
    "addressCity", "addressPostCode", "addressStreetLine", "addressBuildingNumber",
    "addressLocaleNumber", "vatNumber",
)  # fmt: skip
INTEGERS = ("dueDays",)
RELATIONS = {"country": "countries", "currency": "currencies", "addressCountry": "countries"}
SIZES = {"countries": COUNTRIES, "currencies": CURRENCIES}

Json = object


def php_type(value: Json) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    return "array"


def first_bad_key(body: dict[str, Json]) -> str | None:
    """The 400 detail the oracle expects, or None when every value has an acceptable type."""
    for key, value in body.items():
        if key in STRINGS and value is not None and not isinstance(value, str):
            return f'The type of the "{key}" attribute must be "string", "{php_type(value)}" given.'
        if (
            key in INTEGERS
            and value is not None
            and (isinstance(value, bool) or not isinstance(value, int))
        ):
            return f'The type of the "{key}" attribute must be "int", "{php_type(value)}" given.'
        if key in RELATIONS and value is not None:
            value = _normalise(value)
            if isinstance(value, dict | list):
                return f'Nested documents for attribute "{key}" are not allowed. Use IRIs instead.'
            if not isinstance(value, str):
                return (
                    f'The type of the "{key}" attribute must be "array" (nested document) or '
                    f'"string" (IRI), "{php_type(value)}" given.'
                )
            parts = value.split("/")
            if len(parts) != 3 or parts[0] or parts[1] != RELATIONS[key]:
                return f'Invalid IRI "{value}".'
            if not parts[2].isdigit() or not 1 <= int(parts[2]) <= SIZES[RELATIONS[key]]:
                return f'Item not found for "{value}".'
    return None


def oracle(body: dict[str, Json]) -> tuple[int, Json]:
    bad = first_bad_key(body)
    if bad is not None:
        return 400, bad
    missing = [name for name in REQUIRED if body.get(name) in (None, "")]
    if missing:
        return 422, missing
    return 201, None


wrong_scalars = st.one_of(
    st.integers(-5, 5),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def string_values() -> st.SearchStrategy[Json]:
    return st.one_of(st.text(min_size=1, max_size=12), st.just(""), st.none(), wrong_scalars)


def integer_values() -> st.SearchStrategy[Json]:
    return st.one_of(st.integers(-1000, 1000), st.none(), st.text(max_size=3), wrong_scalars)


def relation_values(resource: str) -> st.SearchStrategy[Json]:
    other = "currencies" if resource == "countries" else "countries"
    return st.one_of(
        st.integers(1, SIZES[resource]).map(lambda i: f"/{resource}/{i}"),
        st.integers(1, 3).map(lambda i: f"https://api.flowtly.eu/{resource}/{i}"),
        st.just(f"/{resource}/999999"),
        st.just(f"/{other}/1"),
        st.just(f"/{resource}"),
        st.just("not an IRI"),
        st.just(""),
        st.none(),
        wrong_scalars,
    )


FIELD_VALUES: dict[str, st.SearchStrategy[Json]] = {
    **{name: string_values() for name in STRINGS},
    **{name: integer_values() for name in INTEGERS},
    **{name: relation_values(res) for name, res in RELATIONS.items()},
    "id": st.one_of(st.integers(), st.text(max_size=3)),
    "unknownKey": st.one_of(st.integers(), st.text(max_size=3), st.none()),
    "clientContacts": st.lists(st.integers(), max_size=2),
}


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Json]:
    chosen = draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), unique=True, max_size=12))
    # Mostly-valid payloads exercise the 201 and 422 paths, not only the 400 one.
    base = {
        "country": "/countries/5",
        "currency": "/currencies/7",
        "status": "active",
        "name": "ACME",
        "tinType": "vat",
    }
    keep = draw(st.lists(st.sampled_from(REQUIRED), unique=True))
    items = [(k, base[k]) for k in keep] + [(k, draw(FIELD_VALUES[k])) for k in chosen]
    shuffled = draw(st.permutations(items))
    return dict(shuffled)


def _normalise(value: Json) -> Json:
    if isinstance(value, str) and value.startswith("https://api.flowtly.eu"):
        return value.removeprefix("https://api.flowtly.eu")
    return value


@pytest.fixture(scope="module")
def app() -> Iterator[Starlette]:
    application = create_app(SandboxSettings())
    yield application
    application.state.sandbox.close()


async def _post(app: Starlette, body: dict[str, Json]) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox"
    ) as http:
        return await http.post(
            "/clients",
            content=json.dumps(body),
            headers={"Authorization": "Bearer t", "Content-Type": "application/ld+json"},
        )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=payloads())
def test_client_payloads_match_the_oracle(app: Starlette, body: dict[str, Json]) -> None:
    status, expected = oracle(body)
    response = asyncio.run(_post(app, body))
    assert response.status_code == status, (body, response.text)
    doc = response.json()
    if status == 400:
        assert doc["detail"] == expected
    elif status == 422:
        assert [v["propertyPath"] for v in doc["violations"]] == expected
    else:
        for key, value in body.items():
            if key in STRINGS or key in INTEGERS or key in RELATIONS:
                if value is None:
                    assert key not in doc
                else:
                    assert doc[key] == _normalise(value)
        assert isinstance(doc["id"], int)
        assert doc["clientContacts"] == []
        assert "unknownKey" not in doc
