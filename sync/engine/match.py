"""Initial matching: pair records new on both sides by natural key, never by guess.

Companies match by normalized VAT number or TIN, else by exact normalized name plus
country; contacts by e-mail within their company; notes by body within their company. A
key held by more than one record on either side is ambiguous: every record holding it is
reported and none is linked or created, since any choice could be the wrong one.
"""

from __future__ import annotations

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
    crm_by_key = _index(crm_new.values())
    fl_by_key = _index(flowtly_new.values())
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
