"""``flowtly-sync daemon``: scheduled runs of every sync, health and metrics, webhooks.

`Daemon` holds the schedule and the state of each sync; `create_app` serves it over HTTP
(``/healthz``, ``/metrics``, ``POST /webhooks/{source}``); `serve_daemon` runs both until a
signal; `cmd_daemon` is the CLI command.
"""

from sync.daemon._daemon import Daemon, Health, SyncState, TickOutcome, TickReason, backoff_ticks
from sync.daemon._guard import HttpLimits
from sync.daemon._http import MAX_WEBHOOK_BODY, WEBHOOK_SOURCES, create_app
from sync.daemon._metrics import DaemonMetrics
from sync.daemon._runner import Runner, run_job, secrets_of
from sync.daemon._serve import (
    EXIT_FORCED,
    EXIT_OK,
    READY_PREFIX,
    cmd_daemon,
    http_server,
    run_daemon,
    serve_daemon,
)
from sync.daemon._webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookRejection,
    WebhookVerifier,
    sign,
)

__all__ = [
    "EXIT_FORCED",
    "EXIT_OK",
    "MAX_WEBHOOK_BODY",
    "READY_PREFIX",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WEBHOOK_SOURCES",
    "Daemon",
    "DaemonMetrics",
    "Health",
    "HttpLimits",
    "Runner",
    "SyncState",
    "TickOutcome",
    "TickReason",
    "WebhookRejection",
    "WebhookVerifier",
    "backoff_ticks",
    "cmd_daemon",
    "create_app",
    "http_server",
    "run_daemon",
    "run_job",
    "secrets_of",
    "serve_daemon",
    "sign",
]
