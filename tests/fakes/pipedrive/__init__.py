"""An in-process Pipedrive for tests: the stateful fake (`PipedriveFake`), checked against
Pipedrive's OpenAPI documents, and helpers to point the connector at it on fake time."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from connectors.pipedrive import PipedriveConnector, PipedriveSettings
from connectors.pipedrive._fields import FieldCatalog
from connectors.pipedrive._slots import Group, bind
from sync.mapping.layout import FieldLayout
from tests.fakes.pipedrive.app import TOKEN, PipedriveFake

__all__ = ["TOKEN", "FakeTime", "PipedriveFake", "connector_for", "provision"]

BASE_URL = "https://acme.pipedrive.com"


@dataclass
class FakeTime:
    """A clock that moves only when someone sleeps on it: tests never wait."""

    now: float = 1000.0
    slept: float = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        self.slept += max(seconds, 0.0)


def provision(fake: PipedriveFake, *, kind: bool = True) -> None:
    """Give the fake account every ``Flowtly <canonical>`` field the default mapping
    wants (the kind enum only with ``kind``), as ``crm setup --apply`` would."""
    for wanted in bind(Group.ORGANIZATION, FieldLayout(), FieldCatalog()).wanted:
        if wanted.enum and not kind:
            continue
        options = ["client", "supplier"] if wanted.enum else []
        fake.state.add_field(
            "organization", wanted.name, "enum" if wanted.enum else "varchar", options
        )


def connector_for(
    fake: PipedriveFake, time: FakeTime, *, token: str = TOKEN, **settings: object
) -> PipedriveConnector:
    """A connector talking to ``fake`` in-process, pacing on ``time``."""
    config = PipedriveSettings.model_validate({"base_url": BASE_URL, "token": token, **settings})
    return PipedriveConnector(
        config,
        transport=httpx.ASGITransport(app=fake.asgi),
        clock=time.clock,
        sleep=time.sleep,
    )
