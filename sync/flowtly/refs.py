"""Reference IRIs: countries, currencies and employees, between ISO codes/ids and IRIs.

Flowtly relates a client to its country and currency by IRI (``/countries/12``), while
canonical records carry ISO codes (``PL``, ``PLN``). `Refs` loads the two reference
collections once per run, on first need, and answers both directions from memory, so
mapping hundreds of thousands of items costs a dictionary lookup per field.

Lookups are keyed by the item's identifier (the IRI's last segment), so an IRI written with
a base-path prefix (``/api/countries/12``), as an absolute URL or as an embedded object with
an ``@id`` resolves all the same. An unknown code or IRI raises `UnknownReference`, naming
the field and the value: one record is refused, the run goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sync.errors import NotFound
from sync.flowtly.assumptions import MAX_ITEMS_PER_PAGE, REFERENCE_CODE_FIELD

__all__ = [
    "Employee",
    "ReferenceSource",
    "Refs",
    "UnknownReference",
    "id_of",
]


class UnknownReference(ValueError):
    """A code, id or IRI that names nothing Flowtly knows, in field ``field``."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}: {reason} ({value!r})")


class ReferenceSource(Protocol):
    """What `Refs` needs from the Flowtly client (`sync.flowtly.client.FlowtlyClient`)."""

    async def get(
        self, path: str, params: Mapping[str, str | int] | None = None
    ) -> dict[str, Any]: ...

    def iterate(
        self,
        path: str,
        params: Mapping[str, str | int] | None = None,
        *,
        page_size: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]: ...

    def iri(self, resource: str, id: str | int) -> str: ...


@dataclass(frozen=True, slots=True)
class Employee:
    """A Flowtly employee: ``id`` is what a note's canonical ``author`` holds."""

    id: str
    iri: str
    email: str | None
    first_name: str | None
    last_name: str | None


