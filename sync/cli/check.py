"""``flowtly-sync check``: can we reach both sides, and does Flowtly behave as assumed?

Everything here is read-only. Each entry of `sync.flowtly.assumptions.ASSUMPTIONS` gets a
verdict: confirmed, contradicted (with what was seen), unverified (the account holds no
data to look at, or only a write could tell), or error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, TextIO

import httpx

from connectors.setup import missing_fields
from sync.cli.crm_setup import setup_target
from sync.config import Settings
from sync.engine.binding import current_identities, mismatch
from sync.errors import ApiError, AuthenticationError, DeadlineExceeded, SyncError, described
from sync.flowtly.assumptions import (
    ASSUMPTIONS,
    CLIENT_SEARCH_PARAM,
    EMPLOYEE_ORGANIZATION_FIELD,
    ID_ORDER_PARAM,
    ORDERED_COLLECTIONS,
    UPDATED_AFTER_PARAM,
    UPDATED_AT,
    UPDATED_AT_COLLECTIONS,
    Probe,
)
from sync.flowtly.client import PAGE_SIZE_PARAM, FlowtlyClient
from sync.flowtly.stamps import parse
from sync.wiring import build_crm, flowtly_client, flowtly_side, open_store

__all__ = ["Verdict", "run_checks"]

JsonObject = dict[str, Any]

_FILTER_FUTURE = "2999-01-01T00:00:00+00:00"
_FILTER_PAST = "1970-01-01T00:00:00+00:00"
"""Bounds no record is updated beyond: a working filter lists none after the first and
all after the second; one that is ignored lists all after both."""


class Verdict(StrEnum):
    """The outcome of one probe."""

    CONFIRMED = "confirmed"
    CONTRADICTED = "contradicted"
    UNVERIFIED = "unverified"
    ERROR = "error"


class _Contradiction(Exception):
    """The API answered, but not as assumed."""


def _members(body: JsonObject) -> list[JsonObject]:
    members = body.get("member", body.get("hydra:member"))
    if not isinstance(members, list):
        raise _Contradiction("collection has no 'member' (or 'hydra:member') list")
    return [m for m in members if isinstance(m, dict)]


async def _first(client: FlowtlyClient, path: str) -> JsonObject | None:
    body = await client.get(path, {PAGE_SIZE_PARAM: 1})
    members = _members(body)
    return members[0] if members else None


class _Prober:
    def __init__(self, client: FlowtlyClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    async def auth(self) -> str:
        await self.client.get("/employees/me")
        if self.settings.flowtly.base_url.startswith("sandbox://"):
            return "token accepted"
        async with httpx.AsyncClient(timeout=self.settings.flowtly.timeout) as bare:
            response = await bare.get(
                self.settings.flowtly.base_url + "/employees/me",
                headers={"Accept": "application/ld+json"},
            )
        if response.status_code != 401:
            raise _Contradiction(f"a request without token got {response.status_code}")
        return "token accepted; no token -> 401"

    async def pagination(self) -> str:
        body = await self.client.get("/countries")
        total = body.get("totalItems")
        view = body.get("view") or {}
        if "member" not in body:
            raise _Contradiction("collection keys are prefixed (hydra:member)")
        if isinstance(total, int) and total > len(_members(body)) and "next" not in view:
            raise _Contradiction("a partial page without view.next")
        return f"{len(_members(body))} per page, totalItems={total}"

    async def id_order(self) -> str | None:
        """Two ids asked for in each direction must come in that direction: a server that
        ignores the order answers ascending (its default) both times."""
        probed = []
        for path in ORDERED_COLLECTIONS:
            ascending, descending = [await self._ids(path, order) for order in ("asc", "desc")]
            if len(ascending) < 2:
                continue
            if not (ascending[0] < ascending[1] and descending[0] > descending[1]):
                raise _Contradiction(
                    f"{path} with {ID_ORDER_PARAM}=asc listed ids {ascending}, with desc "
                    f"{descending}: the order is ignored, pages read at once may overlap"
                )
            probed.append(path)
        return f"ids ascend and descend on {', '.join(probed)}" if probed else None

    async def _ids(self, path: str, order: str) -> list[int]:
        body = await self.client.get(path, {ID_ORDER_PARAM: order, PAGE_SIZE_PARAM: 2})
        ids = [m.get("id") for m in _members(body)]
        numbers = [i for i in ids if isinstance(i, int)]
        if len(numbers) != len(ids):
            raise _Contradiction(f"{path} ids are not numbers: {ids}")
        return numbers

    async def references(self) -> str:
        first = await _first(self.client, "/currencies")
        country = await _first(self.client, "/countries")
        for item, noun in ((first, "currency"), (country, "country")):
            if item is None:
                raise _Contradiction(f"no {noun} listed")
            if not isinstance(item.get("id"), int) or not isinstance(item.get("code"), str):
                raise _Contradiction(
                    f"{noun} item lacks a numeric id and a 'code': keys {sorted(item)}"
                )
        return "numeric ids with ISO codes"

    async def employee_me(self) -> str:
        me = await self.client.get("/employees/me")
        if "id" not in me:
            raise _Contradiction("no 'id' in /employees/me")
        return f"employee {me['id']}"

    async def employee_organization(self) -> str:
        me = await self.client.get("/employees/me")
        organization = me.get(EMPLOYEE_ORGANIZATION_FIELD)
        if isinstance(organization, dict):
            organization = organization.get("@id")
        if not (isinstance(organization, str) and "/organizations/" in organization):
            raise _Contradiction(
                f"{EMPLOYEE_ORGANIZATION_FIELD} is {organization!r}, not an /organizations/ IRI; "
                "stores are bound to the employee instead of the account"
            )
        return f"organization {organization}"

    async def client_shape(self) -> str | None:
        item = await _first(self.client, "/clients")
        if item is None:
            return None
        country = item.get("country")
        if not (isinstance(country, str) and "/countries/" in country):
            raise _Contradiction(f"country is {country!r}, not an IRI")
        if not isinstance(item.get("clientContacts", []), list):
            raise _Contradiction("clientContacts is not a list")
        return "country is an IRI, clientContacts embedded"

    async def client_search(self) -> str | None:
        item = await _first(self.client, "/clients")
        if item is None or not item.get("name"):
            return None
        term = str(item["name"])[:5]
        found = _members(await self.client.get("/clients/search", {CLIENT_SEARCH_PARAM: term}))
        if not any(m.get("id") == item.get("id") for m in found):
            raise _Contradiction(f"searching {term!r} did not return client {item.get('id')}")
        return f"'{CLIENT_SEARCH_PARAM}' finds clients by name"

    async def counterparty_shape(self) -> str | None:
        item = await _first(self.client, "/counterparties")
        if item is None:
            return None
        missing = [k for k in ("displayName", "type") if k not in item]
        if missing:
            raise _Contradiction(f"missing {', '.join(missing)}")
        return "displayName and type present"

    async def note_id(self) -> str | None:
        item = await _first(self.client, "/client-notes")
        if item is None:
            return None
        if not isinstance(item.get("id"), str):
            raise _Contradiction(f"note id is {type(item.get('id')).__name__}")
        return "string ids"

    async def updated_at_filter(self) -> str | None:
        seen: list[str] = []
        for path in UPDATED_AT_COLLECTIONS:
            found = await self._filtered_totals(path)
            if found is not None:
                seen.append(found)
        return "; ".join(seen) if seen else None

    async def _filtered_totals(self, path: str) -> str | None:
        """How ``path`` answers ``updatedAt[after]`` far ahead and far back; None when it
        holds nothing to tell a working filter from an ignored one."""
        body = await self.client.get(path, {PAGE_SIZE_PARAM: 1})
        total = body.get("totalItems")
        members = _members(body)
        if not members:
            return None
        stamp = members[0].get(UPDATED_AT)
        if parse(stamp) is None:
            raise _Contradiction(f"{path} items carry {UPDATED_AT}={stamp!r}, no time with offset")
        key = UPDATED_AFTER_PARAM
        ahead = await self.client.get(path, {PAGE_SIZE_PARAM: 1, key: _FILTER_FUTURE})
        back = await self.client.get(path, {PAGE_SIZE_PARAM: 1, key: _FILTER_PAST})
        if ahead.get("totalItems") != 0 or _members(ahead):
            raise _Contradiction(
                f"{path}?{key}={_FILTER_FUTURE} listed {ahead.get('totalItems')} of {total} "
                "items: the filter is ignored"
            )
        if back.get("totalItems") != total:
            raise _Contradiction(
                f"{path}?{key}={_FILTER_PAST} listed {back.get('totalItems')} of {total} items"
            )
        return f"{path}: none after {_FILTER_FUTURE[:4]}, all {total} after {_FILTER_PAST[:4]}"

    async def documents(self) -> str | None:
        item = await _first(self.client, "/clients")
        if item is None:
            return None
        _members(await self.client.get(f"/clients/{item['id']}/documents"))
        return "a Hydra collection"


async def _crm_check(settings: Settings) -> str:
    crm = build_crm(settings)
    async with crm:
        counts = []
        for entity in sorted(crm.entities()):
            seen = 0
            async for batch in crm.read(entity):
                seen += len(batch.records)
            counts.append(f"{seen} {entity}")
        target = setup_target(crm)
        missing = missing_fields(await target.custom_fields()) if target is not None else []
    line = f"{crm.describe()}: readable ({', '.join(counts)})"
    if missing:
        names = ", ".join(f"{field.entity} {field.name}" for field in missing)
        line += f"; custom fields missing, not synced until created ({names}): see crm setup"
    return line


async def _binding_check(settings: Settings, client: FlowtlyClient) -> tuple[bool, str]:
    """Whether the store is bound to the configured sides: (fine, line to print)."""
    crm = build_crm(settings)
    async with crm:
        current = await current_identities(crm, flowtly_side(settings, client))
    with open_store(settings) as store:
        recorded = store.binding(settings.sync.name)
    named = " and ".join(f"{side} {identity!r}" for side, identity in current.items())
    refusal = mismatch(settings.sync.name, recorded, current)
    if refusal is not None:
        return False, f"MISMATCH - {refusal}"
    if not recorded:
        return True, f"none recorded yet - the first run binds the store to {named}"
    return True, f"ok - the store is bound to {named}"


async def run_checks(settings: Settings, out: TextIO) -> bool:
    """Run every check, print one line each; True when nothing failed."""
    ok = True
    try:
        out.write(f"crm: ok - {await _crm_check(settings)}\n")
    except SyncError as exc:
        ok = False
        out.write(f"crm: FAILED - {described(exc)}\n")
    client = flowtly_client(settings)
    async with client:
        prober = _Prober(client, settings)
        try:
            await client.get("/employees/me")
            out.write("flowtly: ok - reachable, credentials valid\n")
        except (AuthenticationError, ApiError, DeadlineExceeded) as exc:
            out.write(f"flowtly: FAILED - {described(exc)}\n")
            return False
        try:
            fine, line = await _binding_check(settings, client)
        except SyncError as exc:
            fine, line = False, f"FAILED - {described(exc)}"
        ok = ok and fine
        out.write(f"binding: {line}\n")
        probes: dict[Probe, Callable[[], Awaitable[str | None]]] = {
            Probe.AUTH: prober.auth,
            Probe.PAGINATION: prober.pagination,
            Probe.ID_ORDER: prober.id_order,
            Probe.REFERENCES: prober.references,
            Probe.EMPLOYEE_ME: prober.employee_me,
            Probe.EMPLOYEE_ORGANIZATION: prober.employee_organization,
            Probe.CLIENT_SHAPE: prober.client_shape,
            Probe.CLIENT_SEARCH: prober.client_search,
            Probe.COUNTERPARTY_SHAPE: prober.counterparty_shape,
            Probe.NOTE_ID: prober.note_id,
            Probe.DOCUMENTS: prober.documents,
            Probe.UPDATED_AT_FILTER: prober.updated_at_filter,
        }
        for assumption in ASSUMPTIONS:
            probe = probes.get(assumption.probe)
            if probe is None:
                verdict, detail = Verdict.UNVERIFIED, "only a write could tell; not probed"
            else:
                try:
                    seen = await probe()
                    verdict, detail = (
                        (Verdict.CONFIRMED, seen)
                        if seen is not None
                        else (Verdict.UNVERIFIED, "no data in the account to look at")
                    )
                except _Contradiction as exc:
                    verdict, detail, ok = Verdict.CONTRADICTED, str(exc), False
                except (ApiError, httpx.HTTPError) as exc:
                    verdict, detail, ok = Verdict.ERROR, str(exc), False
            out.write(
                f"assumption {assumption.key}: {verdict} - {detail}\n    ({assumption.statement})\n"
            )
    return ok
