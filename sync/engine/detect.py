"""Detect what changed on one side: read it, fingerprint each record, keep only news.

A linked record whose fingerprint equals the one stored for its side is unchanged and is
dropped at once, so memory stays proportional to what changed, not to the account size.
Records of contacts and notes are translated into the CRM's id space for their parent
company (``company_id``), so both sides compare like with like.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field

from connectors.base import Connector, Cursor
from sync.engine.packed import PackedRecords
from sync.errors import RecordError
from sync.model import EntityKind, Record, Side
from sync.normalize import fingerprint

__all__ = ["LEFT", "TOMBSTONE", "SideView", "add_records", "listing_warning", "read_side"]

TOMBSTONE = "-"
"""A side fingerprint meaning: gone on that side, kept linked (an archived client)."""

LEFT = "<"
"""A side fingerprint meaning: no longer of this entity on that side (its kind changed),
kept linked so the other side's record is neither deleted nor created back."""

PARENT_FIELD = "company_id"


@dataclass(slots=True)
class SideView:
    """What one side holds for one entity, reduced to what matters for planning.

    Ids are the side's own. ``changed`` are linked records whose fingerprint moved; ``new``
    are unlinked records; ``deleted`` are linked ids missing from a complete listing.
    ``left`` are linked ids the side reported as no longer of this entity (not deleted).
    ``fps`` holds the fingerprint of every record in ``changed`` and ``new``.

    ``incomplete`` says why a listing cannot be trusted to be whole (`ChangeBatch`); then
    nothing is inferred deleted, and ``unseen`` holds the linked ids it lacked: their
    state on this side is unknown this run.
    """

    side: Side
    entity: EntityKind
    complete: bool = True
    changed: dict[str, Record] = field(default_factory=dict)
    new: MutableMapping[str, Record] = field(default_factory=PackedRecords)
    """Packed (`PackedRecords`): a first sync holds every record of the entity here."""
    fps: dict[str, str] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    left: set[str] = field(default_factory=set)
    rejected: list[RecordError] = field(default_factory=list)
    seen: int = 0
    waiting: int = 0
    waiting_records: list[RecordError] = field(default_factory=list)
    """What `waiting` counts, each named (`waiting_for_company`)."""
    warnings: list[RecordError] = field(default_factory=list)
    """What this read found that the report says as warnings: Flowtly records of a
    company deleted in the CRM (`PARENT_GONE`), not synced (they wait for nothing, so
    they hold no cursor back), and a lookup of their companies that could not tell."""
    held: dict[str, RecordError] = field(default_factory=dict)
    """Records of ``new`` not to be created on the other side this run, each with why
    (its company there could not be confirmed): still matched, so a twin is linked."""
    cursor: Cursor | None = None
    incomplete: str | None = None
    unseen: set[str] = field(default_factory=set)

    def release_records(self) -> None:
        """Let go of the records once planned; ids, fingerprints and counts stay."""
        self.changed = {}
        self.new = PackedRecords()


def listing_warning(view: SideView, held_creates: int = 0) -> RecordError | None:
    """The report's warning for an incomplete listing of ``view``, if it was one, naming
    what was held back because of it (linked records it lacked, creates on that side)."""
    if view.incomplete is None:
        return None
    held = []
    if view.unseen:
        held.append(f"{len(view.unseen)} linked record(s) missing from it are left as they are")
    if held_creates:
        held.append(
            f"{held_creates} new record(s) are not created on this side (a twin may be in "
            "what it lacked)"
        )
    until = f"; until a complete listing, {' and '.join(held)}" if held else ""
    return RecordError(
        str(view.entity),
        str(view.side),
        "*",
        f"incomplete listing, no deletes inferred from it this run: {view.incomplete}{until}",
    )


def waiting_for_company(
    entity: EntityKind, side: Side, record_id: str, company: object
) -> RecordError:
    """The report's (and `status`'s) line for a record whose company is not linked: it
    syncs once that company is, so it is named, not failed."""
    return RecordError(
        str(entity),
        str(side),
        record_id,
        f"waits for its company {str(company)!r}, which is not linked: no company has that "
        "id, or it was not synced itself (see its error)",
        PARENT_FIELD,
        str(company),
    )


