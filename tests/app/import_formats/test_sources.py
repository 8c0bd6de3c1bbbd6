"""Containers (JSONL, gzip, JSON arrays, Parquet, datasets directories) and format detection."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.errors import InvalidInput
from app.import_formats import ReadRow, RowError, SourceFormat, SourceRow, detect_format, read_source
from app.import_formats import lines as source_lines

H, A = "\n\nHuman:", "\n\nAssistant:"
HH = {"chosen": f"{H} q{A} good", "rejected": f"{H} q{A} bad"}
NATIVE = {"external_id": "n1", "prompt": "q", "responses": [{"content": "a"}, {"content": "b"}]}
ULTRA = {"instruction": "q", "completions": [{"model": "m", "response": "a", "annotations": {}}]}
OPENAI = {"messages": [{"role": "user", "content": "q"}], "completions": ["a", "b"]}
TASK = {"id": 1, "data": {"prompt": "q", "answer1": "a", "answer2": "b"}, "annotations": []}


def _jsonl(path: Path, *records: object) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def _items(rows: list[ReadRow]) -> list[dict[str, object]]:
    assert all(isinstance(row, SourceRow) for row in rows), rows
    return [row.item for row in rows if isinstance(row, SourceRow)]


@pytest.mark.parametrize(
    ("record", "shape"),
    [(NATIVE, "native"), (HH, "hh-rlhf"), (ULTRA, "ultrafeedback"), (OPENAI, "openai"), (TASK, "label-studio")],
)
def test_shape_is_detected_from_the_first_record(tmp_path: Path, record: dict[str, object], shape: str) -> None:
    path = _jsonl(tmp_path / "rows.jsonl", record)
    assert detect_format(path) == SourceFormat("jsonl", shape)
    assert len(_items(list(read_source(path)))) == 1


def test_detection_skips_unreadable_first_lines(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("{oops\n\n" + json.dumps(HH) + "\n", encoding="utf-8")
    assert detect_format(path) == SourceFormat("jsonl", "hh-rlhf")
    rows = list(read_source(path))
    assert isinstance(rows[0], RowError) and str(rows[0].problems[0]).startswith("line 1: not valid JSON")
    assert isinstance(rows[1], SourceRow) and rows[1].number == 3


def test_unknown_and_ambiguous_records_ask_for_a_format(tmp_path: Path) -> None:
    unknown = _jsonl(tmp_path / "unknown.jsonl", {"question": "q", "answer": "a"})
    with pytest.raises(InvalidInput, match=r"cannot detect the format from the keys of record 1 \(answer, question\)"):
        detect_format(unknown)
    both = _jsonl(tmp_path / "both.jsonl", {**HH, "messages": []})
    with pytest.raises(InvalidInput, match=r"fits several formats \(openai, hh-rlhf\): pass --format"):
        detect_format(both)
    assert detect_format(both, "hh-rlhf") == SourceFormat("jsonl", "hh-rlhf")
    with pytest.raises(InvalidInput, match=re.escape("cannot tell the format of 'rows.txt'")):
        detect_format(tmp_path / "rows.txt")
    with pytest.raises(InvalidInput, match="unknown format 'xml'"):
        detect_format(unknown, "xml")
    with pytest.raises(InvalidInput, match="unknown format 'csv:hh-rlhf'"):
        detect_format(unknown, "csv:hh-rlhf")


def test_gzip_is_read_by_its_magic_number(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(gzip.compress((json.dumps(HH) + "\n").encode()))
    assert detect_format(path) == SourceFormat("jsonl", "hh-rlhf")
    assert _items(list(read_source(path)))[0]["responses"] == [{"content": "good"}, {"content": "bad"}]


def test_json_array_is_numbered_by_position_and_json_lines_in_a_json_file_are_lines(tmp_path: Path) -> None:
    array = tmp_path / "export.json"
    array.write_text(json.dumps([TASK, {**TASK, "id": 2}]), encoding="utf-8")
    assert detect_format(array) == SourceFormat("json", "label-studio")
    assert [row.number for row in read_source(array)] == [1, 2]
    lines = _jsonl(tmp_path / "lines.json", HH, HH)
    assert detect_format(lines) == SourceFormat("jsonl", "hh-rlhf")
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    with pytest.raises(InvalidInput, match=re.escape("broken.json is not valid JSON")):
        list(read_source(broken, "label-studio"))


def test_parquet_rows_are_read_in_batches_without_null_keys(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    rows = [
        {**NATIVE, "metadata": {"language": "en", "category": None}},
        {**NATIVE, "external_id": "n2", "metadata": {"language": None, "category": "spam"}},
    ]
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert detect_format(path) == SourceFormat("parquet", "native")
    assert [item["metadata"] for item in _items(list(read_source(path)))] == [{"language": "en"}, {"category": "spam"}]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(InvalidInput, match=re.escape("bad.parquet is not a readable Parquet file")):
        list(read_source(tmp_path / "bad.parquet"))


def test_datasets_directories_are_read_from_their_arrow_files(tmp_path: Path) -> None:
    dataset = datasets.Dataset.from_list([HH, {"chosen": f"{H} r{A} yes", "rejected": f"{H} r{A} no"}])
    dataset.save_to_disk(str(tmp_path / "single"))
    assert detect_format(tmp_path / "single") == SourceFormat("hf-dataset", "hh-rlhf")
    assert len(_items(list(read_source(tmp_path / "single")))) == 2
    datasets.DatasetDict({"test": dataset}).save_to_disk(str(tmp_path / "one-split"))
    assert len(_items(list(read_source(tmp_path / "one-split")))) == 2
    datasets.DatasetDict({"train": dataset, "test": dataset}).save_to_disk(str(tmp_path / "two-splits"))
    with pytest.raises(InvalidInput, match="holds several splits \\(train, test\\)"):
        list(read_source(tmp_path / "two-splits"))
    with pytest.raises(InvalidInput, match="is a directory but not one written by datasets' save_to_disk"):
        detect_format(tmp_path)


def test_invalid_utf8_and_overlong_lines_are_row_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_lines, "MAX_RECORD_BYTES", 1024 * 1024)
    path = tmp_path / "rows.jsonl"
    path.write_bytes(
        json.dumps(NATIVE).encode()
        + b"\n"
        + b'{"external_id": "\xff"}\n'
        + b'{"x": "'
        + b"y" * (1024 * 1024 + 10)
        + b'"}\n'
        + b"[1]\n"
    )
    rows = list(read_source(path, "native"))
    assert [str(problem) for row in rows if isinstance(row, RowError) for problem in row.problems] == [
        "line 2: not valid UTF-8 (byte 18 of the line)",
        "line 3: line longer than 1 MB",
    ]
    assert [row.number for row in rows] == [1, 2, 3, 4]


def test_a_json_array_is_streamed_record_by_record_and_a_late_syntax_error_is_raised_there(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    good = json.dumps([NATIVE, {**NATIVE, "external_id": "n2", "metadata": {"score": 0.5}}])
    path.write_text("\ufeff" + good[:-1] + ', {"external_id": ', encoding="utf-8")
    rows = read_source(path, "json:native")
    first, second = next(rows), next(rows)
    assert isinstance(first, SourceRow) and isinstance(second, SourceRow)
    assert second.item["metadata"] == {"score": 0.5} and type(second.item["metadata"]["score"]) is float
    with pytest.raises(InvalidInput) as broken:
        next(rows)
    assert broken.value.code == "invalid_import_file" and "tasks.json is not valid JSON" in broken.value.message
