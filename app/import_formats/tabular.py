"""Arrow-backed sources read in record batches: Parquet files and `datasets` `save_to_disk` directories.

Their rows are records of one of the JSON shapes (native, openai, hh-rlhf, ultrafeedback), numbered
from 1. Arrow cannot tell a missing key from a null one, so null values in objects are dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from app.errors import InvalidInput

BATCH_ROWS = 1000
DATASET_STATE = "state.json"
DATASET_DICT = "dataset_dict.json"


def parquet_records(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a Parquet file, a batch at a time."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise InvalidInput("invalid_import_file", f"{path.name} is not a readable Parquet file: {error}") from error
    with parquet:
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            yield from map(_without_nulls, batch.to_pylist())


def is_dataset_directory(path: Path) -> bool:
    return path.is_dir() and ((path / DATASET_STATE).is_file() or (path / DATASET_DICT).is_file())


def dataset_records(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a `save_to_disk` directory (one split), streamed from its Arrow files."""
    path = _single_split(path)
    try:
        state = json.loads((path / DATASET_STATE).read_text(encoding="utf-8"))
        files = [path / entry["filename"] for entry in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InvalidInput("invalid_import_file", f"{path}: not a datasets directory ({error})") from error
    for file in files:
        try:
            with pa.memory_map(str(file)) as source:
                for batch in pa.ipc.open_stream(source):
                    yield from map(_without_nulls, batch.to_pylist())
        except (pa.ArrowInvalid, OSError) as error:
            raise InvalidInput("invalid_import_file", f"{file.name} is not a readable Arrow file: {error}") from error


def _single_split(path: Path) -> Path:
    if not (path / DATASET_DICT).is_file():
        return path
    try:
        splits = json.loads((path / DATASET_DICT).read_text(encoding="utf-8"))["splits"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InvalidInput("invalid_import_file", f"{path}: unreadable {DATASET_DICT} ({error})") from error
    if len(splits) != 1:
        names = ", ".join(str(split) for split in splits)
        raise InvalidInput(
            "invalid_import_file",
            f"{path} holds several splits ({names}): import one split's directory, e.g. {path}/{splits[0]}",
        )
    return path / str(splits[0])


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_nulls(inner) for key, inner in value.items() if inner is not None}
    if isinstance(value, list):
        return [_without_nulls(inner) for inner in value]
    return value
