"""CSV files as the files connector needs them: exact line numbers for errors, and a
write-back that keeps the original's shape (header, unknown columns, row order, BOM,
delimiter, line terminator) and replaces the file atomically."""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sync.errors import InputError

__all__ = [
    "CsvFile",
    "CsvRow",
    "RowStream",
    "encodes",
    "file_signature",
    "header_delimiter",
    "line_terminator",
    "no_rows",
    "read_csv",
    "stream_csv",
    "write_csv",
]

_BOM = codecs.BOM_UTF8
_DELIMITERS = (";", ",", "\t", "|")
"""Delimiters a header is tried with when the configured one leaves it a single column."""
_ENCODING_HINT = (
    "; if the file is saved in another encoding, set it as the files connector's "
    '`encoding` ([crm] encoding = "cp1252" for most Excel exports, or "latin-1")'
)
_FIELD_LIMIT = 1 << 26  # note bodies can exceed csv's 128 KiB default per field

Signature = tuple[int, int]


@dataclass(slots=True)
class CsvRow:
    """One record of a file: its cells, and the physical line it starts on (1-based)."""

    cells: list[str]
    line: int


@dataclass(slots=True)
class CsvFile:
    """A whole CSV file in memory, with what it takes to write it back the same way."""

    path: Path
    header: list[str]
    delimiter: str
    encoding: str
    rows: list[CsvRow] = field(default_factory=list)
    bom: bool = False
    terminator: str = "\n"
    signature: Signature | None = None
    """(mtime_ns, size) of the file as read or last written; None if not on disk."""


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def file_signature(path: Path) -> Signature | None:
    """(mtime_ns, size) of ``path``, or None when it does not exist."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _decode(path: Path, data: bytes, encoding: str) -> tuple[str, bool]:
    bom = False
    offset = 0
    if _is_utf8(encoding):
        # The BOM is handled here rather than by utf-8-sig, so it is written back exactly
        # when the original had one, whichever of the two names the user configured.
        if data.startswith(_BOM):
            bom, offset = True, len(_BOM)
        encoding = "utf-8"
    try:
        return data[offset:].decode(encoding), bom
    except UnicodeDecodeError as error:
        position = offset + error.start
        line = data.count(b"\n", 0, position) + 1
        line_start = data.rfind(b"\n", 0, position) + 1
        raise InputError(
            str(path),
            f"cannot decode byte 0x{data[position]:02x} at byte offset {position} "
            f"(column {position - line_start + 1} of the line) as {encoding}{_ENCODING_HINT}",
            line=line,
        ) from None


def line_terminator(path: Path) -> str:
    """The line ending ``path`` uses (judged from its start), ``\\n`` when unknown."""
    try:
        with path.open("rb") as handle:
            start = handle.read(1 << 16)
    except OSError:
        return "\n"
    return _terminator(start.decode("latin-1"))


def _terminator(text: str) -> str:
    newline = text.find("\n")
    if newline > 0 and text[newline - 1] == "\r":
        return "\r\n"
    if newline >= 0:
        return "\n"
    return "\r" if "\r" in text else "\n"


def _rows(path: Path, reader: Iterator[list[str]], line_num: Callable[[], int]) -> Iterator[CsvRow]:
    """The non-blank records of ``reader`` with the line each starts on, header first."""
    previous_end = 0
    try:
        for cells in reader:
            start, previous_end = previous_end + 1, line_num()
            if cells and cells != [""]:
                yield CsvRow(cells, start)
    except csv.Error as error:
        # The parser stops where it noticed, which for an unterminated quote is the end of
        # the file: the record in progress began on the line after the last one read.
        start = previous_end + 1
        if str(error) == "unexpected end of data":
            reason = f"a quote opened in the record starting here (line {start}) is never closed"
        else:
            reason = f"malformed CSV: {error}"
            if line_num() != start:
                reason += f" (on line {line_num()} of the record starting here)"
        raise InputError(str(path), reason, line=start) from None


def header_delimiter(first_line: str, configured: str) -> str:
    """The delimiter to read a file whose header is ``first_line`` with: ``configured``,
    unless it leaves the header a single column while another common one splits it (a
    spreadsheet saved in a locale that separates with ``;``, read with the default ``,``).
    A one-column header can never be right: every file needs an id column and another."""

    def width(delimiter: str) -> int:
        try:
            return len(next(csv.reader([first_line], delimiter=delimiter), []))
        except csv.Error:
            return 0

    if width(configured) > 1:
        return configured
    best = max(_DELIMITERS, key=width)
    return best if width(best) > 1 else configured


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0].rstrip("\r")


def read_csv(path: Path, *, delimiter: str, encoding: str) -> CsvFile:
    """Read a whole CSV file; raise `InputError` naming the line when it cannot be read.

    Blank lines are skipped. The header is returned as written (not stripped).
    """
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    signature = file_signature(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(str(path), f"cannot read the file: {error.strerror}") from None
    text, bom = _decode(path, data, encoding)
    delimiter = header_delimiter(_first_line(text), delimiter)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows = list(_rows(path, reader, lambda: reader.line_num))
    if not rows:
        raise InputError(str(path), "the file is empty: a header row is required", line=1)
    header = rows.pop(0).cells
    return CsvFile(path, header, delimiter, encoding, rows, bom, _terminator(text), signature)


class RowStream(Iterator[CsvRow]):
    """The rows of a file being read; `close` releases the file (done at the end too).

    Rows may be taken in a worker thread while `close` comes from the event loop (a
    cancelled read): a lock makes `close` wait for the row being read, never cut it.
    """

    def __init__(self, rows: Iterator[CsvRow], handle: io.TextIOWrapper | None) -> None:
        self._rows = rows
        self._handle = handle
        self._closed = False
        self._lock = threading.Lock()

    def __next__(self) -> CsvRow:
        with self._lock:
            if self._closed:
                raise StopIteration
            try:
                return next(self._rows)
            except BaseException:
                self._close()
                raise

    def close(self) -> None:
        """Stop reading and close the file."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        self._closed = True
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def stream_csv(path: Path, *, delimiter: str, encoding: str) -> tuple[CsvFile, RowStream]:
    """The header of ``path`` (a `CsvFile` without rows) and a stream of its rows.

    Rows are decoded and parsed as the stream is consumed, so memory does not grow with
    the file. Errors are those of `read_csv` (an undecodable byte is located by reading
    the file again whole). The file stays open until the stream ends or is closed.
    """
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    signature = file_signature(path)
    try:
        handle = path.open("rb")
    except OSError as error:
        raise InputError(str(path), f"cannot read the file: {error.strerror}") from None
    bom = _is_utf8(encoding) and handle.read(len(_BOM)) == _BOM
    handle.seek(len(_BOM) if bom else 0)
    codec = "utf-8" if _is_utf8(encoding) else encoding
    start = handle.read(1 << 16).decode(codec, errors="replace")
    handle.seek(len(_BOM) if bom else 0)
    delimiter = header_delimiter(_first_line(start), delimiter)
    text = io.TextIOWrapper(handle, codec, newline="")
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    rows = RowStream(
        _decoded(path, _rows(path, reader, lambda: reader.line_num), delimiter, encoding), text
    )
    first = next(rows, None)
    if first is None:
        raise InputError(str(path), "the file is empty: a header row is required", line=1)
    return CsvFile(path, first.cells, delimiter, encoding, [], bom, signature=signature), rows


