"""What updates sent to a linked pair since its base was stored: telling the run's own
writes from edits.

An update goes out before its link (and the new base) is stored. A run that stops in
between (killed, or another write of its step failed) leaves the target holding what it
was sent while the stored base still holds the old value; should the source then go back
to that old value, the target's value would look like an edit made there and overwrite
the source: the source's latest edit lost. So what updates send is noted beside the link
before they go out (`Step.sent`, `StatusTx.note_sent`), kept until the link is stored
again, and a field whose value on one side is what was sent there counts as agreed at
that value.
"""

from __future__ import annotations

from collections.abc import Mapping

from sync.model import Scalar, Side
from sync.store.rows import SentValues

__all__ = ["noted_sent", "settled_base"]


def settled_base(
    base: Mapping[str, Scalar],
    sent: SentValues | None,
    values: Mapping[Side, Mapping[str, Scalar]],
) -> Mapping[str, Scalar]:
    """``base`` with each field one side holds as it was sent there taken as agreed.

    When both sides hold, differently, what was sent to each, which came last is unknown:
    the field keeps its base, and merging decides it as any conflict (the policy, or
    parked).
    """
    if not sent:
        return base
    settled = dict(base)
    for name in {name for fields in sent.values() for name in fields}:
        echoes = {
            values[side].get(name)
            for side, fields in sent.items()
            if values[side].get(name) != base.get(name)
            and values[side].get(name) in fields.get(name, ())
        }
        if len(echoes) == 1:
            (settled[name],) = echoes
    return settled


def noted_sent(
    earlier: SentValues | None, writes: Mapping[Side, Mapping[str, Scalar]]
) -> SentValues | None:
    """What to note before sending ``writes`` (per target, field -> value): they and what
    was sent ``earlier``, none forgotten (any may be what a side holds if this run stops
    too). None when nothing is written."""
    if not any(writes.values()):
        return None
    noted: dict[Side, dict[str, tuple[Scalar, ...]]] = {
        side: dict(fields) for side, fields in (earlier or {}).items()
    }
    for side, fields in writes.items():
        for name, value in fields.items():
            before = noted.setdefault(side, {}).get(name, ())
            if value not in before:
                noted[side][name] = (*before, value)
    return noted
