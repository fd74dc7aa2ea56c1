"""The HTTP kit every API side is built on (Flowtly and the CRM APIs alike).

A vendor connector builds one `ApiClient` (its base URL, credentials as headers, the
secrets to keep out of messages, an `ErrorReader` for its error documents, `HttpLimits`
from its settings) and maps resources onto it; throttling, retries, deadlines, size caps
and the status-to-error mapping are done here. Modules whose name starts with ``_`` are
private.
"""

from connectors.http.client import ApiClient, HttpLimits, QueryParams, display_url, is_loopback
from connectors.http.limits import RequestStats, RetryPolicy, RetryScope, Throttle
from connectors.http.pagination import Page, Paginator, next_offset
from connectors.http.statuses import ErrorReader, Side, parse_retry_after
from connectors.http.transport import network_transport

__all__ = [
    "ApiClient",
    "ErrorReader",
    "HttpLimits",
    "Page",
    "Paginator",
    "QueryParams",
    "RequestStats",
    "RetryPolicy",
    "RetryScope",
    "Side",
    "Throttle",
    "display_url",
    "is_loopback",
    "network_transport",
    "next_offset",
    "parse_retry_after",
]
