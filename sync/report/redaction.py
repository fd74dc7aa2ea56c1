"""A run's result with the sides' words scrubbed of secrets, ready for any report format.

The texts a side wrote (refusal reasons, violation messages, failure messages) reach a
`RunResult` as the side said them; a side that echoes the ``Authorization`` header would
otherwise have the token printed by every renderer. Scrubbing the result once, before it is
rendered, keeps the renderers free of the concern.
"""

from __future__ import annotations

import dataclasses

from sync.engine.ops import Operation
from sync.engine.run import RunResult
from sync.engine.spool import OperationSpool
from sync.errors import RecordError
from sync.privacy.redact import Scrubber

__all__ = ["scrubbed"]


def _error(error: RecordError, scrub: Scrubber) -> RecordError:
    return dataclasses.replace(error, reason=scrub(error.reason), value=scrub(error.value))


def _operation(op: Operation, scrub: Scrubber) -> Operation:
    # Most operations carry no message: they stay the same objects (a run may have 100k).
    return dataclasses.replace(op, message=scrub(op.message)) if op.message else op


def scrubbed(result: RunResult, scrub: Scrubber) -> RunResult:
    """``result`` with every error, warning and operation message scrubbed by ``scrub``."""
    ops = result.operations
    return dataclasses.replace(
        result,
        # A spool keeps in memory exactly the operations with a message: only those change.
        operations=ops.with_kept(lambda op: _operation(op, scrub))
        if isinstance(ops, OperationSpool)
        else [_operation(op, scrub) for op in ops],
        errors=[_error(e, scrub) for e in result.errors],
        warnings=[_error(w, scrub) for w in result.warnings],
    )
