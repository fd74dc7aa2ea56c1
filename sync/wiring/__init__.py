"""Wiring: from a validated configuration to live objects.

`sides` builds the CRM and Flowtly connectors (the one place that turns a ``sandbox://``
URL into the in-process sandbox); `job` builds the policy, the quality gates, the store and
the after-run hook, and opens a ready `sync.engine.run.SyncJob`.
"""

from sync.wiring.job import (
    after_run_of,
    gates_of,
    open_job,
    open_store,
    policy_of,
    scrubber_of,
)
from sync.wiring.sides import (
    SANDBOX_URL,
    build_crm,
    build_flowtly,
    build_side,
    flowtly_client,
    flowtly_side,
)

__all__ = [
    "SANDBOX_URL",
    "after_run_of",
    "build_crm",
    "build_flowtly",
    "build_side",
    "flowtly_client",
    "flowtly_side",
    "gates_of",
    "open_job",
    "open_store",
    "policy_of",
    "scrubber_of",
]
