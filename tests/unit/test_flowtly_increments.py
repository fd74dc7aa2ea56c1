"""The cursor of an incremental Flowtly read and the query an increment sends."""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.base import Cursor
from sync.flowtly.increments import OVERLAP, CursorTracker, changed_since

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_an_increment_starts_the_overlap_before_the_cursor() -> None:
    assert changed_since(Cursor(T0, "7")) == {"updatedAt[after]": (T0 - OVERLAP).isoformat()}
    assert changed_since(Cursor(None, None)) == {}


def test_the_cursor_is_the_latest_stamp_and_id_seen() -> None:
    tracker = CursorTracker(None)
    tracker.saw({"updatedAt": "2026-03-01T09:00:05+00:00"}, "2")
    tracker.saw({"updatedAt": "2026-03-01T09:00:09+00:00"}, "1")
    tracker.saw({"updatedAt": "2026-03-01T09:00:09+00:00"}, "3")
    assert tracker.cursor() == Cursor(datetime(2026, 3, 1, 9, 0, 9, tzinfo=UTC), "3")


def test_an_empty_increment_keeps_the_cursor_where_it_was() -> None:
    assert CursorTracker(Cursor(T0, "7")).cursor() == Cursor(T0, "7")


def test_a_rejected_member_or_one_without_a_stamp_holds_the_cursor_back() -> None:
    rejected = CursorTracker(None)
    rejected.saw({"updatedAt": "2026-03-01T09:00:05+00:00"}, "2")
    rejected.hold()
    assert rejected.cursor() is None
    unstamped = CursorTracker(Cursor(T0, "7"))
    unstamped.saw({"name": "no stamp"}, "8")
    assert unstamped.cursor() is None
