"""Where a run's report goes: stdout, and the ``--report`` file.

A JSON report on stdout and a JSON report file are the same document: it is rendered
once and written to both (a first sync's report lists every record, and rendering it
twice cost as much as a few seconds of requests). A report file that cannot be written
is said, never fatal: the runs are done by then.
"""

from __future__ import annotations

import io
import shutil
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO, cast

import structlog

from sync.engine.run import RunResult
from sync.privacy.files import open_private_text
from sync.report.literal import visible
from sync.report.outcomes import Outcome, report_format, write_outcomes
from sync.report.render import OutputFormat, write_plain, write_report

__all__ = ["print_report", "write_reports"]

log = structlog.get_logger("sync.cli")


class _Both(io.TextIOBase):
    """Text written to stdout and to a report file; a file that fails to take it is left
    out from then on (its error kept in ``failure``), and stdout still gets everything."""

    def __init__(self, stdout: TextIO, report: TextIO | None) -> None:
        self._stdout = stdout
        self._report = report
        self.failure: OSError | None = None

    def write(self, text: str) -> int:
        self._stdout.write(text)
        if self._report is not None:
            try:
                self._report.write(text)
            except OSError as exc:
                self.failure, self._report = exc, None
        return len(text)


def write_reports(
    outcomes: list[Outcome],
    fmt: OutputFormat,
    explicit: OutputFormat | None,
    report: str | None,
    *,
    show_sensitive: bool,
    sensitive: frozenset[str],
) -> None:
    """JSON on stdout (one document, whatever the number of syncs), and the report file."""
    path = Path(report) if report else None
    to_file = None if path is None else report_format(path, explicit)
    failure: OSError | None = None
    if fmt is OutputFormat.JSON:

        def printed(result: RunResult, into: TextIO) -> None:
            print_report(result, fmt, show_sensitive=show_sensitive, sensitive=sensitive, out=into)

        with ExitStack() as files:
            file: TextIO | None = None
            if path is not None and to_file is OutputFormat.JSON:
                try:
                    file = files.enter_context(open_private_text(path))
                except OSError as exc:
                    failure = exc
            out = _Both(sys.stdout, file)
            write_outcomes(
                outcomes,
                fmt,
                cast("TextIO", out),  # a text stream: the renderers only write to it
                show_sensitive=show_sensitive,
                sensitive=sensitive,
                write_result=printed,
            )
            failure = failure or out.failure
        if to_file is OutputFormat.JSON:
            path = None  # written already, or said below
    if path is not None and to_file is not None:
        try:
            with open_private_text(path) as file:
                write_outcomes(
                    outcomes, to_file, file, show_sensitive=show_sensitive, sensitive=sensitive
                )
        except OSError as exc:
            failure = exc
    if failure is not None:
        log.error("report_file_failed", path=report, error=visible(failure))
        said = visible(f"flowtly-sync: the report file was not written: {failure}")
        sys.stderr.write(said + "\n")


def print_report(
    result: RunResult,
    fmt: OutputFormat,
    *,
    show_sensitive: bool,
    sensitive: frozenset[str],
    out: TextIO | None = None,
) -> None:
    """The report on stdout (or ``out``); when it cannot be rendered, plain lines instead.

    The run is over and its writes are committed by now: a report that fails to render
    is logged and replaced, and never changes the exit code the run earned.
    """
    into = sys.stdout if out is None else out
    # The terminal's width ($COLUMNS first, as for any program; 120 when piped without it).
    width = shutil.get_terminal_size((120, 24)).columns
    try:
        write_report(
            result,
            fmt,
            into,
            show_sensitive=show_sensitive,
            sensitive=sensitive,
            width=width,
        )
    except Exception as exc:  # whatever broke the renderer, the run stands
        reason = visible(f"{type(exc).__name__}: {exc}")
        log.error("report_render_failed", sync=result.sync, output=str(fmt), error=reason)
        sys.stderr.write(
            f"flowtly-sync: the {fmt} report could not be rendered ({reason}); plain lines follow\n"
        )
        try:
            write_plain(result, into, show_sensitive=show_sensitive, sensitive=sensitive)
        except Exception as again:  # e.g. stdout is gone: the log above has said it all
            log.error("report_fallback_failed", sync=result.sync, error=visible(again))
