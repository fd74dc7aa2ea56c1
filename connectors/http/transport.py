"""The network transport under every API client: aiohttp's HTTP/1.1 stack behind httpx.

httpx stays the client interface (requests, responses, timeouts, ``MockTransport`` and
``ASGITransport`` in tests); the bytes travel through aiohttp, whose C response parser and
connection pool cost about half the CPU per request of httpcore's (``bench_client.py
--backends httpx,aiohttp``). ``httpx-aiohttp`` provides the adapter.

One thing is corrected on the way: that adapter reports every aiohttp connection error
that is not a connect error as ``httpx.ConnectTimeout``, including a server that dropped
the connection *after* the request was sent. Retry policies treat connect failures as
"provably unsent" (safe to re-send a POST), so such a drop must read as a read error:
otherwise a create that reached the server could be sent twice. And aiohttp's own silent
re-send of a GET, PUT or DELETE whose pooled connection dropped is turned off: every
failure must reach the client's retry policy, which counts it, paces it and knows that a
DELETE answered 404 after a lost answer had landed.

The environment's proxy settings (HTTPS_PROXY, NO_PROXY) are read once per origin, not
by aiohttp on every request: its ``trust_env`` sends each request through a worker
thread twice (the proxy lookup and a ``~/.netrc`` read), two thread hops per request for
an answer that never changes. A netrc entry never supplied a host's credentials under
httpx's own transport either: the API token is the only one.
"""

from __future__ import annotations

import aiohttp
import httpx
from aiohttp.helpers import get_env_proxy_for_url
from httpx_aiohttp import AiohttpTransport
from yarl import URL

__all__ = ["network_transport"]


def _unsent(exc: BaseException) -> type[httpx.TransportError] | None:
    """The httpx error for an aiohttp failure that happened before anything was sent."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError
    return None


def _translated(exc: httpx.TransportError) -> httpx.TransportError:
    cause = exc.__cause__
    if not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) or cause is None:
        return exc
    unsent = _unsent(cause)
    if unsent is not None:
        return exc if type(exc) is unsent else unsent(str(exc))
    if isinstance(cause, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(str(exc))
    return httpx.ReadError(str(exc))


class _Transport(AiohttpTransport):
    """``AiohttpTransport`` whose connection errors say truthfully whether a request left."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, client=self._session)
        self._proxies: dict[tuple[str, str, int | None], httpx.Proxy | None] = {}

    def _session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0,
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
        )
        # No cookie jar: an API token is the only credential, and a cookie set by one
        # answer must not ride along on later requests. Proxies come from the environment
        # (HTTPS_PROXY, NO_PROXY) as with httpx's own transport, looked up by `_proxy_for`.
        session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        # No constructor argument exists for it (aiohttp 3.10-3.14); the attribute is how
        # the session decides whether to re-send on a dropped persistent connection.
        session._retry_connection = False
        return session

    def _proxy_for(self, url: httpx.URL) -> httpx.Proxy | None:
        """The environment's proxy for ``url``'s origin (None: connect directly)."""
        origin = (url.scheme, url.host, url.port)
        if origin not in self._proxies:
            try:
                proxy, auth = get_env_proxy_for_url(URL(str(url)))
            except LookupError:  # no proxy for this scheme, or NO_PROXY names the host
                self._proxies[origin] = None
            else:
                credentials = None if auth is None else (auth.login, auth.password)
                self._proxies[origin] = httpx.Proxy(str(proxy), auth=credentials)
        return self._proxies[origin]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # The adapter reads ``proxy`` before its first await, so concurrent requests of
        # one loop each send with their own origin's proxy.
        self.proxy = self._proxy_for(request.url)
        try:
            return await super().handle_async_request(request)
        except httpx.TransportError as exc:
            translated = _translated(exc)
            if translated is exc:
                raise
            raise translated from exc.__cause__


def network_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """The transport for a client that talks to a real server over the network."""
    return _Transport(limits)
