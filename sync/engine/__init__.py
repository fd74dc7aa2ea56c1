"""The sync engine: detect, plan (pure), apply. It knows only the connector protocol."""

from sync.engine.inputs import PlanInput
from sync.engine.ops import Action, FieldChange, Operation, Plan, Step, Write
from sync.engine.plan import plan_entity
from sync.engine.run import RunResult, SyncJob, run_sync
from sync.policy import ConflictPolicy, Direction, SyncPolicy

__all__ = [
    "Action",
    "ConflictPolicy",
    "Direction",
    "FieldChange",
    "Operation",
    "Plan",
    "PlanInput",
    "RunResult",
    "Step",
    "SyncJob",
    "SyncPolicy",
    "Write",
    "plan_entity",
    "run_sync",
]
