"""Finance features around a sync: documents summaries, duplicate counterparties,
branding enrichment and client search. The command-line glue is `sync.cli.extras`."""

from sync.extras.branding import created_counterparties, enrich_created
from sync.extras.documents import (
    ClientDocument,
    ColumnWriter,
    DocumentColumns,
    DocumentsSummary,
    parse_document,
    render_summary,
    summarize,
    summary_columns,
)
from sync.extras.duplicates import (
    BlockedKey,
    DuplicateGroup,
    DuplicateReport,
    MergeOutcome,
    apply_merges,
    find_duplicates,
)
from sync.extras.search import SEARCH_LIMIT, find_clients, search_terms

__all__ = [
    "SEARCH_LIMIT",
    "BlockedKey",
    "ClientDocument",
    "ColumnWriter",
    "DocumentColumns",
    "DocumentsSummary",
    "DuplicateGroup",
    "DuplicateReport",
    "MergeOutcome",
    "apply_merges",
    "created_counterparties",
    "enrich_created",
    "find_clients",
    "find_duplicates",
    "parse_document",
    "render_summary",
    "search_terms",
    "summarize",
    "summary_columns",
]
