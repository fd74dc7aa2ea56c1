"""The container's entry point: a first start on an empty volume gets a working setup.

``docker run -v flowtly-data:/data -e FLOWTLY_SYNC_FLOWTLY__TOKEN=... flowtly-sync`` must
start a daemon that syncs, not exit on a missing file. When the configuration the image
names (``$FLOWTLY_SYNC_CONFIG``, ``/data/config.toml``) does not exist, the default of
``container.toml`` is written there, with the CSV folder it points at; then the command
runs as ``flowtly-sync`` would. A configuration already there is never touched.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from connectors.files import Source
from sync.cli.main import CONFIG_ENV, main

__all__ = ["DEFAULT_CONFIG", "prepare", "run"]

DEFAULT_CONFIG = files("sync.cli").joinpath("container.toml")
_CRM_FOLDER = "crm"


def prepare(config: Path) -> list[Path]:
    """Write the default configuration at ``config`` and its CSV folder beside it, unless
    ``config`` exists; the files written (none when it existed)."""
    if config.exists():
        return []
    config.parent.mkdir(parents=True, exist_ok=True)
    written = [config]
    config.write_text(DEFAULT_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    crm = config.parent / _CRM_FOLDER
    crm.mkdir(exist_ok=True)
    for source in Source:
        path = crm / f"{source.value}.csv"
        if not path.exists():
            path.write_text(",".join(source.default_columns) + "\n", encoding="utf-8")
            written.append(path)
    return written


def run(argv: Sequence[str]) -> int:
    """Prepare the configuration ``$FLOWTLY_SYNC_CONFIG`` names, then run ``argv``."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        for path in prepare(Path(named)):
            print(f"flowtly-sync: no configuration yet; wrote the default {path}", file=sys.stderr)
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
