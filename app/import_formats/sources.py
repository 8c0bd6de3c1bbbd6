"""Which reader a source needs: by `--format`, else by extension, directory shape and first record."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from app.errors import InvalidInput
from app.import_formats import csv_format, hh_rlhf, label_studio, lines, native, openai_chat, tabular, ultrafeedback
from app.import_formats.rows import ReadRow, RowError

SHAPES: dict[str, ModuleType] = {
    module.NAME: module for module in (native, openai_chat, hh_rlhf, ultrafeedback, label_studio)
}
"""Record shapes: how one JSON object (or Arrow row) becomes an item."""
CONTAINERS = ("jsonl", "json", "csv", "parquet", "hf-dataset")
"""How records are stored: one JSON value a line, a JSON array, CSV, Parquet, a `save_to_disk` directory."""
FORMATS = (*CONTAINERS, *SHAPES)
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True, slots=True)
class SourceFormat:
    """A container and, unless it is left to the first record, a record shape."""

    container: str
    shape: str | None

    def __str__(self) -> str:
        return self.container if self.shape in (None, self.container) else f"{self.container}:{self.shape}"


def parse_format(text: str | None) -> tuple[str | None, str | None]:
    """`--format` as (container, shape): `hh-rlhf`, `parquet`, or both as `parquet:hh-rlhf`."""
    if not text:
        return None, None
    if ":" in text:
        container, _, shape = text.partition(":")
    elif text in CONTAINERS:
        container, shape = text, ""
    else:
        container, shape = "", text
    known_container = not container or container in CONTAINERS
    known_shape = not shape or (shape in SHAPES and container != "csv")
    if not (known_container and known_shape):
        raise InvalidInput(
            "unknown_format",
            f"unknown format '{text}': use one of {', '.join(FORMATS)}, or CONTAINER:SHAPE such as parquet:hh-rlhf",
            field="format",
        )
    return container or None, shape or None


def source_format(path: Path, fmt: str | None = None) -> SourceFormat:
    """The container of `path` (from `fmt` or its name) and the shape `fmt` names, if any."""
    container, shape = parse_format(fmt)
    container = container or _container_of(path)
    if container == "csv":
        shape = "csv"
    return SourceFormat(container, shape)


def _container_of(path: Path) -> str:
    if path.is_dir():
        if tabular.is_dataset_directory(path):
            return "hf-dataset"
        raise InvalidInput(
            "unknown_format", f"{path} is a directory but not one written by datasets' save_to_disk", field="format"
        )
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    container = _EXTENSIONS.get(suffixes[-1] if suffixes else "")
    if container is None:
        raise InvalidInput(
            "unknown_format",
            f"cannot tell the format of '{path.name}' from its name: pass --format ({', '.join(FORMATS)})",
            field="format",
        )
    if container == "json":
        with lines.open_bytes(path) as stream:
            return "json" if lines.starts_with_array(stream) else "jsonl"
    return container


def detect_format(path: Path, fmt: str | None = None) -> SourceFormat:
    """The container and shape of `path`: `fmt` where it says, else the name and the first record."""
    chosen = source_format(path, fmt)
    if chosen.shape is not None:
        return chosen
    for number, value in _records(path, chosen.container):
        if not isinstance(value, RowError):
            return SourceFormat(chosen.container, detect_shape(value, number=number))
    return SourceFormat(chosen.container, native.NAME)  # nothing readable: the rows' own problems will say so


def read_source(path: Path, fmt: str | None = None) -> Iterator[ReadRow]:
    """Every row of the file or directory as an item (or its problems), streamed where the container allows."""
    chosen = detect_format(path, fmt)
    if chosen.container == "csv":
        with lines.open_bytes(path) as stream:
            yield from csv_format.read_csv(stream)
    else:
        yield from read_values(_records(path, chosen.container), chosen.shape)


def _records(path: Path, container: str) -> Iterator[tuple[int, Any]]:
    if container == "jsonl":
        with lines.open_bytes(path) as stream:
            yield from lines.json_lines(stream)
    elif container == "json":
        with lines.open_bytes(path) as stream:
            yield from enumerate(lines.json_document(stream, what=path.name), start=1)
    elif container == "parquet":
        yield from enumerate(tabular.parquet_records(path), start=1)
    else:
        yield from enumerate(tabular.dataset_records(path), start=1)


def read_values(values: Iterable[tuple[int, Any]], shape: str | None) -> Iterator[ReadRow]:
    """Decoded records converted by one shape; RowErrors (records that could not be decoded) pass through."""
    values = iter(values)
    head: list[tuple[int, Any]] = []
    if shape is None:
        for number, value in values:
            head.append((number, value))
            if not isinstance(value, RowError):
                shape = detect_shape(value, number=number)
                break
    convert: Callable[[int, Any], ReadRow] = SHAPES[shape or native.NAME].convert
    for number, value in itertools.chain(head, values):
        if isinstance(value, RowError):
            yield value
        else:
            yield convert(number, value)


def detect_shape(record: Any, *, number: int = 1) -> str:
    """The one shape whose keys the record has; an error naming the candidates when none or several fit."""
    if not isinstance(record, dict):
        raise InvalidInput(
            "unknown_format",
            f"cannot detect the format: record {number} is not a JSON object",
            field="format",
            row=number,
        )
    fits = [name for name, module in SHAPES.items() if module.matches(record)]
    if len(fits) == 1:
        return fits[0]
    keys = ", ".join(sorted(map(str, record))[:12])
    if not fits:
        message = f"cannot detect the format from the keys of record {number} ({keys}): pass --format"
    else:
        message = f"record {number} fits several formats ({', '.join(fits)}): pass --format to choose"
    raise InvalidInput("unknown_format", message, field="format", row=number)
