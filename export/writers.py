"""Streaming writers: rows go out in batches, never all held at once."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_BATCH_ROWS = 2000


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    PARQUET = "parquet"


@dataclass(frozen=True, slots=True)
class WriteResult:
    path: Path
    rows: int


def jsonl_lines(rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """Each row as one UTF-8 JSON line (keys in the builder's order).

    Args:
        rows: export rows.

    Returns:
        An iterator of `b"{...}\\n"` lines.

    Example:
        >>> b"".join(jsonl_lines([{"prompt": "hi"}]))
        b'{"prompt":"hi"}\\n'
    """
    for row in rows:
        yield orjson.dumps(row) + b"\n"


def write_jsonl(rows: Iterable[dict[str, Any]], stream: IO[bytes]) -> int:
    """Write rows as JSON lines to a binary stream; returns the row count."""
    count = 0
    for line in jsonl_lines(rows):
        stream.write(line)
        count += 1
    return count


def write_parquet(rows: Iterable[dict[str, Any]], path: Path, *, schema: pa.Schema) -> int:
    """Write rows to a Parquet file in batches; returns the row count."""
    iterator = iter(rows)
    count = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        while batch := list(islice(iterator, PARQUET_BATCH_ROWS)):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            count += len(batch)
    return count


def write_rows(rows: Iterable[dict[str, Any]], path: Path, *, fmt: ExportFormat, schema: pa.Schema) -> WriteResult:
    """Write rows to `path` atomically: a partial file never takes the final name.

    Args:
        rows: export rows.
        path: the destination file.
        fmt: jsonl or parquet.
        schema: the Arrow schema of the rows (used for Parquet).

    Returns:
        Where the rows went and how many there were.

    Example:
        >>> write_rows(build_dpo_rows(items), Path("dpo.jsonl"), fmt=ExportFormat.JSONL, schema=SCHEMA)
        WriteResult(path=PosixPath('dpo.jsonl'), rows=42)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        if fmt is ExportFormat.JSONL:
            with partial.open("wb") as stream:
                count = write_jsonl(rows, stream)
        else:
            count = write_parquet(rows, partial, schema=schema)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return WriteResult(path=path, rows=count)
