"""The repository as a clone has it, and installing it into a fresh virtualenv without
the network: what the tests of the README and of the Dockerfile's install step share."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

__all__ = ["ROOT", "offline_venv", "pip_install", "tracked_files"]

ROOT = Path(__file__).resolve().parents[1]


def tracked_files() -> list[str]:
    """The repository's files (tracked, or new and not ignored), relative to `ROOT`."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [name for name in listed if (ROOT / name).is_file()]


def offline_venv(venv: Path) -> Path:
    """A virtualenv at ``venv`` whose dependencies are this interpreter's site-packages (a
    ``.pth`` file; nothing is downloaded); its interpreter."""
    # Without its own pip (ensurepip is slow): this interpreter's pip installs into it.
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "deps-from-test-env.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8"
    )
    return python


def pip_install(python: Path, *args: str) -> None:
    """``pip install --no-deps --no-index ARGS`` into ``python``'s environment."""
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-index", *args],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
