"""What the process tells cron and scripts: the exit codes, an interface (docs/reference.md)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    """The exit status of every command, the daemon's included."""

    OK = 0
    """Done and clean."""
    FAILED = 1
    """The run could not proceed (or the daemon was forced to stop)."""
    USAGE = 2
    """Bad usage or configuration."""
    PARTIAL = 3
    """Done, but records were rejected or parked as conflicts (or something is missing)."""
