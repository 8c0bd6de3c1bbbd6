"""Streaming writers: rows go out in batches, never all held at once.

Two entry points:

- `write_rows` writes one iterator of rows to one file (JSONL, gzipped JSONL or Parquet).
- `write_splits` writes a dataset directory from one iterator of `(split_name, row)`
  pairs: one file per split for JSONL/Parquet (`train.jsonl`, `test.jsonl`, ...), or a
  `datasets` DatasetDict (`save_to_disk` layout) for `hf`. Pairs, rather than one iterator
  per split, let a grouped split be decided row by row in a single pass over the source.
  Unsplit rows go through `unsplit(rows)`, which names them all `train`.

Wrap `write_splits` and the card and manifest writers in `staged_directory(out)` so a
whole export appears under its final name at once, or not at all.

Every output is byte-identical for the same rows and parameters: JSON keys keep the
builder's order, gzip headers carry no time or file name, compression settings are fixed,
and the `hf` dataset's fingerprint is the SHA-256 of its rows.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from itertools import chain, islice
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

Row = dict[str, Any]

PARQUET_BATCH_ROWS = 2000
PARQUET_COMPRESSION = "zstd"
PARQUET_COMPRESSION_LEVEL = 3
GZIP_LEVEL = 6
JSONL_BUFFER_BYTES = 1 << 20
SPLIT_ORDER = ("train", "validation", "test")
_SPLIT_NAME = re.compile(r"[a-z][a-z0-9_]*")
_HF_WORK = ".hf-work"


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    PARQUET = "parquet"
    HF = "hf"


@dataclass(frozen=True, slots=True)
class WriteResult:
    path: Path
    rows: int


@dataclass(frozen=True, slots=True)
class DataFile:
    """One file of a written dataset, relative to its directory (POSIX separators)."""

    path: str
    split: str | None
    rows: int | None


@dataclass(frozen=True, slots=True)
class WrittenDataset:
    """The files `write_splits` produced, data files in split order."""

    directory: Path
    fmt: ExportFormat
    files: tuple[DataFile, ...]

    def rows_per_split(self) -> dict[str, int]:
        """Row count of each split, in split order."""
        counts: dict[str, int] = {}
        for entry in self.files:
            if entry.split is not None and entry.rows is not None:
                counts[entry.split] = counts.get(entry.split, 0) + entry.rows
        return counts


def split_sort_key(name: str) -> tuple[int, str]:
    """Order splits train, validation, test, then any others by name."""
    return (SPLIT_ORDER.index(name), "") if name in SPLIT_ORDER else (len(SPLIT_ORDER), name)


def unsplit(rows: Iterable[Row], split: str = "train") -> Iterator[tuple[str, Row]]:
    """Tag every row with one split name, for `write_splits` without a split.

    Example:
        >>> list(unsplit([{"prompt": "hi"}]))
        [('train', {'prompt': 'hi'})]
    """
    for row in rows:
        yield split, row


def jsonl_lines(rows: Iterable[Row]) -> Iterator[bytes]:
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


def write_jsonl(rows: Iterable[Row], stream: IO[bytes]) -> int:
    """Write rows as JSON lines to a binary stream; returns the row count."""
    count = 0
    for line in jsonl_lines(rows):
        stream.write(line)
        count += 1
    return count


def infer_schema(rows: Sequence[Row]) -> pa.Schema:
    """The Arrow schema pyarrow infers from sample rows (column order of the first row)."""
    return pa.Table.from_pylist(list(rows)).schema


def write_parquet(
    rows: Iterable[Row], path: Path, *, schema: pa.Schema | None = None, batch_rows: int = PARQUET_BATCH_ROWS
) -> int:
    """Write rows to a Parquet file, one row group per batch; returns the row count.

    Args:
        rows: export rows.
        path: the file to write (not renamed: see `write_rows` for atomic writes).
        schema: the Arrow schema; inferred from the first batch when None.
        batch_rows: rows per batch (and row group).

    Returns:
        The number of rows written.

    Example:
        >>> write_parquet(build_dpo_rows(items), Path("dpo.parquet"), schema=CONVERSATIONAL_PREFERENCE_SCHEMA)
        42
    """
    iterator = iter(rows)
    if schema is None:
        first = list(islice(iterator, batch_rows))
        schema = infer_schema(first)
        iterator = chain(first, iterator)
    writer = _ParquetSink(path, schema, batch_rows)
    with writer:
        for row in iterator:
            writer.add(row)
    return writer.rows


def write_rows(
    rows: Iterable[Row], path: Path, *, fmt: ExportFormat, schema: pa.Schema | None = None, compress: bool = False
) -> WriteResult:
    """Write rows to one file atomically: a partial file never takes the final name.

    Args:
        rows: export rows.
        path: the destination file.
        fmt: jsonl or parquet (`hf` is a directory: use `write_splits`).
        schema: the Arrow schema of the rows (Parquet); inferred from the first batch when None.
        compress: gzip the JSONL (deterministic: no time or file name in the header).

    Returns:
        Where the rows went and how many there were.

    Example:
        >>> write_rows(build_dpo_rows(items), Path("dpo.jsonl"), fmt=ExportFormat.JSONL, schema=SCHEMA)
        WriteResult(path=PosixPath('dpo.jsonl'), rows=42)
    """
    if fmt is ExportFormat.HF:
        raise ValueError("the hf format writes a directory: use write_splits")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        if fmt is ExportFormat.JSONL:
            with _JsonlSink(partial, compress=compress) as sink:
                for row in rows:
                    sink.add(row)
            count = sink.rows
        else:
            count = write_parquet(rows, partial, schema=schema)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return WriteResult(path=path, rows=count)


def write_splits(
    rows: Iterable[tuple[str, Row]],
    directory: Path,
    *,
    fmt: ExportFormat,
    schema: pa.Schema | None = None,
    compress: bool = False,
    splits: Sequence[str] = (),
    batch_rows: int = PARQUET_BATCH_ROWS,
) -> WrittenDataset:
    """Write `(split_name, row)` pairs into a dataset directory, one file (or folder) per split.

    JSONL gives `<split>.jsonl` (`.jsonl.gz` with `compress`), Parquet `<split>.parquet`,
    `hf` a DatasetDict saved with `save_to_disk` (`dataset_dict.json`, `<split>/...`),
    readable with `datasets.load_from_disk(directory)`. Splits appear in the order
    train, validation, test, then by name. A failure removes every file this call created.

    Args:
        rows: `(split_name, row)` pairs, e.g. from a grouped split or `unsplit(rows)`.
        directory: where the files go (created if missing; existing split files are replaced).
        fmt: jsonl, parquet or hf.
        schema: the Arrow schema (Parquet, hf); inferred from the first batch when None.
        compress: gzip the JSONL files.
        splits: split names written even when no row falls in them (JSONL, or with a schema).
        batch_rows: rows buffered per split before a Parquet/Arrow batch is written.

    Returns:
        The written files with their row counts.

    Example:
        >>> written = write_splits(unsplit(build_dpo_rows(items)), Path("out"), fmt=ExportFormat.PARQUET)
        >>> written.rows_per_split()
        {'train': 42}
    """
    for name in splits:
        _check_split_name(name)
    directory.mkdir(parents=True, exist_ok=True)
    iterator = iter(rows)
    if schema is None and fmt is not ExportFormat.JSONL:
        first = list(islice(iterator, batch_rows))
        if not first and splits:
            raise ValueError("an empty Parquet or hf split needs a schema")
        schema = infer_schema([row for _, row in first])
        iterator = chain(first, iterator)
    if fmt is ExportFormat.HF:
        return _write_hf(iterator, directory, schema=schema, splits=splits, batch_rows=batch_rows)
    suffix = ".jsonl.gz" if fmt is ExportFormat.JSONL and compress else f".{fmt.value}"

    def open_sink(path: Path) -> _Sink:
        if fmt is ExportFormat.JSONL:
            return _JsonlSink(path, compress=compress)
        return _ParquetSink(path, schema, batch_rows)

    with _SplitSinks(directory, suffix, open_sink) as sinks:
        for name in splits:
            sinks.get(name)
        for name, row in iterator:
            sinks.get(name).add(row)
    files = tuple(
        DataFile(path=f"{name}{suffix}", split=name, rows=sinks.rows[name])
        for name in sorted(sinks.rows, key=split_sort_key)
    )
    return WrittenDataset(directory=directory, fmt=fmt, files=files)


@contextmanager
def staged_directory(out: Path) -> Iterator[Path]:
    """A temporary sibling directory that becomes `out` when the block succeeds.

    On an exception the staged directory is removed and `out` is untouched. `out` must
    not exist or be empty (an export never overwrites another).

    Example:
        >>> with staged_directory(Path("exports/dpo")) as stage:
        ...     written = write_splits(pairs, stage, fmt=ExportFormat.JSONL)
        ...     write_card(stage, stats, written)
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} already exists and is not an empty directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield stage
        if out.exists():
            out.rmdir()
        os.replace(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage)


