"""The three-way decision per field (docs/reference.md), a pure function.

O is the base (what both sides last agreed), A the CRM value, B the Flowtly value:

=========  =========  =====================================================
A vs O     B vs O     result
=========  =========  =====================================================
same       same       nothing
changed    same       write A to Flowtly
same       changed    write B to the CRM
changed    changed    A == B: nothing to write, base := A
changed    changed    A != B: conflict -> field owner, else policy
=========  =========  =====================================================

With no base (two records linked for the first time) equal fields are agreed, a field
empty on one side is filled from the other, and fields with two different values conflict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from sync.model import Scalar, Side
from sync.policy import SyncPolicy

__all__ = ["FieldDecision", "MergeResult", "Outcome", "merge_fields"]


class Outcome(StrEnum):
    """What happens to one field."""

    KEEP = "keep"
    TO_FLOWTLY = "to_flowtly"
    TO_CRM = "to_crm"
    AGREED = "agreed"
    CONFLICT_TO_FLOWTLY = "conflict_to_flowtly"
    CONFLICT_TO_CRM = "conflict_to_crm"
    PARKED = "parked"


@dataclass(frozen=True, slots=True)
class FieldDecision:
    """The decision for one field, with the three values it was made from."""

    field: str
    outcome: Outcome
    base: Scalar
    crm: Scalar
    flowtly: Scalar

    @property
    def is_conflict(self) -> bool:
        return self.outcome in (
            Outcome.CONFLICT_TO_CRM,
            Outcome.CONFLICT_TO_FLOWTLY,
            Outcome.PARKED,
        )


@dataclass(frozen=True, slots=True)
class MergeResult:
    """Per-field decisions of one record pair, and what follows from them."""

    decisions: tuple[FieldDecision, ...]
    to_crm: dict[str, Scalar] = field(default_factory=dict)
    to_flowtly: dict[str, Scalar] = field(default_factory=dict)
    base: dict[str, Scalar] = field(default_factory=dict)
    parked: tuple[FieldDecision, ...] = ()


def _decide(
    name: str, o: Scalar, a: Scalar, b: Scalar, has_base: bool, policy: SyncPolicy
) -> Outcome:
    a_changed = not has_base or a != o
    b_changed = not has_base or b != o
    if a == b:
        return Outcome.KEEP if has_base and not a_changed else Outcome.AGREED
    if not has_base and (a is None or b is None):
        # Linking for the first time: an empty field is no opinion, the other side fills it.
        if a is None and policy.may_write(name, Side.CRM):
            return Outcome.TO_CRM
        if b is None and policy.may_write(name, Side.FLOWTLY):
            return Outcome.TO_FLOWTLY
    # A one-way field belongs to its source side: the target's value is always replaced.
    if not policy.may_write(name, Side.CRM):
        return Outcome.TO_FLOWTLY
    if not policy.may_write(name, Side.FLOWTLY):
        return Outcome.TO_CRM
    if a_changed and not b_changed:
        return Outcome.TO_FLOWTLY
    if b_changed and not a_changed:
        return Outcome.TO_CRM
    winner = policy.winner(name)
    if winner is Side.CRM:
        return Outcome.CONFLICT_TO_FLOWTLY
    if winner is Side.FLOWTLY:
        return Outcome.CONFLICT_TO_CRM
    return Outcome.PARKED


def merge_fields(
    names: Iterable[str],
    base: Mapping[str, Scalar] | None,
    crm: Mapping[str, Scalar],
    flowtly: Mapping[str, Scalar],
    policy: SyncPolicy,
) -> MergeResult:
    """Decide every field in ``names``; fields missing from a mapping count as None."""
    has_base = base is not None
    base_values: Mapping[str, Scalar] = base or {}
    decisions: list[FieldDecision] = []
    result = MergeResult(decisions=())
    for name in names:
        o, a, b = base_values.get(name), crm.get(name), flowtly.get(name)
        outcome = _decide(name, o, a, b, has_base, policy)
        decisions.append(FieldDecision(name, outcome, o, a, b))
        if outcome in (Outcome.TO_FLOWTLY, Outcome.CONFLICT_TO_FLOWTLY):
            result.to_flowtly[name] = a
            result.base[name] = a
        elif outcome in (Outcome.TO_CRM, Outcome.CONFLICT_TO_CRM):
            result.to_crm[name] = b
            result.base[name] = b
        elif outcome in (Outcome.KEEP, Outcome.AGREED):
            result.base[name] = a
        else:
            result.base[name] = o
    parked = tuple(d for d in decisions if d.outcome is Outcome.PARKED)
    return MergeResult(tuple(decisions), result.to_crm, result.to_flowtly, result.base, parked)
