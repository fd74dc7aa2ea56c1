"""Duplicate counterparties: grouping (pure) and merging through the sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from sync.errors import AuthenticationError
from sync.extras.duplicates import (
    DuplicateGroup,
    apply_merges,
    find_duplicates,
    shown_key,
)
from sync.flowtly.client import FlowtlyClient
from sync.flowtly.resources import Defaults
from sync.flowtly.side import FlowtlySide
from sync.model import EntityKind, Record, Scalar, Side
from sync.sandbox import SandboxSettings, create_app
from sync.sandbox._resources import Resource
from sync.store import Store

CP = EntityKind.COUNTERPARTY
TOKEN = "merge-token"


def _cp(record_id: str, name: str, vat: str | None = None, country: str = "PL") -> Record:
    fields: dict[str, Scalar] = {"name": name, "country": country, "vat_number": vat}
    return Record(CP, record_id, fields)


def test_groups_keep_the_linked_counterparty_else_the_lowest_id() -> None:
    crm = [_cp("S1", "Tkacz", "PL6971045178"), _cp("S2", "Nowak", None)]
    flowtly = [
        _cp("12", "Tkacz sp. z o.o.", "6971045178"),
        _cp("3", "TKACZ", "PL 697-104-51-78"),
        _cp("10", "nowak"),
        _cp("9", "Nowak"),
        _cp("4", "Nowak"),
        _cp("5", "Unrelated", "PL5260250274"),
        _cp("6", "Unrelated 2", "PL5260250274"),
    ]
    report = find_duplicates(crm, flowtly, {"S1": "12"})
    assert report.blocked == ()
    by_crm = {g.crm_id: g for g in report.groups}
    assert (by_crm["S1"].keep, by_crm["S1"].merge, by_crm["S1"].linked) == ("12", ("3",), "12")
    assert (by_crm["S2"].keep, by_crm["S2"].merge, by_crm["S2"].linked) == ("4", ("9", "10"), None)
    assert by_crm["S2"].crm_name == "Nowak"


def test_members_linked_elsewhere_and_shared_keys_are_not_merged() -> None:
    crm = [_cp("S1", "Acme"), _cp("S2", "ACME"), _cp("S3", "Beta"), _cp("S4", "Old beta")]
    flowtly = [_cp("1", "Acme"), _cp("2", "acme"), _cp("3", "Beta"), _cp("4", "Beta")]
    report = find_duplicates(crm, flowtly, {"S4": "3"})
    assert report.groups == ()
    reasons = {b.key: (b.crm_ids, b.flowtly_ids, b.reason) for b in report.blocked}
    assert reasons["name:acme|PL"][:2] == (("S1", "S2"), ("1", "2"))
    assert "several CRM companies" in reasons["name:acme|PL"][2]
    assert "linked to other CRM companies" in reasons["name:beta|PL"][2]
    with_third = find_duplicates(crm[2:], [*flowtly, _cp("7", "beta")], {"S4": "3"})
    (group,) = with_third.groups
    assert (group.keep, group.merge, group.held) == ("4", ("7",), ("3",))


def test_shown_key_masks_tax_ids_unless_asked() -> None:
    assert shown_key("tax:6971045178", False) == "tax:•••••••178"
    assert shown_key("tax:6971045178", True) == "tax:6971045178"
    assert shown_key("tax:PL:6971045178", False) == "tax:PL:•••••••178"
    assert shown_key("name:acme|PL", False) == "name:acme|PL"


@pytest.fixture
async def side() -> AsyncIterator[tuple[FlowtlySide, object]]:
    app = create_app(SandboxSettings(token=TOKEN, seed=1))
    client = FlowtlyClient(
        "http://sandbox", TOKEN, rate_limit=0, transport=httpx.ASGITransport(app=app)
    )
    async with client:
        yield FlowtlySide(client, Defaults()), app.state.sandbox


async def test_apply_merges_through_the_sandbox_and_clears_rejections(
    side: tuple[FlowtlySide, object], tmp_path: Path
) -> None:
    flowtly, sandbox = side
    ids = []
    for name, logo in (("Acme", None), ("ACME", "https://logo.example/a.png"), ("acme", None)):
        record = await flowtly.create(CP, {"name": name, "country": "PL", "logo_url": logo})
        ids.append(record.id)
    listed = [r async for b in flowtly.read(CP) for r in b.records]
    report = find_duplicates([_cp("S1", "Acme")], listed, {})
    (group,) = report.groups
    assert (group.keep, group.merge) == (ids[0], (ids[1], ids[2]))
    store = Store.open(f"sqlite:///{tmp_path}/state.db")
    try:
        with store.transaction() as tx:
            tx.record_rejection("s", CP, Side.CRM, "S1", None, None, "ambiguous match", "fp")
            tx.record_rejection("s", CP, Side.FLOWTLY, ids[1], None, None, "ambiguous", "fp")
        missing = DuplicateGroup("k", "S9", None, "999", (ids[0],))
        outcomes = await apply_merges(flowtly, store, "s", [group, missing])
        assert [o.ok for o in outcomes] == [True, False]
        assert outcomes[1].error is not None
        assert "999" in outcomes[1].error
        assert store.rejections("s", CP) == []
    finally:
        store.close()
    remaining = sandbox.records(Resource.COUNTERPARTIES)  # type: ignore[attr-defined]
    assert [str(r["id"]) for r in remaining] == [ids[0]]
    assert remaining[0]["logoUrl"] == "https://logo.example/a.png"


async def test_apply_merges_stops_on_authentication_failure(tmp_path: Path) -> None:
    class Refusing:
        async def merge_counterparties(self, keep_id: str, other_ids: object) -> Record:
            raise AuthenticationError("401")

    store = Store.open(f"sqlite:///{tmp_path}/state.db")
    try:
        with pytest.raises(AuthenticationError):
            await apply_merges(
                Refusing(), store, "s", [DuplicateGroup("k", "S", None, "1", ("2",))]
            )
    finally:
        store.close()
