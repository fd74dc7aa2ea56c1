"""Writing HubSpot through its batch endpoints, 100 inputs a call.

Results are matched to inputs by what HubSpot echoes (the ``objectWriteTraceId`` we give
each create, the id of each update), never by position; a create result without a trace
id (older API versions do not echo it) is paired with the one input whose properties it
holds, or not at all. A 207 names the inputs it
refused in ``errors[].context`` (``ids`` or ``objectWriteTraceId``): those are rejected
alone with HubSpot's message. A 400, 404 or 409 (a contact's e-mail taken) for a whole
batch does not say which inputs
were at fault, so the batch is split in halves until each refusal has one input, and the
rest go through. An input HubSpot answered nothing about is reported as a transient
failure (a create that may have landed is found by the engine's next pass, not re-sent).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.hubspot._api import BATCH_SIZE
from sync.errors import (
    ConnectorError,
    MethodNotAllowed,
    NotFound,
    TransientError,
    ValidationFailed,
)

__all__ = ["BatchOutcome", "send_in_batches"]

Send = Callable[[Sequence[Mapping[str, object]]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """Per input key: the object HubSpot answered with, or the error refusing it."""

    objects: dict[str, Mapping[str, Any]]
    errors: dict[str, ConnectorError]


def _named(error: Mapping[str, Any]) -> list[str]:
    context = error.get("context")
    if not isinstance(context, Mapping):
        return []
    names: list[str] = []
    for key in ("objectWriteTraceId", "ids", "id"):
        value = context.get(key)
        if isinstance(value, list):
            names.extend(str(one) for one in value)
        elif isinstance(value, str | int):
            names.append(str(value))
    return names


def _item_error(error: Mapping[str, Any], action: str) -> ConnectorError:
    message = str(error.get("message") or "refused without a message")
    category = str(error.get("category") or "")
    text = f"HubSpot batch/{action} refused it: {message}" + (f" ({category})" if category else "")
    if category == "OBJECT_NOT_FOUND":
        return NotFound(text, status=404, detail=message, side="hubspot")
    return ValidationFailed(text, status=207, detail=message, side="hubspot")


async def send_in_batches(
    action: str,
    inputs: Sequence[tuple[str, Mapping[str, object]]],
    send: Send,
    key_of: Callable[[Mapping[str, Any]], str | None],
) -> BatchOutcome:
    """Send ``(key, input)`` pairs through ``send`` (one batch endpoint), 100 a call.

    ``key_of`` finds the key of an object in the answer (its trace id or id); an
    endpoint answering 204 (archive) acknowledges every input of the call.
    """
    outcome = BatchOutcome({}, {})
    for start in range(0, len(inputs), BATCH_SIZE):
        await _send(action, list(inputs[start : start + BATCH_SIZE]), send, key_of, outcome)
    return outcome


async def _send(
    action: str,
    inputs: list[tuple[str, Mapping[str, object]]],
    send: Send,
    key_of: Callable[[Mapping[str, Any]], str | None],
    outcome: BatchOutcome,
) -> None:
    try:
        answer = await send([payload for _, payload in inputs])
    except (ValidationFailed, NotFound, MethodNotAllowed) as refused:
        if isinstance(refused, MethodNotAllowed) and refused.status != 409:
            raise  # a protocol mismatch of ours, not an input HubSpot refused
        if len(inputs) == 1:
            outcome.errors[inputs[0][0]] = refused
            return
        middle = len(inputs) // 2
        await _send(action, inputs[:middle], send, key_of, outcome)
        await _send(action, inputs[middle:], send, key_of, outcome)
        return
    keys = {key for key, _ in inputs}
    if not answer:  # 204: every input done
        for key in keys:
            outcome.objects[key] = {}
        return
    unkeyed: list[Mapping[str, Any]] = []
    for item in answer.get("results") or ():
        if isinstance(item, Mapping):
            found = key_of(item)
            if found is not None and found in keys:
                outcome.objects[found] = item
            elif found is None:
                unkeyed.append(item)
    _match_by_content(unkeyed, inputs, outcome)
    for error in answer.get("errors") or ():
        if isinstance(error, Mapping):
            for key in _named(error):
                if key in keys and key not in outcome.objects:
                    outcome.errors[key] = _item_error(error, action)
    for key in keys - outcome.objects.keys() - outcome.errors.keys():
        outcome.errors[key] = TransientError(
            f"HubSpot batch/{action} answered without a result or an error for this item",
            side="hubspot",
        )


def _match_by_content(
    items: Sequence[Mapping[str, Any]],
    inputs: Sequence[tuple[str, Mapping[str, object]]],
    outcome: BatchOutcome,
) -> None:
    """Pair results that echo no trace id (HubSpot's older answers) with the one input
    whose every property they hold; a result two inputs fit stays unpaired."""
    open_inputs = [(key, payload) for key, payload in inputs if key not in outcome.objects]
    fits: dict[int, list[str]] = {}
    for n, item in enumerate(items):
        held = item.get("properties")
        if not isinstance(held, Mapping):
            continue
        fits[n] = [key for key, payload in open_inputs if _holds(held, payload)]
    claimed = [key for keys in fits.values() for key in keys]
    for n, keys in fits.items():
        if len(keys) == 1 and claimed.count(keys[0]) == 1:
            outcome.objects[keys[0]] = items[n]


def _holds(held: Mapping[str, Any], payload: Mapping[str, object]) -> bool:
    sent = payload.get("properties")
    if not isinstance(sent, Mapping):
        return False
    return all(held.get(name) == value for name, value in sent.items() if value != "")
