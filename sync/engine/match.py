"""Initial matching: pair records new on both sides by natural key, never by guess.

Companies match by normalized VAT number or TIN, else by exact normalized name plus
country; contacts by e-mail within their company; notes by body within their company. A
key held by more than one record on either side is ambiguous: every record holding it is
reported and none is linked or created, since any choice could be the wrong one.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sync.model import EntityKind, Record, Scalar
from sync.normalize import fingerprint, natural_key

__all__ = ["Matching", "PendingIntent", "landed_create", "match_new", "record_key", "values_key"]


@dataclass(frozen=True, slots=True)
class PendingIntent:
    """A create that was sent (or about to be) when a previous run stopped."""

    source_id: str
    natural_key: str | None
    payload_fp: str
    payload_names: frozenset[str]


@dataclass(slots=True)
class Matching:
    """Pairs (crm id, flowtly id), ambiguous keys with their ids, and what is left over."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    ambiguous: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    crm_only: list[str] = field(default_factory=list)
    flowtly_only: list[str] = field(default_factory=list)


def record_key(record: Record) -> str | None:
    """The natural key of a record, scoped to its parent company for contacts and notes."""
    return values_key(record.entity, record.fields)


def values_key(entity: EntityKind, values: Mapping[str, Scalar]) -> str | None:
    """`record_key` of a record of ``entity`` holding ``values``."""
    key = natural_key(values, entity)
    if key is None:
        return None
    if entity.parent is not None:
        return f"{values.get('company_id')}/{key}"
    return key


def _index(records: Iterable[Record]) -> dict[str, list[str]]:
    by_key: dict[str, list[str]] = defaultdict(list)
    for record in records:
        key = record_key(record)
        if key is not None:
            by_key[key].append(record.id)
    return by_key


