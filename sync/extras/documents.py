"""A read-only summary of a client's documents in Flowtly (``GET /clients/{id}/documents``).

`sync.flowtly.documents.parse_document` reads one raw item into a `ClientDocument`;
`summarize` folds them into a `DocumentsSummary`, and `summary_columns` gives the CRM cells
a summary is written to (`ColumnWriter`, e.g. the files connector).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from sync.flowtly.documents import ClientDocument, parse_document
from sync.model import EntityKind

__all__ = [
    "ClientDocument",
    "ColumnWriter",
    "DocumentColumns",
    "DocumentsSummary",
    "parse_document",
    "render_summary",
    "summarize",
    "summary_columns",
]


def _empty_totals() -> Mapping[str, Decimal]:
    return MappingProxyType({})


def _empty_counts() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class DocumentsSummary:
    """What a client's documents add up to. ``total_gross`` is per currency code."""

    client_id: str
    count: int = 0
    latest_issue_date: date | None = None
    total_gross: Mapping[str, Decimal] = field(default_factory=_empty_totals)
    by_type: Mapping[str, int] = field(default_factory=_empty_counts)
    by_status: Mapping[str, int] = field(default_factory=_empty_counts)


@dataclass(frozen=True, slots=True)
class DocumentColumns:
    """The CRM columns a summary is written to (``None``: not written)."""

    count: str | None = "documents_count"
    latest: str | None = "latest_document_date"
    totals: str | None = None


@runtime_checkable
class ColumnWriter(Protocol):
    """A CRM connector that can set columns which are not canonical fields.

    Writes are buffered like the connector's other writes and made durable by ``commit``.
    """

    async def write_columns(
        self, entity: EntityKind, record_id: str, values: Mapping[str, str]
    ) -> bool:
        """Set the cells; True when any of them changed."""
        ...

    async def commit(self) -> None:
        """Make buffered writes durable."""
        ...


def summarize(client_id: str, documents: Iterable[ClientDocument]) -> DocumentsSummary:
    """Fold ``documents`` into counts, the latest issue date and gross totals per currency.

    A document without a currency or amount still counts; it adds to no total.
    """
    count = 0
    latest: date | None = None
    totals: dict[str, Decimal] = {}
    types: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    for document in documents:
        count += 1
        if document.issue_date is not None and (latest is None or document.issue_date > latest):
            latest = document.issue_date
        if document.total_gross is not None and document.currency is not None:
            totals[document.currency] = (
                totals.get(document.currency, Decimal(0)) + document.total_gross
            )
        if document.type is not None:
            types[document.type] += 1
        if document.status is not None:
            statuses[document.status] += 1
    return DocumentsSummary(
        client_id,
        count,
        latest,
        MappingProxyType(dict(sorted(totals.items()))),
        MappingProxyType(dict(sorted(types.items()))),
        MappingProxyType(dict(sorted(statuses.items()))),
    )


def _totals_text(totals: Mapping[str, Decimal]) -> str:
    return "; ".join(f"{currency} {amount:.2f}" for currency, amount in totals.items())


def summary_columns(summary: DocumentsSummary, columns: DocumentColumns) -> dict[str, str]:
    """The CRM cells of ``summary``: count, latest issue date (ISO), totals text."""
    cells: dict[str, str] = {}
    if columns.count:
        cells[columns.count] = str(summary.count)
    if columns.latest:
        latest = summary.latest_issue_date
        cells[columns.latest] = latest.isoformat() if latest is not None else ""
    if columns.totals:
        cells[columns.totals] = _totals_text(summary.total_gross)
    return cells


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items()) or "-"


def render_summary(summary: DocumentsSummary) -> str:
    """The summary as a few human-readable lines."""
    latest = summary.latest_issue_date
    return (
        f"documents: {summary.count}\n"
        f"latest issue date: {latest.isoformat() if latest is not None else '-'}\n"
        f"total gross: {_totals_text(summary.total_gross) or '-'}\n"
        f"by type: {_counts_text(summary.by_type)}\n"
        f"by status: {_counts_text(summary.by_status)}\n"
    )
