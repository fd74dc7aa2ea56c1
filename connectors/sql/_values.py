"""Values between database columns and canonical fields, by the column's type.

Rows are selected raw (no SQLAlchemy result processing), so one bad cell (a SQLite
``DATETIME`` holding ``soon``, a text ``due_days``) rejects its row instead of breaking
the whole read; each `Column` turns its raw values into what normalization takes, and
canonical values into what its type binds, refusing what does not fit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from enum import Enum

import sqlalchemy as sa

from sync.model import Scalar

__all__ = ["Category", "Column", "ValueRefused", "as_text"]


class ValueRefused(ValueError):
    """A value this column cannot hold (the reason is the message)."""


class Category(Enum):
    """What a column holds, as far as converting values goes."""

    TEXT = "text"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    DATE = "date"
    UUID = "uuid"


def _category(column_type: sa.types.TypeEngine[object]) -> Category:
    # Order matters: Boolean and Enum subclass others in some dialects.
    if isinstance(column_type, sa.Boolean):
        return Category.BOOLEAN
    if isinstance(column_type, sa.Uuid):
        return Category.UUID
    if isinstance(column_type, sa.Integer):
        return Category.INTEGER
    if isinstance(column_type, sa.Numeric):
        return Category.NUMBER
    if isinstance(column_type, sa.DateTime):
        return Category.DATETIME
    if isinstance(column_type, sa.Date):
        return Category.DATE
    return Category.TEXT


def as_text(value: object) -> str:
    """A value as text (booleans as ``true``/``false``, like CSV cells)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        raise ValueRefused("binary data, not text")
    return str(value)


@dataclass(frozen=True, slots=True)
class Column:
    """One reflected column and how its values convert."""

    name: str
    category: Category
    length: int | None
    aware: bool
    """Whether a date-time column stores the offset (else its times are in ``zone``)."""
    zone: tzinfo
    nullable: bool

    @classmethod
    def of(cls, column: sa.Column[object], zone: tzinfo) -> Column:
        column_type = column.type
        length = getattr(column_type, "length", None)
        return cls(
            column.name,
            _category(column_type),
            length if isinstance(length, int) else None,
            bool(getattr(column_type, "timezone", False)),
            zone,
            bool(column.nullable),
        )

    @property
    def timed(self) -> bool:
        """Whether it holds date-times (a usable ``updated_at`` / ``deleted_at``)."""
        return self.category in (Category.DATETIME, Category.DATE)

    # -- reading ------------------------------------------------------------------------

    def moment(self, raw: object) -> datetime | None:
        """A date-time cell as an aware moment (naive ones taken in ``zone``)."""
        if raw is None:
            return None
        if isinstance(raw, datetime):
            moment = raw
        elif isinstance(raw, date):
            moment = datetime(raw.year, raw.month, raw.day)
        elif isinstance(raw, str):
            try:
                moment = datetime.fromisoformat(raw.strip())
            except ValueError:
                raise ValueRefused(f"{raw!r} is not a date-time") from None
        else:
            raise ValueRefused(f"{raw!r} is not a date-time")
        return moment.replace(tzinfo=self.zone) if moment.tzinfo is None else moment

    def read(self, raw: object, *, verbatim: bool = False) -> object:
        """A raw cell as normalization takes it; ``verbatim`` gives text."""
        if raw is None:
            return None
        if type(raw) is str and self.category is Category.TEXT:
            # The common case first: this runs for every cell of every row read.
            return (raw.strip() or None) if verbatim else raw
        if isinstance(raw, bytes | bytearray | memoryview):
            raise ValueRefused("binary data, not a value")
        if self.category is Category.DATETIME or (
            self.category is Category.DATE and isinstance(raw, str)
        ):
            raw = self.moment(raw)
        elif self.category is Category.BOOLEAN and isinstance(raw, int):
            raw = bool(raw)
        if verbatim:
            if isinstance(raw, datetime):
                return raw.astimezone(UTC).isoformat()
            return as_text(raw).strip() or None
        if isinstance(raw, Decimal | uuid.UUID | date) and not isinstance(raw, datetime):
            return raw.isoformat() if isinstance(raw, date) else str(raw)
        return raw

    def record_id(self, raw: object) -> str | None:
        """An id cell as the record id text."""
        if raw is None:
            return None
        text = as_text(raw).strip()
        return text or None

    # -- writing ------------------------------------------------------------------------

    def bind(self, value: Scalar) -> object:
        """The value to store for canonical ``value``; `ValueRefused` if it cannot be."""
        if value is None:
            return None
        category = self.category
        if category is Category.TEXT:
            text = as_text(value)
            if self.length is not None and len(text) > self.length:
                raise ValueRefused(f"{len(text)} characters, the column holds {self.length}")
            return text
        if category is Category.BOOLEAN:
            return _boolean(value)
        if category is Category.INTEGER:
            if isinstance(value, bool):
                return int(value)
            try:
                return int(str(value).strip())
            except ValueError:
                raise ValueRefused(f"{value!r} is not an integer") from None
        if category is Category.NUMBER:
            try:
                return Decimal(as_text(value).strip())
            except InvalidOperation:
                raise ValueRefused(f"{value!r} is not a number") from None
        if category is Category.UUID:
            try:
                return uuid.UUID(str(value))
            except ValueError:
                raise ValueRefused(f"{value!r} is not a UUID") from None
        moment = self.moment(value if isinstance(value, str) else as_text(value))
        assert moment is not None
        if category is Category.DATE:
            return moment.astimezone(self.zone).date()
        return self.stamp(moment)

    def stamp(self, moment: datetime) -> datetime:
        """An aware moment as this date-time column stores it."""
        if self.aware:
            return moment
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def key(self, record_id: str) -> object | None:
        """The id cell value of ``record_id``; None when no row can have it."""
        try:
            return self.bind(record_id)
        except ValueRefused:
            return None


def _boolean(value: Scalar) -> bool:
    if isinstance(value, bool):
        return value
    text = as_text(value).strip().lower()
    if text in ("true", "1", "yes", "y", "t", "on"):
        return True
    if text in ("false", "0", "no", "n", "f", "off"):
        return False
    raise ValueRefused(f"{value!r} is not a boolean")
