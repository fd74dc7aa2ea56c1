"""Where the vendors' own API descriptions are, for tests that check traffic against them.

The documents are not ours to redistribute, so they are not in this repository: they sit in
a ``shared/specs`` folder beside the checkout (or beside the repository it was cloned from,
or the main worktree of a linked one), or wherever ``FLOWTLY_SYNC_VENDOR_SPECS`` points.
A test that needs one skips with the reason when it is absent, except in CI (``CI=true``),
where a missing document fails the test instead of hiding it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

__all__ = ["vendor_spec"]

_ROOT = Path(__file__).resolve().parent.parent
_ENV = "FLOWTLY_SYNC_VENDOR_SPECS"


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=_ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and out else None


def _candidates() -> list[Path]:
    found: list[Path] = []
    if os.environ.get(_ENV):
        found.append(Path(os.environ[_ENV]))
    roots = [_ROOT]
    common = _git("rev-parse", "--path-format=absolute", "--git-common-dir")
    if common is not None:
        roots.append(Path(common).parent)  # the main worktree of a linked one
    origin = _git("config", "--get", "remote.origin.url")
    if origin is not None and "://" not in origin and ":" not in origin.split("/")[0]:
        roots.append(Path(origin))  # a clone of a local checkout (CI clones this way)
    found.extend(root.resolve().parent / "shared" / "specs" for root in roots)
    # Further up too: a checkout in a folder of its own beside the specs' folder.
    found.extend(parent / "shared" / "specs" for parent in _ROOT.parents[1:])
    return found


def vendor_spec(*parts: str) -> Path:
    """The path of a vendor document under the specs folder (``"pipedrive",
    "pipedrive-openapi-v2.yaml"``); skips the test when it is absent, fails in CI."""
    for base in _candidates():
        path = base.joinpath(*parts)
        if path.exists():
            return path
    reason = f"vendor spec {'/'.join(parts)} not found (set {_ENV} to its specs folder)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)