class _Repeats:
    """Which of many keys may be held more than once, told by their hashes in a bitmap.

    A key's slot is marked the second time it comes up: every key held twice is marked,
    and a few held once share a slot with another (at most about one in 32: the bitmap
    has 32 to 64 bits per key). Two bitmaps of a few MiB instead of a set of every key.
    """

    __slots__ = ("_mask", "_repeated", "_seen", "found", "none")

    def __init__(self, count: int) -> None:
        bits = 1 << max(16, (32 * count).bit_length())
        self._mask = bits - 1
        self._seen = bytearray(bits // 8)
        self._repeated = bytearray(bits // 8)
        self.found = False
        """Whether any slot was marked."""
        self.none = bits
        """A slot no key has: for a record that needs no second look."""

    def add(self, key: str) -> int:
        """Count ``key``; its slot."""
        slot = hash(key) & self._mask
        byte, bit = slot >> 3, 1 << (slot & 7)
        if self._seen[byte] & bit:
            self._repeated[byte] |= bit
            self.found = True
        else:
            self._seen[byte] |= bit
        return slot

    def repeated(self, slot: int) -> bool:
        return slot != self.none and bool(self._repeated[slot >> 3] & (1 << (slot & 7)))


def _crm_index(
    crm_new: Mapping[str, Record], fl_by_key: Mapping[str, list[str]]
) -> dict[str, list[str]]:
    """CRM ids by key, for the keys that can decide something: those Flowtly holds too,
    and those more than one CRM record may hold.

    A key one CRM record alone holds decides nothing (its record is created), and in a
    first sync that is nearly every record: holding all their keys, each with its list,
    made matching the peak of a run's memory. Those keys are only counted (`_Repeats`),
    each record's slot kept in listing order (8 bytes), and only the records whose slot
    repeats are looked at again, to be indexed exactly.
    """
    by_key: dict[str, list[str]] = defaultdict(list)
    repeats = _Repeats(len(crm_new))
    slots = array("Q")
    for key, record in ((record_key(r), r) for r in crm_new.values()):
        if key is None or key in fl_by_key:
            slots.append(repeats.none)
            if key is not None:
                by_key[key].append(record.id)
        else:
            slots.append(repeats.add(key))
    if repeats.found:
        for record_id, slot in zip(crm_new, slots, strict=True):
            if repeats.repeated(slot):
                key = record_key(crm_new[record_id])
                assert key is not None  # it had a slot
                by_key[key].append(record_id)
    return by_key


def _resolve_intents(
    entity: EntityKind,
    intents: Iterable[PendingIntent],
    sources: Mapping[str, Record],
    targets: Mapping[str, Record],
    claimed: set[str],
) -> list[tuple[str, str]]:
    """Pair a source whose create may have landed with the one target that carries it."""
    pairs: list[tuple[str, str]] = []
    for intent in intents:
        if intent.source_id not in sources:
            continue
        found = [
            target.id
            for target in targets.values()
            if target.id not in claimed
            and fingerprint(entity, target.fields, intent.payload_names) == intent.payload_fp
        ]
        if len(found) == 1:
            pairs.append((intent.source_id, found[0]))
            claimed.add(found[0])
    return pairs


def landed_create(
    entity: EntityKind,
    intents: Iterable[PendingIntent],
    source: Record,
    targets: Mapping[str, Record],
) -> str | None:
    """The one record among ``targets`` that a pending create of ``source`` made, if that
    create landed before the run that sent it could link it; else None."""
    pairs = _resolve_intents(entity, intents, {source.id: source}, targets, set())
    return pairs[0][1] if pairs else None


def match_new(
    entity: EntityKind,
    crm_new: Mapping[str, Record],
    flowtly_new: Mapping[str, Record],
    *,
    crm_intents: Iterable[PendingIntent] = (),
    flowtly_intents: Iterable[PendingIntent] = (),
) -> Matching:
    """Match records new on the CRM against records new on Flowtly.

    ``crm_intents`` are pending creates of CRM records on Flowtly (their payload identifies
    the Flowtly record they made even when keys disagree); ``flowtly_intents`` the reverse.
    Flowtly records must already carry CRM-space parent ids; intent payloads are
    fingerprinted in that space too. Records without a key are simply left over.
    """
    result = Matching()
    fl_by_key = _index(flowtly_new.values())
    crm_by_key = _crm_index(crm_new, fl_by_key)
    matched_crm: set[str] = set()
    matched_fl: set[str] = set()
    for key, crm_ids in crm_by_key.items():
        fl_ids = fl_by_key.get(key, [])
        if len(crm_ids) == 1 and len(fl_ids) == 1:
            result.pairs.append((crm_ids[0], fl_ids[0]))
        elif len(crm_ids) > 1 or len(fl_ids) > 1:
            result.ambiguous[key] = (list(crm_ids), list(fl_ids))
        else:
            continue
        matched_crm.update(crm_ids)
        matched_fl.update(fl_ids)
    for key, fl_ids in fl_by_key.items():
        if key not in crm_by_key and len(fl_ids) > 1:
            result.ambiguous[key] = ([], list(fl_ids))
            matched_fl.update(fl_ids)
    crm_intents, flowtly_intents = tuple(crm_intents), tuple(flowtly_intents)
    if crm_intents or flowtly_intents:
        # Copies of what is left unmatched, made only when a pending create needs them.
        unmatched_fl = {i: r for i, r in flowtly_new.items() if i not in matched_fl}
        unmatched_crm = {i: r for i, r in crm_new.items() if i not in matched_crm}
        for crm_id, fl_id in _resolve_intents(
            entity, crm_intents, unmatched_crm, unmatched_fl, matched_fl
        ):
            result.pairs.append((crm_id, fl_id))
            matched_crm.add(crm_id)
        for fl_id, crm_id in _resolve_intents(
            entity,
            flowtly_intents,
            unmatched_fl,
            {i: r for i, r in unmatched_crm.items() if i not in matched_crm},
            matched_crm,
        ):
            result.pairs.append((crm_id, fl_id))
            matched_fl.add(fl_id)
    result.crm_only = [i for i in crm_new if i not in matched_crm]
    result.flowtly_only = [i for i in flowtly_new if i not in matched_fl]
    return result
