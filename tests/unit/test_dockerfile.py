"""The Dockerfile's structure (no Docker engine here), and the install step it performs."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from offline_install import offline_venv, pip_install

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
SECRET_WORDS = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY|CREDENTIAL", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, else None (shell form)."""
        text = self.args.strip()
        if self.keyword == "HEALTHCHECK":
            text = text[text.index("CMD") + 3 :].strip() if "CMD" in text else ""
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list)
        assert all(isinstance(part, str) for part in value)
        return value


def parse(text: str) -> list[Instruction]:
    """Instructions in order, continuation lines joined, comments dropped."""
    result: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        joined = " ".join(part for part in pending if part)
        keyword, _, args = joined.partition(" ")
        result.append(Instruction(keyword.upper(), args.strip(), start))
        pending = []
    assert not pending, "the Dockerfile ends inside a continued line"
    return result


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE.read_text(encoding="utf-8"))


def only(instructions: list[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in instructions if i.keyword == keyword]


def test_base_image_is_python_311_slim(instructions: list[Instruction]) -> None:
    froms = only(instructions, "FROM")
    assert froms[-1].args.split()[0] == "python:3.11-slim"


def test_the_package_is_installed_from_the_source_tree(instructions: list[Instruction]) -> None:
    runs = " && ".join(i.args for i in only(instructions, "RUN"))
    assert "pip install --no-cache-dir ." in runs
    copied = {i.args.split()[0] for i in only(instructions, "COPY")}
    assert {"pyproject.toml", "sync", "connectors"} <= copied


def test_a_non_root_user_runs_the_daemon(instructions: list[Instruction]) -> None:
    users = only(instructions, "USER")
    assert users, "no USER: the daemon would run as root"
    last_user = users[-1]
    assert last_user.args.split(":")[0] not in ("root", "0")
    starts = only(instructions, "CMD") + only(instructions, "ENTRYPOINT")
    assert starts
    assert all(last_user.line < i.line for i in starts)


def test_the_daemon_is_the_default_command_in_exec_form(
    instructions: list[Instruction],
) -> None:
    entry = only(instructions, "ENTRYPOINT")
    cmd = only(instructions, "CMD")
    entry_form = entry[-1].exec_form() if entry else []
    cmd_form = cmd[-1].exec_form() if cmd else []
    assert entry_form is not None, "ENTRYPOINT must be in exec form"
    assert cmd_form is not None, "CMD must be in exec form"
    assert entry_form + cmd_form == ["python", "-m", "sync.cli.container", "daemon"]
    env = " ".join(i.args for i in only(instructions, "ENV"))
    assert re.search(r"FLOWTLY_SYNC_CONFIG=/data/config\.toml\b", env)


def test_state_lives_on_the_data_volume(instructions: list[Instruction]) -> None:
    volumes: list[str] = []
    for volume in only(instructions, "VOLUME"):
        text = volume.args.strip()
        volumes += json.loads(text) if text.startswith("[") else text.split()
    assert "/data" in volumes


def test_the_endpoint_listens_on_all_interfaces_and_is_exposed(
    instructions: list[Instruction],
) -> None:
    env = " ".join(i.args for i in only(instructions, "ENV"))
    assert re.search(r"FLOWTLY_SYNC_DAEMON__LISTEN=0\.0\.0\.0:8080\b", env)
    exposed = " ".join(i.args for i in only(instructions, "EXPOSE")).split()
    assert "8080" in exposed or "8080/tcp" in exposed


def test_the_healthcheck_asks_healthz_without_curl(instructions: list[Instruction]) -> None:
    checks = only(instructions, "HEALTHCHECK")
    assert len(checks) == 1
    command = checks[0].exec_form()
    assert command is not None, "HEALTHCHECK CMD must be in exec form"
    assert command[0] in ("python", "python3")
    assert "urllib.request" in " ".join(command)
    assert "/healthz" in " ".join(command)
    assert "curl" not in checks[0].args


def test_no_secret_is_baked_into_the_image(instructions: list[Instruction]) -> None:
    for instruction in only(instructions, "ENV") + only(instructions, "ARG"):
        for word in shlex.split(instruction.args):
            name = word.split("=", 1)[0]
            assert not SECRET_WORDS.search(name), f"line {instruction.line}: {word}"
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert not re.search(r"(?i)bearer\s+\w", text)
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for pattern in ("**/config.toml", "**/.flowtly-sync", "**/*.db", ".git"):
        assert pattern in ignored


def test_the_parser_sees_shell_forms_and_continuations() -> None:
    parsed = parse("FROM x\n# note\nRUN a \\\n    && b\nCMD flowtly-sync daemon\nUSER 0\n")
    assert [(i.keyword, i.args) for i in parsed] == [
        ("FROM", "x"),
        ("RUN", "a && b"),
        ("CMD", "flowtly-sync daemon"),
        ("USER", "0"),
    ]
    assert parsed[2].exec_form() is None


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("hatchling") is None,
    reason="the build backend hatchling is not installed (tests never download it)",
)
def test_the_install_step_works_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    """What ``pip install .`` does in the image: build the wheel from the source tree and
    install it into a fresh environment, then start the command it provides.

    The wheel's dependencies come from this interpreter's site-packages (a ``.pth`` file),
    so nothing is downloaded; the package itself is only the wheel's copy.
    """
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", str(wheels), str(ROOT)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    wheel = next(wheels.glob("flowtly_sync-*.whl"))
    venv = tmp_path / "venv"
    python = offline_venv(venv)
    site = str(next((venv / "lib").glob("python*/site-packages")))
    pip_install(python, str(wheel))

    help_text = subprocess.run(
        [str(venv / "bin" / "flowtly-sync"), "daemon", "--help"],
        check=True, capture_output=True, text=True, cwd=tmp_path, timeout=60,
    ).stdout  # fmt: skip
    assert "usage: flowtly-sync daemon" in help_text
    probe = (
        "import sync, connectors.files; from sync.store import Store; "
        "s = Store.open('sqlite:///probe.db'); print(sync.__file__); print(s.integrity_check()); "
        "import sync.cli.container; print(sync.cli.container.DEFAULT_CONFIG.is_file())"
    )
    out = subprocess.run(
        [str(python), "-c", probe],
        check=True, capture_output=True, text=True, cwd=tmp_path, timeout=60,
    ).stdout.splitlines()  # fmt: skip
    # The wheel's own copy, migrations included, not the source tree.
    assert out[0].startswith(site)
    assert out[1] == "ok"
    assert out[2] == "True"  # the container's default configuration is in the wheel
