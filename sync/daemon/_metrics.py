"""The daemon's Prometheus metrics, in a registry of their own (one per daemon instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from connectors.http import RequestStats
from sync.engine.run import RunResult

__all__ = ["DaemonMetrics"]

_DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class DaemonMetrics:
    """Counters, gauges and histograms of one daemon; ``render()`` is the /metrics body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.runs = Counter(
            "flowtly_sync_runs",
            "Runs by outcome (ok, partial, interrupted, failed).",
            ["sync", "outcome"],
            registry=registry,
        )
        self.skipped = Counter(
            "flowtly_sync_ticks_skipped",
            "Scheduled ticks that started no run, by reason (lock_held, busy, backoff).",
            ["sync", "reason"],
            registry=registry,
        )
        self.operations = Counter(
            "flowtly_sync_operations",
            "Operations applied, by entity and action (failed ones count as action error).",
            ["sync", "entity", "action"],
            registry=registry,
        )
        self.rejected = Gauge(
            "flowtly_sync_rejected_records",
            "Records currently rejected (they wait for a fix at their source).",
            ["sync"],
            registry=registry,
        )
        self.conflicts = Gauge(
            "flowtly_sync_pending_conflicts",
            "Open conflicts waiting for a decision.",
            ["sync"],
            registry=registry,
        )
        self.last_success = Gauge(
            "flowtly_sync_last_success_timestamp_seconds",
            "Unix time at which the last run that did not fail ended.",
            ["sync"],
            registry=registry,
        )
        self.duration = Histogram(
            "flowtly_sync_run_duration_seconds",
            "Duration of runs, failed ones included.",
            ["sync"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.requests = Counter(
            "flowtly_sync_flowtly_requests",
            "HTTP requests sent to Flowtly, by response status (error: no response).",
            ["sync", "status"],
            registry=registry,
        )
        self.webhooks = Counter(
            "flowtly_sync_webhooks",
            "Webhook requests by outcome (accepted or the reason of the refusal).",
            ["outcome"],
            registry=registry,
        )

    def record_result(self, sync: str, result: RunResult) -> None:
        """Count a finished run's operations (and record errors as action ``error``)."""
        for entity, actions in result.summary().items():
            for action, count in actions.items():
                self.operations.labels(sync, entity, action).inc(count)

    def record_requests(self, sync: str, stats: RequestStats) -> None:
        """Add one client's request counters (each run has a client of its own)."""
        for status, count in stats.by_status.items():
            self.requests.labels(sync, str(status)).inc(count)
        if stats.transport_errors:
            self.requests.labels(sync, "error").inc(stats.transport_errors)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
