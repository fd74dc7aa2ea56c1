"""A clock tests set by hand, for code that takes ``clock: Callable[[], datetime]``."""

from __future__ import annotations

from datetime import datetime


class SettableClock:
    """Each call returns ``now``; a test moves time by assigning it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now
