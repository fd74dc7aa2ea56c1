"""README's first command, as a newcomer runs it, in a fresh copy of the repository.

Its install part (``python3 -m venv .venv && .venv/bin/pip install -q -e .``) would
download the dependencies, which tests never do. So the copy gets its ``.venv`` without
pip and with this environment's site-packages for the dependencies (a ``.pth`` file), the
copy itself is installed into it offline (``--no-deps --no-index``; not editable, which
would need the ``editables`` backend helper besides hatchling: the installed code is the
copy's all the same), and the rest of the command runs exactly as written,
``.venv/bin/flowtly-sync`` in the copy's folder.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from e2e_support import cli_env
from offline_install import ROOT, offline_venv, pip_install, tracked_files

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("hatchling") is None,
        reason="the build backend hatchling is not installed (tests never download it)",
    ),
]

INSTALL = re.compile(r"(^|/)(python3? -m venv|pip install)\b")


def _first_command() -> list[list[str]]:
    """The commands of README's first shell block's first command line, split at ``&&``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", readme, re.DOTALL)
    assert block is not None, "README has no sh block"
    line = next(
        text for text in block.group(1).splitlines() if text.strip() and not text.startswith("#")
    )
    return [shlex.split(part) for part in line.split("&&")]


def _fresh_copy(target: Path) -> Path:
    """The repository's files as a clone has them (tracked files, nothing generated)."""
    for name in tracked_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    return target


def _install(copy: Path) -> None:
    """``python3 -m venv .venv && .venv/bin/pip install -q -e .``, without the network."""
    pip_install(offline_venv(copy / ".venv"), "--no-build-isolation", str(copy))


def _run(command: list[str], copy: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env(),
        cwd=copy,
        check=False,
    )


def test_the_first_readme_command_syncs_the_embedded_default(tmp_path: Path) -> None:
    commands = _first_command()
    installs = [c for c in commands if INSTALL.search(" ".join(c))]
    rest = [c for c in commands if c not in installs]
    assert installs, "the first command installs the package"
    assert rest, "and then runs flowtly-sync"
    copy = _fresh_copy(tmp_path / "clone")
    assert not (copy / ".flowtly-sync").exists()
    _install(copy)
    probe = _run([".venv/bin/python", "-c", "import sync; print(sync.__file__)"], copy)
    assert probe.stdout.strip().startswith(str(copy)), "the copy's code runs"

    for command in rest:
        first = _run(command, copy)
        assert first.returncode == 0, first.stderr
        assert "changed:" in first.stdout
        assert "client record(s) created in flowtly" in first.stdout
    # "Running the first command again reports `nothing to do`."
    again = _run(rest[-1], copy)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout
    assert (copy / ".flowtly-sync").is_dir()
    status = _run([".venv/bin/flowtly-sync", "status"], copy)
    assert status.returncode == 0, status.stderr
    assert "run 2: ok" in status.stdout
