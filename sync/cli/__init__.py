"""The command line: ``main`` parses the arguments (`sync.cli.main`); each command's
work is in `commands` (runs, status, conflicts), `check`, `rebind`, `crm_setup` and
`extras` (Flowtly extras: documents summaries, merging duplicates); `container` starts
the container image on an empty volume."""

from sync.cli.main import CONFIG_ENV, OUTPUT_FORMATS, main

__all__ = ["CONFIG_ENV", "OUTPUT_FORMATS", "main"]
