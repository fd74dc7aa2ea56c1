"""Building blocks of settings models, shared by every section and connector.

A section is frozen and refuses unknown keys (a typo is a configuration error naming the
key, never a silently ignored setting). Durations are written as seconds or as ``"30s"``,
``"15m"``, ``"1h"``; a concurrency bounds what a section has in flight.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from sync.errors import ConfigError
from sync.model import SCHEMAS

__all__ = [
    "ALL_FIELDS",
    "DEFAULT_CONCURRENCY",
    "DURATION",
    "Concurrency",
    "Seconds",
    "SecondsOrZero",
    "Section",
    "config_error",
    "duration_seconds",
]

ALL_FIELDS = frozenset(name for schema in SCHEMAS.values() for name in schema)
"""Every canonical field name: settings that name fields are checked against it."""

DURATION = re.compile(r"^\s*(\d+)\s*([smh])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}

DEFAULT_CONCURRENCY = 8
Concurrency = Annotated[int, Field(ge=1, le=64)]
"""How many requests (or writes) a section allows in flight: ``[flowtly]`` requests,
``[sync]`` writes of the engine, and a CRM connector's own setting where it has one."""


def duration_seconds(value: object) -> object:
    """``"90s"``, ``"5m"`` or ``"1h"`` as seconds; numbers (and numeric text) pass as they are."""
    if isinstance(value, str):
        match = DURATION.match(value)
        if match is not None:
            return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        try:
            return float(value)
        except ValueError:
            raise ValueError("must be seconds or a duration like 30s, 15m or 1h") from None
    return value


Seconds = Annotated[float, BeforeValidator(duration_seconds), Field(gt=0, allow_inf_nan=False)]
"""A duration in seconds, written as a number or as ``"30s"``, ``"15m"``, ``"1h"``."""

SecondsOrZero = Annotated[
    float, BeforeValidator(duration_seconds), Field(ge=0, allow_inf_nan=False)
]
"""A duration where ``0`` means "every time" (``[sync] full_scan = "0s"``: every run
lists everything) or "never" (``[sync] interval = 0``: only cron or webhooks)."""


class Section(BaseModel):
    """A table of the configuration: frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def config_error(exc: ValidationError, *prefix: str) -> ConfigError:
    """The first failure of ``exc`` as a `ConfigError` naming its dotted key under
    ``prefix`` (``crm``, ``syncs.a.flowtly``): the one conversion of validation errors."""
    first = exc.errors()[0]
    # pydantic marks a bad dictionary key with a trailing "[key]": the key is named already.
    loc = [str(part) for part in first["loc"] if part != "[key]"]
    return ConfigError(".".join([*prefix, *loc]), first["msg"])
