"""Matching of records new on both sides (`match_new`): the same pairs, ambiguities and
leftovers as indexing every key of both sides, however the keys' hashes fall."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.engine import match
from sync.engine.match import Matching, match_new, record_key
from sync.model import EntityKind, Record

CONTACT = EntityKind.CONTACT


def _reference(crm: dict[str, Record], flowtly: dict[str, Record]) -> Matching:
    """Every key of both sides indexed, as the rule reads: a key held more than once on
    either side is ambiguous, a key held once on each side pairs, the rest is left over."""
    by_key: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for side, records in ((0, crm), (1, flowtly)):
        for record in records.values():
            key = record_key(record)
            if key is not None:
                by_key[key][side].append(record.id)
    result = Matching()
    for key, (crm_ids, fl_ids) in by_key.items():
        if len(crm_ids) > 1 or len(fl_ids) > 1:
            result.ambiguous[key] = (crm_ids, fl_ids)
        elif crm_ids and fl_ids:
            result.pairs.append((crm_ids[0], fl_ids[0]))
    decided = {i for ids, _ in result.ambiguous.values() for i in ids}
    decided |= {c for c, _ in result.pairs}
    result.crm_only = [i for i in crm if i not in decided]
    decided_fl = {i for _, ids in result.ambiguous.values() for i in ids}
    decided_fl |= {f for _, f in result.pairs}
    result.flowtly_only = [i for i in flowtly if i not in decided_fl]
    return result


def _contacts(prefix: str, emails: list[str | None]) -> dict[str, Record]:
    return {
        f"{prefix}{n}": Record(
            CONTACT, f"{prefix}{n}", {"email": email, "company_id": f"C{n % 2}", "name": "A"}
        )
        for n, email in enumerate(emails)
    }


_EMAILS = st.lists(st.sampled_from([None, "a@x.example", "B@x.example", "b@x.example", "c@y"]))


def _check(crm_emails: list[str | None], fl_emails: list[str | None]) -> None:
    crm, flowtly = _contacts("P", crm_emails), _contacts("F", fl_emails)
    got, want = match_new(CONTACT, crm, flowtly), _reference(crm, flowtly)
    assert sorted(got.pairs) == sorted(want.pairs)
    assert got.ambiguous == want.ambiguous
    assert got.crm_only == want.crm_only
    assert got.flowtly_only == want.flowtly_only


@given(_EMAILS, _EMAILS)
def test_matching_follows_the_rule(crm: list[str | None], flowtly: list[str | None]) -> None:
    _check(crm, flowtly)


@given(_EMAILS, _EMAILS)
def test_matching_follows_the_rule_when_every_key_shares_a_slot(
    crm: list[str | None], flowtly: list[str | None]
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        original = match._Repeats.__init__

        def tiny(self: match._Repeats, count: int) -> None:
            original(self, count)
            self._mask = 0  # one slot: every key held once looks repeated too
            self._seen, self._repeated = bytearray(1), bytearray(1)

        patch.setattr(match._Repeats, "__init__", tiny)
        _check(crm, flowtly)


def test_a_key_held_twice_among_thousands_is_ambiguous() -> None:
    emails: list[str | None] = [f"p{n}@x.example" for n in range(5000)]
    emails[4000] = emails[10]  # same company (C0): the same key
    emails[4001] = emails[11]  # other company (C1): the same key
    got = match_new(CONTACT, _contacts("P", emails), _contacts("F", ["p20@x.example"]))
    assert got.ambiguous == {
        "C0/email:p10@x.example": (["P10", "P4000"], []),
        "C1/email:p11@x.example": (["P11", "P4001"], []),
    }
    assert got.pairs == [("P20", "F0")]
    assert len(got.crm_only) == 4995
