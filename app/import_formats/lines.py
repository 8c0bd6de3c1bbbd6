"""Reading JSON records from bytes: one a line, or the items of one JSON array; both streamed."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import ijson
import orjson

from app.errors import InvalidInput, Problem
from app.import_formats.rows import RowError

MAX_RECORD_BYTES = 64 * 1024 * 1024
"""A line (record) longer than this is refused without being held in memory."""
GZIP_MAGIC = b"\x1f\x8b"
_READ_CHUNK = 1024 * 1024
_UNREAD = object()


def open_bytes(path: Path) -> IO[bytes]:
    """The file's bytes, gunzipped when it is gzip-compressed (by its magic number, not its name)."""
    stream: IO[bytes] = path.open("rb")
    if stream.read(2) == GZIP_MAGIC:
        stream.close()
        return cast(IO[bytes], gzip.open(path, "rb"))
    stream.seek(0)
    return stream


def json_lines(stream: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """Yield (line number, decoded JSON value) for each non-blank line; a RowError for a line that is not JSON.

    The RowError keeps the line's text (undecodable bytes replaced) for the rejects file.
    """
    for number, raw in _capped_lines(stream):
        if raw is None:
            problem = Problem(f"line longer than {MAX_RECORD_BYTES // (1024 * 1024)} MB", row=number)
            yield number, RowError(number, (problem,), record=None)
            continue
        try:  # the fast path: orjson reads (and checks) UTF-8 bytes itself
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = _UNREAD  # blank, not UTF-8 or not JSON: decoded below for the right message
        if value is not _UNREAD:
            yield number, value
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            problem = Problem(f"not valid UTF-8 (byte {error.start + 1} of the line)", row=number)
            yield number, RowError(number, (problem,), record=raw.decode("utf-8", errors="replace").rstrip("\r\n"))
            continue
        if not text.strip():
            continue
        try:
            yield number, orjson.loads(text)
        except orjson.JSONDecodeError as error:
            problem = Problem(f"not valid JSON: {error.msg} at column {error.colno}", row=number)
            yield number, RowError(number, (problem,), record=text.rstrip("\r\n"))


def _capped_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """Lines as bytes, or None for a line over MAX_RECORD_BYTES (skipped to its end, never held whole)."""
    for number, line in enumerate(iter(lambda: stream.readline(MAX_RECORD_BYTES + 1), b""), start=1):
        if len(line) <= MAX_RECORD_BYTES or line.endswith(b"\n"):
            yield number, line
            continue
        while True:
            rest = stream.readline(_READ_CHUNK)
            if not rest or rest.endswith(b"\n"):
                break
        yield number, None


def json_document(stream: IO[bytes], *, what: str) -> Iterator[Any]:
    """The records of a JSON array (Label Studio exports), streamed one at a time, or one JSON object.

    A syntax error is only found when the parser reaches it, so it is raised while iterating.
    """
    head = stream.read(4096)
    stream.seek(0)
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first != b"[":
        value = _whole(stream, what)
        if not isinstance(value, dict):
            raise InvalidInput("invalid_import_file", f"{what} must be a JSON array of records")
        yield value
        return
    if head.startswith(b"\xef\xbb\xbf"):
        stream.read(3)
    try:
        yield from ijson.items(stream, "item", use_float=True)
    except ijson.JSONError as error:
        raise InvalidInput("invalid_import_file", f"{what} is not valid JSON: {error}") from error


def _whole(stream: IO[bytes], what: str) -> Any:
    try:
        return orjson.loads(stream.read())
    except orjson.JSONDecodeError as error:
        raise InvalidInput(
            "invalid_import_file", f"{what} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from error


def starts_with_array(stream: IO[bytes]) -> bool:
    """Whether the first non-blank byte is '[' (a JSON array rather than one JSON value a line)."""
    head = stream.read(4096)
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"["
