"""The manifest: exact parameters, per-file hashes, a content hash, and `verify` catching any change."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from export.card import CardStats, write_card
from export.dpo import CONVERSATIONAL_PREFERENCE_SCHEMA
from export.manifest import (
    MANIFEST_NAME,
    Problem,
    SourceProject,
    build_manifest,
    read_manifest,
    verify,
    write_manifest,
)
from export.writers import ExportFormat, file_sha256, staged_directory, write_splits

PARAMETERS: dict[str, Any] = {
    "aggregation": "majority",
    "min_judgments": 2,
    "languages": ["th", "vi"],
    "since": date(2025, 1, 1),
    "split": {"test": 0.2, "validation": 0.0, "seed": 7},
}
SOURCES = [SourceProject("moderation-th", 1, 3), SourceProject("ads-vi", 2, 2)]


def _pairs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "test" if index % 5 == 0 else "train",
            {
                "prompt": [{"role": "user", "content": f"is ad {index} allowed?"}],
                "chosen": [{"role": "assistant", "content": "No."}],
                "rejected": [{"role": "assistant", "content": f"Yes {index}."}],
            },
        )
        for index in range(12)
    ]


def _export(out: Path, fmt: ExportFormat = ExportFormat.JSONL, created_at: datetime | None = None) -> dict[str, Any]:
    with staged_directory(out) as stage:
        written = write_splits(_pairs(), stage, fmt=fmt, schema=CONVERSATIONAL_PREFERENCE_SCHEMA)
        stats = CardStats(kind="dpo", prefstack_version="0.1.0", split_rows=written.rows_per_split())
        write_card(stage, stats, written)
        manifest = build_manifest(
            written,
            kind="dpo",
            parameters=PARAMETERS,
            sources=SOURCES,
            prefstack_version="0.1.0",
            other_files=["README.md"],
            created_at=created_at,
        )
        write_manifest(stage, manifest)
    return manifest


def test_manifest_records_parameters_sources_version_and_every_file(tmp_path: Path) -> None:
    _export(tmp_path / "out")
    manifest = read_manifest(tmp_path / "out")
    assert manifest["kind"] == "dpo"
    assert manifest["file_format"] == "jsonl"
    assert manifest["prefstack_version"] == "0.1.0"
    assert manifest["parameters"] == {**PARAMETERS, "since": "2025-01-01"}
    assert manifest["source_projects"] == [
        {"slug": "ads-vi", "guidelines_versions": {"first": 2, "last": 2}},
        {"slug": "moderation-th", "guidelines_versions": {"first": 1, "last": 3}},
    ]
    assert manifest["splits"] == {"train": 9, "test": 3}
    files = {entry["path"]: entry for entry in manifest["files"]}
    assert sorted(files) == ["README.md", "test.jsonl", "train.jsonl"]
    assert files["train.jsonl"]["rows"] == 9
    assert files["train.jsonl"]["data"] is True
    assert files["README.md"]["data"] is False
    assert files["test.jsonl"]["sha256"] == file_sha256(tmp_path / "out" / "test.jsonl")
    assert "created_at" not in manifest


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_the_same_export_twice_is_byte_identical_apart_from_created_at(tmp_path: Path, fmt: ExportFormat) -> None:
    first = _export(tmp_path / "a", fmt, created_at=datetime(2025, 1, 1, tzinfo=UTC))
    second = _export(tmp_path / "b", fmt, created_at=datetime(2025, 6, 1, tzinfo=UTC))
    assert first["content_sha256"] == second["content_sha256"]
    assert {key: value for key, value in first.items() if key != "created_at"} == {
        key: value for key, value in second.items() if key != "created_at"
    }
    for entry in first["files"]:
        assert (tmp_path / "a" / entry["path"]).read_bytes() == (tmp_path / "b" / entry["path"]).read_bytes()
    assert verify(tmp_path / "a").ok
    assert verify(tmp_path / "b").ok


def test_different_rows_give_a_different_content_hash(tmp_path: Path) -> None:
    first = _export(tmp_path / "a")
    with staged_directory(tmp_path / "b") as stage:
        written = write_splits(_pairs()[1:], stage, fmt=ExportFormat.JSONL)
        second = build_manifest(written, kind="dpo", parameters=PARAMETERS, sources=SOURCES, prefstack_version="0.1.0")
    assert first["content_sha256"] != second["content_sha256"]


def test_manifest_file_is_sorted_indented_json(tmp_path: Path) -> None:
    _export(tmp_path / "out")
    text = (tmp_path / "out" / MANIFEST_NAME).read_bytes()
    assert text.endswith(b"}\n")
    assert list(orjson.loads(text)) == sorted(orjson.loads(text))


def test_verify_catches_a_changed_byte(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _export(out)
    assert verify(out).ok
    data = bytearray((out / "train.jsonl").read_bytes())
    data[10] ^= 0x01
    (out / "train.jsonl").write_bytes(bytes(data))
    assert verify(out).problems == (Problem("train.jsonl", "changed"), Problem(MANIFEST_NAME, "content_hash"))


def test_verify_catches_an_edited_card_without_touching_the_content_hash(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _export(out)
    (out / "README.md").write_text("edited", encoding="utf-8")
    assert verify(out).problems == (Problem("README.md", "changed"),)


def test_verify_catches_missing_and_unexpected_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _export(out)
    (out / "test.jsonl").unlink()
    (out / "extra.jsonl").write_text("{}\n", encoding="utf-8")
    assert verify(out).problems == (Problem("test.jsonl", "missing"), Problem("extra.jsonl", "unexpected"))


def test_verify_catches_a_changed_hf_shard(tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = _export(out, ExportFormat.HF)
    shard = next(entry for entry in manifest["files"] if entry["path"].endswith(".arrow"))
    assert shard["rows"] in (9, 3)
    data = bytearray((out / shard["path"]).read_bytes())
    data[-20] ^= 0xFF
    (out / shard["path"]).write_bytes(bytes(data))
    assert Problem(shard["path"], "changed") in verify(out).problems
