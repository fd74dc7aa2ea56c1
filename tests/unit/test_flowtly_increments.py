"""The cursor of an incremental Flowtly read and the query an increment sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connectors.base import Cursor
from sync.flowtly.increments import OVERLAP, CursorTracker, changed_since

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


LATER = T0 + timedelta(hours=1)


def test_an_increment_lists_what_changed_at_or_after_the_cursor() -> None:
    assert changed_since(Cursor(T0, "7")) == {"updatedAt[after]": T0.isoformat()}
    assert changed_since(Cursor(None, None)) == {}


def test_the_cursor_is_never_later_than_the_reads_start_less_the_overlap() -> None:
    # A read started at T0 saw a record stamped after it (edited while it was read).
    tracker = CursorTracker(None, T0)
    tracker.saw({"updatedAt": (T0 + timedelta(seconds=30)).isoformat()}, "9")
    assert tracker.cursor() == Cursor(T0 - OVERLAP, None)
    assert CursorTracker(None, T0).cursor() == Cursor(T0 - OVERLAP, None)


def test_the_cursor_is_the_latest_stamp_and_id_seen() -> None:
    tracker = CursorTracker(None, LATER)
    tracker.saw({"updatedAt": "2026-03-01T09:00:05+00:00"}, "2")
    tracker.saw({"updatedAt": "2026-03-01T09:00:09+00:00"}, "1")
    tracker.saw({"updatedAt": "2026-03-01T09:00:09+00:00"}, "3")
    assert tracker.cursor() == Cursor(datetime(2026, 3, 1, 9, 0, 9, tzinfo=UTC), "3")


def test_an_empty_increment_keeps_the_cursor_where_it_was() -> None:
    assert CursorTracker(Cursor(T0, "7"), LATER).cursor() == Cursor(T0, "7")


def test_a_rejected_member_or_one_without_a_stamp_holds_the_cursor_back() -> None:
    rejected = CursorTracker(None, LATER)
    rejected.saw({"updatedAt": "2026-03-01T09:00:05+00:00"}, "2")
    rejected.hold()
    assert rejected.cursor() is None
    unstamped = CursorTracker(Cursor(T0, "7"), LATER)
    unstamped.saw({"name": "no stamp"}, "8")
    assert unstamped.cursor() is None