def id_of(value: object) -> str | None:
    """The identifier behind an IRI, an absolute URL, an embedded ``{"@id": ...}`` or an id.

    ``"/api/clients/5"`` -> ``"5"``; ``{"@id": "/clients/5", ...}`` -> ``"5"``; ``5`` -> ``"5"``;
    ``None`` or an empty string -> ``None``.
    """
    if value is None:
        return None
    if type(value) is str and value and value[-1] != "/":
        return value.rsplit("/", 1)[-1].strip() or None
    if isinstance(value, Mapping):
        inner = value.get("@id")
        if inner is None:
            inner = value.get("id")
        return id_of(inner)
    if isinstance(value, bool):
        raise ValueError(f"not an IRI or id: {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text = value.strip().rstrip("/")
        if not text:
            return None
        return text.rsplit("/", 1)[-1] or None
    raise ValueError(f"not an IRI or id: {value!r}")


class _CodeTable:
    """ISO code <-> IRI for one reference collection."""

    __slots__ = ("_code_by_id", "_code_by_iri", "_iri_by_code", "noun")

    def __init__(self, noun: str, iri_by_code: Mapping[str, str]) -> None:
        self.noun = noun
        self._iri_by_code = {code.upper(): iri for code, iri in iri_by_code.items()}
        self._code_by_id: dict[str, str] = {}
        # IRIs as the server writes them: the one-lookup path for nearly every item.
        self._code_by_iri: dict[str, str] = {}
        for code, iri in self._iri_by_code.items():
            key = id_of(iri)
            if key is not None:
                self._code_by_id[key] = code
                self._code_by_iri[iri] = code

    def __len__(self) -> int:
        return len(self._iri_by_code)

    def iri(self, code: str, field: str) -> str:
        iri = self._iri_by_code.get(code.upper())
        if iri is None:
            raise UnknownReference(field, code, f"no {self.noun} with code {code!r} in Flowtly")
        return iri

    def code(self, value: object, field: str) -> str:
        if type(value) is str:
            code = self._code_by_iri.get(value)
            if code is not None:
                return code
        try:
            key = id_of(value)
        except ValueError:
            key = None
        code = self._code_by_id.get(key) if key is not None else None
        if code is None:
            raise UnknownReference(field, value, f"not a known Flowtly {self.noun}")
        return code


class Refs:
    """Country, currency and employee references of one Flowtly account.

    Built over a client (`Refs(client)`): `load` fetches ``/countries`` and ``/currencies``
    completely, once (later calls return at once). Built from tables (`Refs.from_tables`) for
    pure mapping and tests, with no client behind it: employee look-ups then fail.
    """

    def __init__(self, source: ReferenceSource | None = None, *, prefix: str = "") -> None:
        self._source = source
        self._prefix = prefix.rstrip("/")
        self._countries: _CodeTable | None = None
        self._currencies: _CodeTable | None = None
        self._lock = asyncio.Lock()
        self._me: Employee | None = None
        self._employees: dict[str, Employee] = {}
        self._by_email: dict[str, Employee] | None = None

    @classmethod
    def from_tables(
        cls,
        countries: Mapping[str, str],
        currencies: Mapping[str, str],
        *,
        prefix: str = "",
    ) -> Refs:
        """Refs over fixed ``code -> IRI`` tables; IRIs of other resources get ``prefix``."""
        refs = cls(None, prefix=prefix)
        refs._countries = _CodeTable("country", countries)
        refs._currencies = _CodeTable("currency", currencies)
        return refs

    @property
    def loaded(self) -> bool:
        """Whether the country and currency tables are in memory."""
        return self._countries is not None and self._currencies is not None

    async def load(self) -> None:
        """Fetch the country and currency collections, unless already done."""
        if self.loaded:
            return
        async with self._lock:
            if self.loaded:
                return
            countries = await self._fetch_codes("countries")
            currencies = await self._fetch_codes("currencies")
            self._countries = _CodeTable("country", countries)
            self._currencies = _CodeTable("currency", currencies)

    async def _fetch_codes(self, resource: str) -> dict[str, str]:
        source = self._require_source()
        table: dict[str, str] = {}
        async for item in source.iterate(f"/{resource}", page_size=MAX_ITEMS_PER_PAGE):
            code = item.get(REFERENCE_CODE_FIELD)
            if not isinstance(code, str) or not code.strip():
                continue
            iri = item.get("@id")
            if not isinstance(iri, str):
                item_id = item.get("id")
                if item_id is None:
                    continue
                iri = source.iri(resource, item_id)
            table[code.strip().upper()] = iri
        return table

    def _require_source(self) -> ReferenceSource:
        if self._source is None:
            raise RuntimeError("these Refs were built from tables and have no Flowtly client")
        return self._source

    def _tables(self) -> tuple[_CodeTable, _CodeTable]:
        if self._countries is None or self._currencies is None:
            raise RuntimeError("Refs.load() must be awaited before mapping references")
        return self._countries, self._currencies

    def country_iri(self, code: str, field: str = "country") -> str:
        """The IRI of the country with ISO alpha-2 ``code``."""
        return self._tables()[0].iri(code, field)

    def country_code(self, iri: object, field: str = "country") -> str:
        """The ISO alpha-2 code of the country an IRI (or embedded object) names."""
        return self._tables()[0].code(iri, field)

    def currency_iri(self, code: str, field: str = "currency") -> str:
        """The IRI of the currency with ISO 4217 ``code``."""
        return self._tables()[1].iri(code, field)

    def currency_code(self, iri: object, field: str = "currency") -> str:
        """The ISO 4217 code of the currency an IRI (or embedded object) names."""
        return self._tables()[1].code(iri, field)

    def iri(self, resource: str, id: str | int) -> str:
        """The IRI of item ``id`` of ``resource`` (``clients``, ``employees``, ...)."""
        if self._source is not None:
            return self._source.iri(resource, id)
        return f"{self._prefix}/{resource}/{id}"

    async def me(self) -> Employee:
        """The employee behind the token (``/employees/me``), fetched once."""
        if self._me is None:
            self._me = self._remember(await self._require_source().get("/employees/me"))
        return self._me

    async def employee(self, employee_id: str) -> Employee:
        """The employee with ``employee_id``; `UnknownReference` if Flowtly has none."""
        found = self._employees.get(employee_id)
        if found is not None:
            return found
        source = self._require_source()
        try:
            item = await source.get(f"/employees/{employee_id}")
        except NotFound:
            raise UnknownReference("author", employee_id, "no such Flowtly employee") from None
        return self._remember(item)

    async def employee_by_email(self, email: str) -> Employee:
        """The employee with ``email`` (case-insensitive); lists ``/employees`` once."""
        if self._by_email is None:
            index: dict[str, Employee] = {}
            source = self._require_source()
            async for item in source.iterate("/employees", page_size=MAX_ITEMS_PER_PAGE):
                employee = self._remember(item)
                if employee.email:
                    index.setdefault(employee.email.lower(), employee)
            self._by_email = index
        found = self._by_email.get(email.strip().lower())
        if found is None:
            raise UnknownReference("author", email, "no Flowtly employee with this email")
        return found

    def _remember(self, item: Mapping[str, Any]) -> Employee:
        employee_id = id_of(item.get("id")) or id_of(item.get("@id"))
        if employee_id is None:
            raise UnknownReference("author", item.get("@id"), "employee item without an id")
        iri = item.get("@id")
        email = item.get("email")
        first = item.get("firstName")
        last = item.get("lastName")
        employee = Employee(
            id=employee_id,
            iri=iri if isinstance(iri, str) else self.iri("employees", employee_id),
            email=email if isinstance(email, str) else None,
            first_name=first if isinstance(first, str) else None,
            last_name=last if isinstance(last, str) else None,
        )
        self._employees[employee_id] = employee
        return employee