def no_rows() -> RowStream:
    """The stream of a file that has no rows (or is not there yet)."""
    return RowStream(iter(()), None)


def _decoded(path: Path, rows: Iterator[CsvRow], delimiter: str, encoding: str) -> Iterator[CsvRow]:
    try:
        yield from rows
    except UnicodeDecodeError:
        read_csv(path, delimiter=delimiter, encoding=encoding)  # raises, naming the byte
        raise InputError(
            str(path), f"cannot decode the file as {encoding}{_ENCODING_HINT}"
        ) from None


def encodes(text: str, encoding: str) -> bool:
    """Whether ``text`` can be written in ``encoding``."""
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def _render(table: CsvFile) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(
        buffer,
        delimiter=table.delimiter,
        lineterminator=table.terminator,
        quoting=csv.QUOTE_MINIMAL,
    )
    writer.writerow(table.header)
    width = len(table.header)
    for row in table.rows:
        cells = (
            row.cells
            if len(row.cells) >= width
            else [
                *row.cells,
                *([""] * (width - len(row.cells))),
            ]
        )
        writer.writerow(cells)
    encoding = "utf-8" if _is_utf8(table.encoding) else table.encoding
    body = buffer.getvalue().encode(encoding)
    return _BOM + body if table.bom else body


def write_csv(table: CsvFile) -> None:
    """Replace ``table.path`` atomically with ``table``: a temporary file in the same
    directory, flushed and fsynced, then renamed over the original. On any failure the
    original is left untouched and the temporary file removed.

    A symlinked file is written through: its target is replaced, the link stays. The
    original's mode, owner and group are kept; where they cannot be given to a new file
    (the file belongs to another user, writable by us through its group), the original
    is overwritten in place instead, from the complete, fsynced temporary file.
    """
    payload = _render(table)
    target = Path(os.path.realpath(table.path))
    directory = target.parent
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, before the rename
        mode="wb", dir=directory, prefix=f".{target.name}.", suffix=".tmp", delete=False
    )
    temporary = Path(handle.name)
    try:
        with handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if target.exists() and not _take_over(temporary, target.stat()):
            _overwrite(target, payload)
            temporary.unlink()
        else:
            os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_directory(directory)
    table.signature = file_signature(table.path)


def _take_over(temporary: Path, original: os.stat_result) -> bool:
    """Give ``temporary`` the original's mode (a temp file is created 0600), owner and
    group; False when the owner or group cannot be kept."""
    os.chmod(temporary, original.st_mode & 0o7777)
    now = temporary.stat()
    if (now.st_uid, now.st_gid) == (original.st_uid, original.st_gid):
        return True
    try:
        os.chown(temporary, original.st_uid, original.st_gid)
    except PermissionError:
        return False
    # chown may clear set-id bits: the mode once more, now that the owner is right.
    os.chmod(temporary, original.st_mode & 0o7777)
    return True


def _overwrite(target: Path, payload: bytes) -> None:
    """Write ``payload`` over ``target``'s content, keeping its inode, owner and mode."""
    with target.open("r+b") as handle:
        handle.write(payload)
        handle.truncate()
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not supported on every platform, hence best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
