"""Writers: JSONL and Parquet round trips, atomic files."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from export.dpo import CONVERSATIONAL_PREFERENCE_SCHEMA
from export.writers import ExportFormat, write_rows

ROWS = [
    {
        "prompt": [{"role": "user", "content": "สวัสดี, is this allowed?"}],
        "chosen": [{"role": "assistant", "content": "Không, vi phạm."}],
        "rejected": [{"role": "assistant", "content": "Ya"}],
    }
] * 3


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


def test_empty_export_writes_a_valid_empty_parquet(tmp_path: Path) -> None:
    result = write_rows(
        [], tmp_path / "empty.parquet", fmt=ExportFormat.PARQUET, schema=CONVERSATIONAL_PREFERENCE_SCHEMA
    )
    assert result.rows == 0
    assert pq.read_table(result.path).num_rows == 0


def test_failed_export_leaves_no_file(tmp_path: Path) -> None:
    def broken():  # type: ignore[no-untyped-def]
        yield ROWS[0]
        raise RuntimeError("source failed")

    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        write_rows(broken(), target, fmt=ExportFormat.JSONL, schema=CONVERSATIONAL_PREFERENCE_SCHEMA)
    assert list(tmp_path.iterdir()) == []
