"""CSV files: one item a row (responses in columns) or one response a row (grouped by id).

Header (case-insensitive, the first line):
- `external_id` (or `id`); `prompt` (with an optional `system`) or `messages` (a JSON list);
- one response per column: `response_a`, `response_b`, ... (or `response_1`, ...), with optional
  `model_a`, `model_b`, ... naming the models; or one response per row: `response` (+ `model`),
  the rows of one item next to each other with the same `external_id`;
- optional `language`, `market`, `category`, `priority`, `metadata` (a JSON object) and
  `metadata.KEY` columns. Any other column is refused, so a typo cannot drop data silently.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from app.errors import InvalidInput
from app.import_formats.rows import ReadRow, RowError, SourceRow, content_id, row_error

NAME = "csv"
MAX_FIELD_CHARS = 64 * 1024 * 1024
"""csv's own field limit, raised so that an oversized text reaches validation and is named there."""
_RESPONSE_COLUMN = re.compile(r"^response_([a-z]|[1-9][0-9]?)$")
_METADATA_COLUMNS = ("language", "market", "category")
_ITEM_COLUMNS = frozenset({"external_id", "id", "prompt", "system", "messages", "priority", "metadata"})


@dataclass(frozen=True, slots=True)
class _Record:
    number: int
    cells: dict[str, str]
    bad_bytes: int | None
    """The position of the first byte that is not UTF-8, if any."""
    width_problem: str | None = None


def read_csv(stream: IO[bytes]) -> Iterator[ReadRow]:
    """Items from a CSV file; a record's number is the line it starts on (the header is line 1)."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
    records = _records(stream)
    header = next(records, None)
    if header is None:
        raise InvalidInput("invalid_import_file", "the CSV file is empty (it needs a header line)")
    columns = [column.strip().lower() for column in header[1]]
    wide = _check_header(columns)
    rows = _named(records, columns)
    yield from (_wide(rows, columns) if wide else _long(rows))


def _records(stream: IO[bytes]) -> Iterator[tuple[int, list[str], int | None]]:
    lines = _DecodedLines(stream)
    reader = csv.reader(lines)
    start = 1
    for cells in reader:
        first_bad = lines.take_bad_bytes()
        number, start = start, reader.line_num + 1
        if any(cell.strip() for cell in cells):
            yield number, cells, first_bad


def _named(records: Iterator[tuple[int, list[str], int | None]], columns: list[str]) -> Iterator[_Record]:
    for number, cells, bad_bytes in records:
        width_problem = None if len(cells) == len(columns) else f"has {len(cells)} cells, the header has {len(columns)}"
        yield _Record(number, dict(zip(columns, cells, strict=False)), bad_bytes, width_problem)


class _DecodedLines:
    """Text lines for csv.reader; bytes that are not UTF-8 are replaced and remembered for the record."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._lines = iter(stream)
        self._bad: int | None = None
        self._first = True

    def __iter__(self) -> _DecodedLines:
        return self

    def __next__(self) -> str:
        raw = next(self._lines)
        if self._first:
            raw, self._first = raw.removeprefix(b"\xef\xbb\xbf"), False
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            if self._bad is None:
                self._bad = error.start + 1
            return raw.decode("utf-8", errors="replace")

    def take_bad_bytes(self) -> int | None:
        bad, self._bad = self._bad, None
        return bad


def _check_header(normal: list[str]) -> bool:
    unknown = [
        column
        for column in normal
        if column not in _ITEM_COLUMNS
        and column not in _METADATA_COLUMNS
        and column not in ("response", "model")
        and not column.startswith("metadata.")
        and not _RESPONSE_COLUMN.match(column)
        and not (column.startswith("model_") and f"response_{column[len('model_') :]}" in normal)
    ]
    duplicated = sorted({column for column in normal if normal.count(column) > 1})
    wide = any(_RESPONSE_COLUMN.match(column) for column in normal)
    long = "response" in normal
    if "model" in normal and not long:
        unknown.append("model")
    problems = []
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)} (docs/formats.md lists the CSV columns)")
    if duplicated:
        problems.append(f"column(s) {', '.join(duplicated)} appear more than once")
    if wide == long:
        problems.append("give either response_a, response_b, ... columns or one 'response' column")
    if long and "external_id" not in normal and "id" not in normal:
        problems.append("one response a row needs an 'external_id' column to group the rows of an item")
    if problems:
        raise InvalidInput("invalid_import_file", f"CSV header (line 1): {'; '.join(problems)}", row=1, field="header")
    return wide