class _Sink(Protocol):
    rows: int

    def add(self, row: Row) -> None: ...

    def close(self) -> None: ...


class _JsonlSink:
    def __init__(self, path: Path, *, compress: bool) -> None:
        self.rows = 0
        # A large buffer: one write call per megabyte rather than per row or two.
        self._raw = path.open("wb", buffering=JSONL_BUFFER_BYTES)
        # An empty file name and mtime 0 keep the bytes the same from one run to the next.
        self._gzip = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=GZIP_LEVEL, mtime=0)
            if compress
            else None
        )

    def add(self, row: Row) -> None:
        (self._gzip or self._raw).write(orjson.dumps(row) + b"\n")
        self.rows += 1

    def close(self) -> None:
        try:
            if self._gzip is not None:
                self._gzip.close()
        finally:
            self._raw.close()

    def __enter__(self) -> _JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _BatchSink:
    """Buffers up to `batch_rows` rows, then hands them to `_flush` as one Arrow table."""

    def __init__(self, schema: pa.Schema, batch_rows: int) -> None:
        self.rows = 0
        self._schema = schema
        self._batch_rows = batch_rows
        self._pending: list[Row] = []

    def add(self, row: Row) -> None:
        self._pending.append(row)
        self.rows += 1
        if len(self._pending) >= self._batch_rows:
            self._drain()

    def close(self) -> None:
        try:
            if self._pending:
                self._drain()
        finally:
            self._finish()

    def _drain(self) -> None:
        table = pa.Table.from_pylist(self._pending, schema=self._schema)
        self._pending = []
        self._flush(table)

    def _flush(self, table: pa.Table) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> _BatchSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ParquetSink(_BatchSink):
    """Encodes and compresses each row group on a worker thread while the next batch is built.

    pyarrow releases the GIL while it writes, so on a second core the write overlaps the
    reading and building of the rows. One write in flight at a time keeps the row groups in
    order (the file is the same bytes) and memory at two batches.
    """

    def __init__(self, path: Path, schema: pa.Schema, batch_rows: int) -> None:
        super().__init__(schema, batch_rows)
        self._writer = pq.ParquetWriter(
            path, schema, compression=PARQUET_COMPRESSION, compression_level=PARQUET_COMPRESSION_LEVEL
        )
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefstack-parquet")
        self._in_flight: Future[None] | None = None

    def _flush(self, table: pa.Table) -> None:
        self._wait()
        self._in_flight = self._worker.submit(self._writer.write_table, table, row_group_size=self._batch_rows)

    def _wait(self) -> None:
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.result()

    def _finish(self) -> None:
        try:
            self._wait()
        finally:
            self._worker.shutdown(wait=True)
            self._writer.close()