PARENT_GONE = TOMBSTONE
"""What a Flowtly-to-CRM parent map gives for a company whose CRM twin was deleted (its
link a tombstone, the Flowtly company archived): there is no CRM company to put a
contact or note under."""


def _translate_parent(record: Record, parents: Mapping[str, str]) -> Record | None:
    parent = record.get(PARENT_FIELD)
    if parent is None:
        return record
    translated = parents.get(str(parent))
    if translated is None:
        return None
    return record.replace(company_id=translated)


async def read_side(
    connector: Connector,
    side: Side,
    entity: EntityKind,
    names: frozenset[str],
    stored_fps: Mapping[str, str],
    *,
    parents: Mapping[str, str] | None = None,
    since: Cursor | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SideView:
    """Read ``entity`` from ``connector`` and classify every record against the links.

    ``stored_fps`` maps this side's linked ids to their stored fingerprints. ``parents``,
    for contacts and notes read from Flowtly, maps Flowtly company ids to CRM ids; a
    record whose parent is not linked yet waits for a later run.
    """
    view = SideView(side, entity, complete=since is None)
    # Linked ids listed: only those can be missed (deleted) or contradict a `left` id. A
    # set of every id listed would be as large as the account in a first sync.
    present: set[str] = set()
    reasons: list[str] = []
    async for batch in connector.read(entity, since):
        if batch.incomplete is not None:
            reasons.append(batch.incomplete)
        view.rejected.extend(batch.rejected)
        present.update(i for i in batch.present_ids if i in stored_fps)
        if batch.cursor is not None:
            view.cursor = batch.cursor
        for record_id in batch.deleted_ids:
            if record_id in stored_fps:
                view.deleted.add(record_id)
        view.left.update(record_id for record_id in batch.left_ids if record_id in stored_fps)
        for record in batch.records:
            if record.id in stored_fps:
                present.add(record.id)
            view.seen += 1
            _classify(view, record, names, stored_fps, parents)
        if on_progress is not None:
            on_progress(len(batch.records))
    # A record listed here is of this entity, whatever else said it left.
    view.left -= present
    view.deleted -= view.left
    missing = (
        record_id
        for record_id, fp in stored_fps.items()
        if record_id not in present and record_id not in view.left and fp not in (TOMBSTONE, LEFT)
    )
    if reasons:
        view.incomplete = "; ".join(reasons)
        # A cursor past records this read never saw would skip them for good.
        view.cursor = None
        if view.complete:
            view.unseen.update(missing)
        view.complete = False
    elif view.complete:
        view.deleted.update(missing)
    return view


def _classify(
    view: SideView,
    record: Record,
    names: frozenset[str],
    stored_fps: Mapping[str, str],
    parents: Mapping[str, str] | None,
) -> None:
    """File one record read from the side under ``changed`` or ``new`` (or drop it)."""
    fp = fingerprint(view.entity, record.fields, names)
    stored = stored_fps.get(record.id)
    if stored == fp:
        return
    if parents is not None:
        translated = _translate_parent(record, parents)
        if translated is None:
            view.waiting += 1
            view.waiting_records.append(
                waiting_for_company(view.entity, view.side, record.id, record.get(PARENT_FIELD))
            )
            return
        if translated.get(PARENT_FIELD) == PARENT_GONE:
            view.warnings.append(
                RecordError(
                    str(view.entity),
                    str(view.side),
                    record.id,
                    f"not synced: its company {record.get(PARENT_FIELD)!s} is archived because "
                    "its CRM twin was deleted",
                    PARENT_FIELD,
                    str(record.get(PARENT_FIELD)),
                )
            )
            return
        record = translated
    view.fps[record.id] = fp
    if stored is None:
        view.new[record.id] = record
    else:
        view.changed[record.id] = record


async def add_records(
    view: SideView,
    connector: Connector,
    ids: Sequence[str],
    names: frozenset[str],
    stored_fps: Mapping[str, str],
    *,
    parents: Mapping[str, str] | None = None,
) -> None:
    """Fetch records an incremental read did not bring (`Connector.get_many`) and file
    them as `read_side` would; ids already in the view are not fetched again."""
    wanted = [i for i in ids if i not in view.new and i not in view.changed]
    if not wanted:
        return
    for record in await connector.get_many(view.entity, wanted):
        _classify(view, record, names, stored_fps, parents)
