"""Writers: JSONL, gzip, Parquet and hf round trips through `datasets`, splits, atomicity, bytes, memory."""

from __future__ import annotations

import gzip
import hashlib
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import orjson
import pyarrow.parquet as pq
import pytest

from export.dpo import CONVERSATIONAL_PREFERENCE_SCHEMA
from export.writers import ExportFormat, staged_directory, unsplit, write_rows, write_splits

ROWS = [
    {
        "prompt": [{"role": "user", "content": "สวัสดี, is this allowed?"}],
        "chosen": [{"role": "assistant", "content": "Không, vi phạm."}],
        "rejected": [{"role": "assistant", "content": "Ya"}],
    }
] * 3


def _row(index: int) -> dict[str, Any]:
    return {
        "prompt": [{"role": "user", "content": f"prompt {index} ภาษาไทย"}],
        "chosen": [{"role": "assistant", "content": f"good {index}"}],
        "rejected": [{"role": "assistant", "content": f"bad {index}"}],
    }


SPLIT_ROWS = [("test" if index % 4 == 0 else "train", _row(index)) for index in range(10)]
EXPECTED = {
    "train": [row for name, row in SPLIT_ROWS if name == "train"],
    "test": [row for name, row in SPLIT_ROWS if name == "test"],
}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)