class _ArrowStreamSink(_BatchSink):
    """Arrow IPC stream, the format `datasets` memory-maps."""

    def __init__(self, path: Path, schema: pa.Schema, batch_rows: int) -> None:
        super().__init__(schema, batch_rows)
        self._file = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_stream(self._file, schema)

    def _flush(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def _finish(self) -> None:
        try:
            self._writer.close()
        finally:
            self._file.close()


class _SplitSinks:
    """One sink per split, opened on the split's first row under a partial name.

    Closing without an error renames every partial file to `<split><suffix>`; closing on
    an error removes them all.
    """

    def __init__(self, directory: Path, suffix: str, open_sink: Callable[[Path], _Sink]) -> None:
        self.rows: dict[str, int] = {}
        self._directory = directory
        self._suffix = suffix
        self._open_sink = open_sink
        self._sinks: dict[str, _Sink] = {}
        self._partials: dict[str, Path] = {}

    def get(self, name: str) -> _Sink:
        sink = self._sinks.get(name)
        if sink is None:
            _check_split_name(name)
            partial = self._directory / f".{name}{self._suffix}.partial"
            self._partials[name] = partial
            sink = self._sinks[name] = self._open_sink(partial)
        return sink

    def __enter__(self) -> _SplitSinks:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            with ExitStack() as closing:
                for sink in self._sinks.values():
                    closing.callback(sink.close)
            if exc_type is None:
                for name, partial in self._partials.items():
                    os.replace(partial, self._directory / f"{name}{self._suffix}")
                    self.rows[name] = self._sinks[name].rows
        finally:
            for partial in self._partials.values():
                partial.unlink(missing_ok=True)


def _write_hf(
    rows: Iterator[tuple[str, Row]], directory: Path, *, schema: pa.Schema, splits: Sequence[str], batch_rows: int
) -> WrittenDataset:
    """Arrow stream files per split, then a DatasetDict over their memory maps, saved to disk."""
    import datasets
    from datasets.table import MemoryMappedTable
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    work = directory / _HF_WORK
    saved = directory / ".hf-dataset.partial"
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(saved, ignore_errors=True)
    work.mkdir()
    try:
        with _SplitSinks(work, ".arrow", lambda path: _ArrowStreamSink(path, schema, batch_rows)) as sinks:
            for name in splits:
                sinks.get(name)
            for name, row in rows:
                sinks.get(name).add(row)
        names = sorted(sinks.rows, key=split_sort_key)
        members = {}
        for name in names:
            arrow = work / f"{name}.arrow"
            members[name] = datasets.Dataset(
                MemoryMappedTable.from_file(str(arrow)),
                split=datasets.NamedSplit(name),
                # The default fingerprint hashes file times; the content hash keeps state.json stable.
                fingerprint=file_sha256(arrow)[:16],
            )
        bars_were_off = are_progress_bars_disabled()
        disable_progress_bars()
        try:
            datasets.DatasetDict(members).save_to_disk(str(saved))
        finally:
            if not bars_were_off:
                enable_progress_bars()
        del members
        for entry in sorted(saved.iterdir()):
            target = directory / entry.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(entry, target)
        files = [DataFile(path="dataset_dict.json", split=None, rows=None)]
        for name in names:
            for path in sorted((directory / name).iterdir()):
                rows_in_file = _arrow_stream_rows(path) if path.suffix == ".arrow" else None
                files.append(DataFile(path=f"{name}/{path.name}", split=name, rows=rows_in_file))
        return WrittenDataset(directory=directory, fmt=ExportFormat.HF, files=tuple(files))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(saved, ignore_errors=True)


def _arrow_stream_rows(path: Path) -> int:
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_stream(source)
        return sum(batch.num_rows for batch in reader)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_split_name(name: str) -> None:
    if not _SPLIT_NAME.fullmatch(name):
        raise ValueError(f"split names are lower-case letters, digits and underscores: {name!r}")
