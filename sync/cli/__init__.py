"""The command line: ``main`` parses the arguments (`sync.cli.main`); each command's
work is in `commands` (runs, status, conflicts), `check`, `rebind`, `crm_setup` and
`extras` (Flowtly extras: documents summaries, merging duplicates)."""

from sync.cli.main import main

__all__ = ["main"]