def _tree(directory: Path) -> dict[str, str]:
    return {
        path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _broken() -> Iterator[tuple[str, dict[str, Any]]]:
    yield "train", ROWS[0]
    yield "test", ROWS[0]
    raise RuntimeError("source failed")


def test_jsonl_round_trip_keeps_unicode(tmp_path: Path) -> None:
    result = write_rows(ROWS, tmp_path / "out.jsonl", fmt=ExportFormat.JSONL, schema=CONVERSATIONAL_PREFERENCE_SCHEMA)
    lines = result.path.read_bytes().splitlines()
    assert result.rows == 3
    assert [orjson.loads(line) for line in lines] == ROWS
    assert "สวัสดี".encode() in lines[0]


def test_parquet_round_trip(tmp_path: Path) -> None:
    result = write_rows(
        ROWS, tmp_path / "out.parquet", fmt=ExportFormat.PARQUET, schema=CONVERSATIONAL_PREFERENCE_SCHEMA
    )
    table = pq.read_table(result.path)
    assert table.column_names == ["prompt", "chosen", "rejected"]
    assert table.to_pylist() == ROWS


def test_parquet_without_schema_infers_it_from_the_first_batch(tmp_path: Path) -> None:
    result = write_rows(ROWS, tmp_path / "out.parquet", fmt=ExportFormat.PARQUET)
    table = pq.read_table(result.path)
    assert table.schema.equals(CONVERSATIONAL_PREFERENCE_SCHEMA)
    assert table.to_pylist() == ROWS


def test_empty_export_writes_a_valid_empty_parquet(tmp_path: Path) -> None:
    result = write_rows(
        [], tmp_path / "empty.parquet", fmt=ExportFormat.PARQUET, schema=CONVERSATIONAL_PREFERENCE_SCHEMA
    )
    assert result.rows == 0
    assert pq.read_table(result.path).num_rows == 0


def test_failed_export_leaves_no_file(tmp_path: Path) -> None:
    def broken() -> Iterator[dict[str, Any]]:
        yield ROWS[0]
        raise RuntimeError("source failed")

    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        write_rows(broken(), target, fmt=ExportFormat.JSONL, schema=CONVERSATIONAL_PREFERENCE_SCHEMA)
    assert list(tmp_path.iterdir()) == []


def test_gzip_jsonl_is_deterministic_and_names_no_file(tmp_path: Path) -> None:
    first = write_rows(ROWS, tmp_path / "a.jsonl.gz", fmt=ExportFormat.JSONL, compress=True)
    second = write_rows(ROWS, tmp_path / "b.jsonl.gz", fmt=ExportFormat.JSONL, compress=True)
    data = first.path.read_bytes()
    assert data == second.path.read_bytes()
    assert data[3] & 0x08 == 0  # FNAME flag unset: no file name in the header
    assert data[4:8] == b"\0\0\0\0"  # mtime 0
    assert [orjson.loads(line) for line in gzip.decompress(data).splitlines()] == ROWS


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize(("compress", "suffix"), [(False, ".jsonl"), (True, ".jsonl.gz")])
def test_jsonl_splits_load_with_datasets(tmp_path: Path, compress: bool, suffix: str) -> None:
    out = tmp_path / "out"
    written = write_splits(SPLIT_ROWS, out, fmt=ExportFormat.JSONL, compress=compress, splits=["train", "test"])
    assert [entry.path for entry in written.files] == [f"train{suffix}", f"test{suffix}"]
    assert written.rows_per_split() == {"train": 7, "test": 3}
    loaded = datasets.load_dataset(
        "json",
        data_files={name: str(out / f"{name}{suffix}") for name in EXPECTED},
        cache_dir=str(tmp_path / "cache"),
    )
    assert {name: loaded[name].to_list() for name in EXPECTED} == EXPECTED
    assert loaded["train"].column_names == ["prompt", "chosen", "rejected"]


@pytest.mark.usefixtures("offline")
def test_parquet_splits_load_with_datasets(tmp_path: Path) -> None:
    out = tmp_path / "out"
    written = write_splits(SPLIT_ROWS, out, fmt=ExportFormat.PARQUET, batch_rows=3)
    assert [entry.path for entry in written.files] == ["train.parquet", "test.parquet"]
    loaded = datasets.load_dataset(
        "parquet", data_files={name: str(out / f"{name}.parquet") for name in EXPECTED}, cache_dir=str(tmp_path / "c")
    )
    assert {name: loaded[name].to_list() for name in EXPECTED} == EXPECTED
    assert pq.ParquetFile(out / "train.parquet").metadata.num_row_groups == 3  # batches of 3: 3 + 3 + 1


@pytest.mark.usefixtures("offline")
def test_hf_directory_loads_with_load_from_disk(tmp_path: Path) -> None:
    out = tmp_path / "out"
    written = write_splits(SPLIT_ROWS, out, fmt=ExportFormat.HF, schema=CONVERSATIONAL_PREFERENCE_SCHEMA)
    loaded = datasets.load_from_disk(str(out))
    assert list(loaded) == ["train", "test"]
    assert {name: loaded[name].to_list() for name in EXPECTED} == EXPECTED
    assert written.rows_per_split() == {"train": 7, "test": 3}
    assert not [path for path in out.rglob("*") if path.name.startswith(".")]  # no work files left


def test_unsplit_rows_become_one_train_file(tmp_path: Path) -> None:
    written = write_splits(unsplit(ROWS), tmp_path, fmt=ExportFormat.JSONL)
    assert [(entry.path, entry.rows) for entry in written.files] == [("train.jsonl", 3)]


def test_a_named_split_without_rows_still_gets_a_file(tmp_path: Path) -> None:
    written = write_splits(
        unsplit(ROWS), tmp_path, fmt=ExportFormat.PARQUET, schema=CONVERSATIONAL_PREFERENCE_SCHEMA, splits=["test"]
    )
    assert written.rows_per_split() == {"train": 3, "test": 0}
    assert pq.read_table(tmp_path / "test.parquet").num_rows == 0


def test_split_names_must_be_safe_file_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split names"):
        write_splits([("../train", ROWS[0])], tmp_path, fmt=ExportFormat.JSONL)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_failed_split_export_leaves_nothing_behind(tmp_path: Path, fmt: ExportFormat) -> None:
    with pytest.raises(RuntimeError):
        write_splits(_broken(), tmp_path, fmt=fmt, schema=CONVERSATIONAL_PREFERENCE_SCHEMA)
    assert list(tmp_path.iterdir()) == []


def test_staged_directory_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    out = tmp_path / "export"

    def fail_after_the_data() -> None:
        with staged_directory(out) as stage:
            write_splits(unsplit(ROWS), stage, fmt=ExportFormat.JSONL)
            raise RuntimeError("card failed")

    with pytest.raises(RuntimeError):
        fail_after_the_data()
    assert list(tmp_path.iterdir()) == []

    with staged_directory(out) as stage:
        write_splits(unsplit(ROWS), stage, fmt=ExportFormat.JSONL)
    assert [path.name for path in tmp_path.iterdir()] == ["export"]
    assert sorted(path.name for path in out.iterdir()) == ["train.jsonl"]

    with pytest.raises(FileExistsError), staged_directory(out):
        pass


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize(("fmt", "compress"), [("jsonl", False), ("jsonl", True), ("parquet", False), ("hf", False)])
def test_two_writes_of_the_same_rows_are_byte_identical(tmp_path: Path, fmt: str, compress: bool) -> None:
    trees = []
    for name in ("first", "second"):
        out = tmp_path / name
        write_splits(SPLIT_ROWS, out, fmt=ExportFormat(fmt), compress=compress, batch_rows=4)
        trees.append(_tree(out))
    assert trees[0] == trees[1]
    assert trees[0]


def test_writers_stream_200k_rows_in_flat_memory(tmp_path: Path) -> None:
    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        for index in range(200_000):
            yield ("test" if index % 10 == 0 else "train"), _row(index)

    # Holding 200k of these rows takes over 200 MB of Python objects.
    bound = 16 * 1024 * 1024
    for fmt in (ExportFormat.JSONL, ExportFormat.PARQUET):
        # A first small write pays pyarrow's one-off start-up allocations outside the measure.
        write_splits(unsplit(ROWS), tmp_path / f"warm-{fmt.value}", fmt=fmt, schema=CONVERSATIONAL_PREFERENCE_SCHEMA)
        tracemalloc.start()
        try:
            written = write_splits(rows(), tmp_path / fmt.value, fmt=fmt, schema=CONVERSATIONAL_PREFERENCE_SCHEMA)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert written.rows_per_split() == {"train": 180_000, "test": 20_000}
        assert peak < bound, f"{fmt}: peak {peak / 2**20:.1f} MiB"