def _wide(rows: Iterator[_Record], columns: list[str]) -> Iterator[ReadRow]:
    response_columns = [column for column in columns if _RESPONSE_COLUMN.match(column)]
    for record in rows:
        if record.bad_bytes is not None:
            yield _bad_bytes(record)
            continue
        problems: list[tuple[str, str | None]] = []
        if record.width_problem:
            problems.append((record.width_problem, None))
        responses = []
        for column in response_columns:
            content = record.cells.get(column, "")
            if not content.strip():
                problems.append(("must be a non-empty text", column))
            suffix = column[len("response_") :]
            responses.append({"content": content, "model": record.cells.get(f"model_{suffix}", "")})
        item = _item_fields(record, problems)
        if problems:
            yield row_error(record.number, record.cells, *problems)
            continue
        item["responses"] = responses
        yield _with_id(record, item, record.cells)


def _long(rows: Iterator[_Record]) -> Iterator[ReadRow]:
    group: list[_Record] = []
    for record in rows:
        if group and _id_of(record) != _id_of(group[0]):
            yield _grouped(group)
            group = []
        group.append(record)
    if group:
        yield _grouped(group)


def _grouped(group: list[_Record]) -> ReadRow:
    first = group[0]
    cells = [record.cells for record in group]
    bad = next((record for record in group if record.bad_bytes is not None), None)
    if bad is not None:
        return RowError(first.number, _bad_bytes(bad).problems, record=cells)
    problems: list[tuple[str, str | None]] = []
    item = _item_fields(first, problems)
    responses = []
    for record in group:
        if record.width_problem:
            problems.append((f"line {record.number}: {record.width_problem}", None))
        if not record.cells.get("response", "").strip():
            problems.append((f"line {record.number}: must be a non-empty text", "response"))
        for column, value in record.cells.items():
            if column not in ("response", "model") and value.strip() and value != first.cells.get(column):
                problems.append((f"line {record.number} differs from line {first.number} of the same item", column))
        responses.append({"content": record.cells.get("response", ""), "model": record.cells.get("model", "")})
    if problems:
        return row_error(first.number, cells, *problems)
    item["responses"] = responses
    return _with_id(first, item, cells)


def _item_fields(record: _Record, problems: list[tuple[str, str | None]]) -> dict[str, Any]:
    cells = {column: value for column, value in record.cells.items() if value.strip()}
    item: dict[str, Any] = {}
    if "messages" in cells:
        item["messages"] = _json_cell(cells["messages"], "messages", list, problems)
    elif "prompt" in cells:
        system = cells.get("system")
        if system:
            item["messages"] = [{"role": "system", "content": system}, {"role": "user", "content": cells["prompt"]}]
        else:
            item["prompt"] = cells["prompt"]
    else:
        problems.append(("required: the prompt (or a 'messages' JSON list)", "prompt"))
    if "priority" in cells:
        try:
            item["priority"] = int(cells["priority"])
        except ValueError:
            problems.append(("must be a whole number", "priority"))
    metadata = _json_cell(cells["metadata"], "metadata", dict, problems) if "metadata" in cells else {}
    for column, value in cells.items():
        if column in _METADATA_COLUMNS:
            metadata[column] = value
        elif column.startswith("metadata."):
            metadata[column[len("metadata.") :]] = value
    if metadata:
        item["metadata"] = metadata
    return item


def _json_cell(text: str, column: str, kind: type, problems: list[tuple[str, str | None]]) -> Any:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        problems.append((f"not valid JSON: {error.msg}", column))
        return kind()
    if not isinstance(value, kind):
        problems.append((f"must be a JSON {'list' if kind is list else 'object'}", column))
        return kind()
    return value


def _with_id(record: _Record, item: dict[str, Any], source: Any) -> SourceRow:
    """The item under its id column's value, or a content hash when the file has no ids."""
    return SourceRow(record.number, {"external_id": _id_of(record) or content_id(NAME, item), **item}, record=source)


def _id_of(record: _Record) -> str:
    return (record.cells.get("external_id") or record.cells.get("id") or "").strip()


def _bad_bytes(record: _Record) -> RowError:
    return row_error(record.number, record.cells, (f"not valid UTF-8 (byte {record.bad_bytes} of a line)", None))
