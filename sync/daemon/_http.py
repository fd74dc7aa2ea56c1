"""The daemon's HTTP endpoint: ``/healthz``, ``/metrics`` and ``POST /webhooks/{source}``."""

from __future__ import annotations

import asyncio

import structlog
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sync.daemon._daemon import Daemon
from sync.daemon._guard import DEFAULT_LIMITS, HttpLimits
from sync.daemon._webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER
from sync.model import Side

__all__ = ["MAX_WEBHOOK_BODY", "WEBHOOK_SOURCES", "create_app"]

MAX_WEBHOOK_BODY = 1 << 20
"""Bytes; a webhook only says "something changed", so a larger body is refused unread."""

WEBHOOK_SOURCES = frozenset(side.value for side in Side)
"""``/webhooks/crm`` and ``/webhooks/flowtly``."""

_SHOWN_SOURCE = 40
log = structlog.get_logger("sync.daemon")


def _too_large() -> JSONResponse:
    return JSONResponse({"error": f"body larger than {MAX_WEBHOOK_BODY} bytes"}, 413)


async def _body(request: Request) -> bytes | None:
    """The request body, or None once it exceeds `MAX_WEBHOOK_BODY`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_WEBHOOK_BODY:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_WEBHOOK_BODY:
            return None
    return bytes(body)


def _too_slow(seconds: float) -> JSONResponse:
    # Closing: the rest of the body may still be on its way, and nobody reads it.
    return JSONResponse(
        {"error": f"body not received within {seconds:g} s"}, 408, headers={"Connection": "close"}
    )


def create_app(daemon: Daemon, limits: HttpLimits = DEFAULT_LIMITS) -> Starlette:
    """The ASGI app serving ``daemon``'s health, metrics and webhooks.

    A webhook body must arrive within ``limits.body_timeout``; a sender that hangs up
    meanwhile is logged once (``webhook_disconnected``), without a traceback.
    """

    async def healthz(_request: Request) -> Response:
        health = daemon.health()
        return JSONResponse(health.body(), status_code=200 if health.healthy else 503)

    async def metrics(_request: Request) -> Response:
        return Response(daemon.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def webhook(request: Request) -> Response:
        source = str(request.path_params["source"])[:_SHOWN_SOURCE]
        try:
            async with asyncio.timeout(limits.body_timeout):
                body = await _body(request)
        except TimeoutError:
            daemon.metrics.webhooks.labels("too_slow").inc()
            log.info("webhook_too_slow", source=source, seconds=limits.body_timeout)
            return _too_slow(limits.body_timeout)
        except ClientDisconnect:
            daemon.metrics.webhooks.labels("disconnected").inc()
            log.info("webhook_disconnected", source=source)
            return Response(status_code=400)  # never sent: the client is gone
        if body is None:
            daemon.metrics.webhooks.labels("too_large").inc()
            return _too_large()
        rejection = daemon.webhooks.verify(
            request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER), body
        )
        if rejection is not None:
            daemon.metrics.webhooks.labels(rejection.value).inc()
            log.warning("webhook_rejected", source=source, reason=rejection.value)
            return JSONResponse({"error": "unauthorized"}, 401)
        if source not in WEBHOOK_SOURCES:
            return JSONResponse(
                {"error": "unknown webhook source", "sources": sorted(WEBHOOK_SOURCES)}, 404
            )
        wanted = request.query_params.get("sync")
        if wanted is not None and wanted not in daemon.names:
            return JSONResponse({"error": "no such sync", "syncs": daemon.names}, 404)
        if daemon.stopping:
            return JSONResponse({"error": "shutting down"}, 503)
        names = [wanted] if wanted is not None else daemon.names
        for name in names:
            daemon.request_run(name)
        daemon.metrics.webhooks.labels("accepted").inc()
        log.info("webhook_accepted", source=source, syncs=names)
        return JSONResponse({"triggered": names}, 202)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/webhooks/{source}", webhook, methods=["POST"]),
        ]
    )
