"""SQLite persistence: each record's JSON keyed by resource and id, ordered by a sequence."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from sync.privacy.files import private_sqlite_file
from sync.sandbox._json import JsonObject

__all__ = [
    "Page",
    "SandboxDb",
    "Where",
    "compact",
    "name_or_tax_id",
    "parent_is",
    "updated_since",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    resource TEXT NOT NULL,
    seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    parent INTEGER,
    body TEXT NOT NULL,
    PRIMARY KEY (resource, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS records_key ON records (resource, key);
CREATE INDEX IF NOT EXISTS records_parent ON records (resource, parent, seq);
CREATE INDEX IF NOT EXISTS records_updated
    ON records (resource, json_extract(body, '$.updatedAt'));
CREATE TABLE IF NOT EXISTS sequences (resource TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


_REMEMBERED = 1000
"""Counts and page positions kept for this many distinct listings at most."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(
    method: Callable[Concatenate[SandboxDb, _P], _R],
) -> Callable[Concatenate[SandboxDb, _P], _R]:
    # One connection serves the event loop and, when served from a thread, test code too.
    def run(self: SandboxDb, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock:
            return method(self, *args, **kwargs)

    run.__doc__ = method.__doc__
    return run


def compact(value: object) -> str | None:
    """Tax identifiers compared without separators and case (``PL 123-45`` == ``pl12345``)."""
    if not isinstance(value, str):
        return None
    return "".join(ch for ch in value if ch.isalnum()).upper()


def _fold(value: object) -> str | None:
    return value.casefold() if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing plus the total across all pages."""

    total: int
    items: list[JsonObject]


@dataclass(frozen=True, slots=True)
class Where:
    """An extra SQL condition on ``body``/``parent`` (built only from constants here)."""

    sql: str
    args: tuple[object, ...]


class SandboxDb:
    """Records of every resource in one SQLite database (a file, or memory)."""

    def __init__(self, path: Path | str | None) -> None:
        target = ":memory:" if path is None else str(path)
        if target != ":memory:":
            # The emulated account holds whatever a trial synced: real tax ids, often.
            private_sqlite_file(Path(target))
        # The app may be built on one thread and served on another (uvicorn in a thread).
        self._db = sqlite3.connect(target, check_same_thread=False)
        self._lock = threading.RLock()
        self._db.create_function("compact", 1, compact, deterministic=True)
        self._db.create_function("fold", 1, _fold, deterministic=True)
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()
        # Listings walk pages in order, and a count or an OFFSET costs a scan of every
        # record before the page: 300,000 contacts made each page slower than the last.
        # Both are remembered until the next write (this process owns the database).
        self._generation = 0
        self._totals: dict[tuple[object, ...], tuple[int, int]] = {}
        self._resume: dict[tuple[object, ...], tuple[int, int, int]] = {}

    @_locked
    def close(self) -> None:
        """Flush and close the database."""
        self._db.commit()
        self._db.close()

    @_locked
    def next_seq(self, resource: str) -> int:
        """The next sequence number of ``resource``; never reused, even after a delete."""
        row = self._db.execute(
            "INSERT INTO sequences (resource, last) VALUES (?, 1) "
            "ON CONFLICT (resource) DO UPDATE SET last = last + 1 RETURNING last",
            (resource,),
        ).fetchone()
        return int(row[0])

    @_locked
    def put(self, resource: str, seq: int, key: str, parent: int | None, body: JsonObject) -> None:
        """Insert or replace one record."""
        self._db.execute(
            "INSERT INTO records (resource, seq, key, parent, body) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (resource, seq) DO UPDATE SET key = excluded.key, "
            "parent = excluded.parent, body = excluded.body",
            (resource, seq, key, parent, json.dumps(body, separators=(",", ":"))),
        )
        self._db.commit()
        self._generation += 1

    @_locked
    def put_many(self, resource: str, rows: Iterable[tuple[int, str, JsonObject]]) -> None:
        """Insert many parentless records in one transaction (reference data seeding)."""
        self._db.executemany(
            "INSERT OR REPLACE INTO records (resource, seq, key, parent, body) "
            "VALUES (?, ?, ?, NULL, ?)",
            ((resource, s, k, json.dumps(b, separators=(",", ":"))) for s, k, b in rows),
        )
        self._db.execute(
            "INSERT INTO sequences (resource, last) "
            "SELECT ?, coalesce(max(seq), 0) FROM records WHERE resource = ? "
            "ON CONFLICT (resource) DO UPDATE SET last = max(last, excluded.last)",
            (resource, resource),
        )
        self._db.commit()
        self._generation += 1

    @_locked
    def get(self, resource: str, key: str) -> tuple[int, JsonObject] | None:
        """``(seq, body)`` of one record, or None."""
        row = self._db.execute(
            "SELECT seq, body FROM records WHERE resource = ? AND key = ?", (resource, key)
        ).fetchone()
        if row is None:
            return None
        body: JsonObject = json.loads(row[1])
        return int(row[0]), body

    @_locked
    def delete(self, resource: str, key: str) -> bool:
        """Remove one record; False if it did not exist."""
        cursor = self._db.execute(
            "DELETE FROM records WHERE resource = ? AND key = ?", (resource, key)
        )
        self._db.commit()
        self._generation += 1
        return cursor.rowcount > 0

    @_locked
    def page(
        self,
        resource: str,
        offset: int,
        limit: int | None,
        wheres: Sequence[Where] = (),
        *,
        descending: bool = False,
    ) -> Page:
        """Records ordered by sequence (last first if ``descending``), ``limit`` None
        meaning all."""
        sql = " FROM records WHERE resource = ?"
        args: list[object] = [resource]
        for where in wheres:
            sql += f" AND ({where.sql})"
            args.extend(where.args)
        order, after = (" ORDER BY seq DESC", "<") if descending else (" ORDER BY seq", ">")
        query = (sql, *args)
        if len(self._totals) > _REMEMBERED or len(self._resume) > _REMEMBERED:
            self._totals.clear()
            self._resume.clear()
        start = offset
        counted = self._totals.get(query)
        if counted is not None and counted[0] == self._generation:
            total = counted[1]
        else:
            total = int(self._db.execute("SELECT count(*)" + sql, args).fetchone()[0])
            self._totals[query] = (self._generation, total)
        resumed = (*query, order)
        resume = self._resume.get(resumed)
        if resume is not None and resume[:2] == (self._generation, start):
            # The page after the last one served starts after its last record.
            sql, args, offset = sql + f" AND seq {after} ?", [*args, resume[2]], 0
        rows = self._db.execute(
            "SELECT seq, body" + sql + order + " LIMIT ? OFFSET ?",
            [*args, -1 if limit is None else limit, offset],
        ).fetchall()
        if rows:
            self._resume[resumed] = (self._generation, start + len(rows), int(rows[-1][0]))
        return Page(total, [json.loads(row[1]) for row in rows])

    @_locked
    def children(self, resource: str, parents: Sequence[int]) -> dict[int, list[JsonObject]]:
        """Records of ``resource`` grouped by parent id, in sequence order."""
        found: dict[int, list[JsonObject]] = {p: [] for p in parents}
        if not parents:
            return found
        marks = ",".join("?" * len(parents))
        # Without statistics SQLite walks every record of ``resource`` by its primary key
        # for this (3 ms a page of clients at 25,000 contacts); the parent index answers it
        # in a tenth of a millisecond, already in (parent, seq) order.
        sql = "SELECT parent, body FROM records INDEXED BY records_parent WHERE resource = ? "
        sql += f"AND parent IN ({marks}) ORDER BY parent, seq"
        rows = self._db.execute(sql, [resource, *parents])
        for parent, body in rows:
            found[int(parent)].append(json.loads(body))
        return found

    @_locked
    def meta(self, key: str) -> str | None:
        """A stored setting (e.g. whether reference data was seeded)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @_locked
    def set_meta(self, key: str, value: str) -> None:
        """SandboxDb a setting."""
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
        self._db.commit()


def parent_is(parent: int) -> Where:
    """Records whose indexed parent is ``parent``."""
    return Where("parent = ?", (parent,))


_COMPARISONS = frozenset({">=", ">", "<=", "<"})
_UPDATED_AT = "json_extract(body, '$.updatedAt')"
"""Spelled as in the ``records_updated`` index, so SQLite answers from the index."""


def updated_since(resource: str, comparison: str, moment: datetime) -> Where:
    """Records of ``resource`` whose ``updatedAt`` compares to ``moment`` by ``comparison``.

    Stored times are UTC at whole seconds (``2024-05-01T10:00:00+00:00``): ``moment`` in the
    same form compares as text, and one with a fraction sorts after its whole second. The
    ids are picked from the ``records_updated`` index first: as a plain condition, SQLite
    walks every record in id order (to skip the sort) and reads each one's JSON.
    """
    if comparison not in _COMPARISONS:
        raise ValueError(f"not a comparison: {comparison!r}")
    picked = f"SELECT seq FROM records WHERE resource = ? AND {_UPDATED_AT} {comparison} ?"  # noqa: S608 - one of four constant comparisons; values bound
    return Where(f"seq IN ({picked})", (resource, moment.astimezone(UTC).isoformat()))


def name_or_tax_id(term: str) -> Where:
    """Client search: name contains ``term`` (case-insensitive) or VAT/TIN equals it."""
    return Where(
        "instr(fold(json_extract(body, '$.name')), ?) > 0 "
        "OR compact(json_extract(body, '$.vatNumber')) = ? "
        "OR compact(json_extract(body, '$.tin')) = ?",
        (term.casefold(), compact(term), compact(term)),
    )
