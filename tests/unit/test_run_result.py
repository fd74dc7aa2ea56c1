"""`RunResult`'s repr: it counts what a run holds instead of listing it."""

from __future__ import annotations

import asyncio

from sync.engine.job import RunResult
from sync.engine.ops import Action, FieldChange, Operation
from sync.errors import RecordError
from sync.model import EntityKind, Side


def _result(creates: int) -> RunResult:
    result = RunResult("crm", dry_run=False, run_id=7)
    result.operations = [
        Operation(
            EntityKind.CLIENT,
            Action.CREATE,
            Side.FLOWTLY,
            f"C{n}",
            None,
            (FieldChange("name", None, f"Company {n}"), FieldChange("city", None, "Kraków")),
            outcome="ok",
        )
        for n in range(creates)
    ]
    result.errors = [RecordError("contact", "crm", "P9", "invalid e-mail", field="email")]
    return result


def test_the_repr_counts_operations_instead_of_listing_them() -> None:
    text = repr(_result(10_000))
    assert text == (
        "RunResult(sync='crm', dry_run=False, run_id=7, operations=10000, errors=1, "
        "warnings=0, interrupted=False)"
    )
    assert "Company" not in text


def test_a_first_syncs_result_returned_by_asyncio_run_is_not_rendered_whole() -> None:
    # asyncio.run builds the repr of its main task's result on the way out; with the
    # generated repr, that string grew with every operation of the run.
    seen: list[int] = []

    class Watched(RunResult):
        __slots__ = ()

        def __repr__(self) -> str:
            text = RunResult.__repr__(self)
            seen.append(len(text))
            return text

    result = _result(2_000)

    async def run() -> RunResult:
        watched = Watched(result.sync, result.dry_run, result.run_id)
        watched.operations = result.operations
        return watched

    returned = asyncio.run(run())
    assert len(returned.operations) == 2_000
    assert all(length < 200 for length in seen)
