"""``flowtly-sync check`` probes that Flowtly orders listings by id on request: confirmed on
the sandbox, contradicted by a server that ignores ``order[id]``."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.types import Receive, Scope, Send

from sync.cli.main import main
from sync.sandbox import SandboxSettings, create_app
from sync.wiring import sides


def _verdict(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("assumption id_order: "))


def test_check_confirms_the_id_order_on_the_sandbox(
    example_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(example_config)]) == 0
    capsys.readouterr()
    assert main(["check", "--config", str(example_config)]) == 0
    verdict = _verdict(capsys.readouterr().out)
    assert verdict.startswith("assumption id_order: confirmed - ids ascend and descend on /clients")


def test_check_reports_a_server_that_ignores_the_id_order(
    example_config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["run", "--config", str(example_config)]) == 0
    capsys.readouterr()

    def ignoring_order(settings: SandboxSettings) -> object:
        app = create_app(settings)

        async def without_order(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                kept = [p for p in scope["query_string"].split(b"&") if b"order" not in p]
                scope = {**scope, "query_string": b"&".join(kept)}
            await app(scope, receive, send)

        return without_order

    monkeypatch.setattr(sides, "create_app", ignoring_order)
    assert main(["check", "--config", str(example_config)]) != 0
    verdict = _verdict(capsys.readouterr().out)
    assert verdict.startswith("assumption id_order: contradicted - /clients with order[id]=asc")
    assert "the order is ignored" in verdict
