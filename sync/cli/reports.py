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
    shared = fmt is OutputFormat.JSON and to_file is OutputFormat.JSON
    failure: OSError | None = None
    if fmt is OutputFormat.JSON:
        failure = _json_on_stdout(
            outcomes, path if shared else None, show_sensitive=show_sensitive, sensitive=sensitive
        )
    if path is not None and to_file is not None and not shared:
        failure = _report_file(
            outcomes, path, to_file, show_sensitive=show_sensitive, sensitive=sensitive
        )
    if failure is not None:
        log.error("report_file_failed", path=report, error=visible(failure))
        said = visible(f"flowtly-sync: the report file was not written: {failure}")
        sys.stderr.write(said + "\n")


def _json_on_stdout(
    outcomes: list[Outcome], also: Path | None, *, show_sensitive: bool, sensitive: frozenset[str]
) -> OSError | None:
    """The JSON document on stdout, written to the report file ``also`` as well; why that
    file could not be written, if it could not."""

    def printed(result: RunResult, into: TextIO) -> None:
        print_report(
            result, OutputFormat.JSON, show_sensitive=show_sensitive, sensitive=sensitive, out=into
        )

    failure: OSError | None = None
    file: TextIO | None = None
    if also is not None:
        try:
            file = open_private_text(also)
        except OSError as exc:
            failure = exc
    out = _Both(sys.stdout, file)
    try:
        write_outcomes(
            outcomes,
            OutputFormat.JSON,
            cast("TextIO", out),  # a text stream: the renderers only write to it
            show_sensitive=show_sensitive,
            sensitive=sensitive,
            write_result=printed,
        )
    finally:
        closed = _closed(file)
    return failure or out.failure or closed


def _closed(file: TextIO | None) -> OSError | None:
    """Close ``file`` (its last bytes are written then); why that failed, if it did."""
    if file is None:
        return None
    try:
        file.close()
    except OSError as exc:
        return exc
    return None


def _report_file(
    outcomes: list[Outcome],
    path: Path,
    fmt: OutputFormat,
    *,
    show_sensitive: bool,
    sensitive: frozenset[str],
) -> OSError | None:
    """The report file in ``fmt``; why it could not be written, if it could not."""
    try:
        with open_private_text(path) as file:
            write_outcomes(outcomes, fmt, file, show_sensitive=show_sensitive, sensitive=sensitive)
    except OSError as exc:
        return exc
    return None


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
