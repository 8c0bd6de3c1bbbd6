"""`export.json`: what an export was made from, and hashes to verify it byte for byte.

The manifest lists every file of the export (except itself) with its SHA-256, size and
row count, and a content hash over the data files in path order. The same rows written
with the same parameters give the same manifest; the only field that may differ is
`created_at`, which is optional and covered by no hash.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from export.writers import DataFile, WrittenDataset, file_sha256

MANIFEST_NAME = "export.json"
MANIFEST_FORMAT = "prefstack-export/1"


@dataclass(frozen=True, slots=True)
class SourceProject:
    """A project rows came from, and the guidelines versions its exported judgments were made under."""

    slug: str
    first_guidelines_version: int | None = None
    last_guidelines_version: int | None = None


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of the export: where it is, its hash and size, and its rows if it holds data."""

    path: str
    sha256: str
    bytes: int
    split: str | None
    rows: int | None
    is_data: bool


@dataclass(frozen=True, slots=True)
class Problem:
    """A file that does not match the manifest (`missing`, `changed`, `unexpected`, `content_hash`)."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of `verify`: ok when no problem was found."""

    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def content_hash(entries: Iterable[FileEntry]) -> str:
    """One SHA-256 over the data files' paths and hashes, in path order.

    Example:
        >>> content_hash([FileEntry("train.jsonl", "ab12...", 10, "train", 1, True)])
        '5f0c...'
    """
    digest = hashlib.sha256()
    for entry in sorted((entry for entry in entries if entry.is_data), key=lambda entry: entry.path):
        digest.update(f"{entry.path}\0{entry.sha256}\n".encode())
    return digest.hexdigest()


def build_manifest(
    written: WrittenDataset,
    *,
    kind: str,
    parameters: Mapping[str, Any],
    sources: Sequence[SourceProject],
    prefstack_version: str,
    other_files: Sequence[str] = (),
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """The manifest of a written dataset, hashing its files as they are on disk now.

    Args:
        written: what `write_splits` returned.
        kind: the dataset kind (`dpo`, `reward`, `kto`, ...).
        parameters: the exact export parameters (JSON-serialisable; dates become ISO strings).
        sources: the projects the rows came from.
        prefstack_version: the running prefstack version (`export` cannot import `app`).
        other_files: further files in the directory to list and verify but keep out of the
            content hash, such as the card `README.md`.
        created_at: an optional timestamp, the one field no hash covers.

    Returns:
        The manifest as a dict, ready for `write_manifest`.

    Example:
        >>> manifest = build_manifest(written, kind="dpo", parameters={"seed": 1}, sources=[SourceProject("p")],
        ...                           prefstack_version="0.1.0", other_files=["README.md"])
        >>> manifest["content_sha256"]
        '9a3f...'
    """
    entries = [_entry(written.directory, data_file, is_data=True) for data_file in written.files]
    entries += [_entry(written.directory, DataFile(name, None, None), is_data=False) for name in other_files]
    entries.sort(key=lambda entry: entry.path)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "kind": kind,
        "file_format": written.fmt.value,
        "prefstack_version": prefstack_version,
        "parameters": dict(parameters),
        "source_projects": [
            {
                "slug": source.slug,
                "guidelines_versions": {
                    "first": source.first_guidelines_version,
                    "last": source.last_guidelines_version,
                },
            }
            for source in sorted(sources, key=lambda source: source.slug)
        ],
        "splits": written.rows_per_split(),
        "files": [
            {
                "path": entry.path,
                "sha256": entry.sha256,
                "bytes": entry.bytes,
                "split": entry.split,
                "rows": entry.rows,
                "data": entry.is_data,
            }
            for entry in entries
        ],
        "content_sha256": content_hash(entries),
    }
    if created_at is not None:
        manifest["created_at"] = created_at.isoformat()
    return manifest


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The manifest as JSON: sorted keys, two-space indent, one trailing newline."""
    return orjson.dumps(dict(manifest), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def write_manifest(directory: Path, manifest: Mapping[str, Any]) -> Path:
    """Write `export.json` into the export directory atomically; returns its path."""
    path = directory / MANIFEST_NAME
    partial = directory / f".{MANIFEST_NAME}.partial"
    try:
        partial.write_bytes(manifest_bytes(manifest))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def read_manifest(directory: Path) -> dict[str, Any]:
    """The parsed `export.json` of an export directory."""
    manifest = orjson.loads((directory / MANIFEST_NAME).read_bytes())
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{directory / MANIFEST_NAME} is not a {MANIFEST_FORMAT} manifest")
    return manifest


def verify(directory: Path) -> Verification:
    """Recompute every hash of an export and report what no longer matches its manifest.

    Args:
        directory: an export directory with its `export.json`.

    Returns:
        The problems found: missing, changed or unlisted files, and a content hash that
        no longer matches; none when the export is intact.

    Example:
        >>> verify(Path("exports/dpo")).ok
        True
    """
    manifest = read_manifest(directory)
    problems: list[Problem] = []
    recomputed: list[FileEntry] = []
    listed: set[str] = set()
    for item in manifest.get("files", []):
        relative = str(item["path"])
        listed.add(relative)
        path = directory / relative
        if not path.is_file():
            problems.append(Problem(relative, "missing"))
            continue
        sha = file_sha256(path)
        if sha != item["sha256"] or path.stat().st_size != item["bytes"]:
            problems.append(Problem(relative, "changed"))
        recomputed.append(
            FileEntry(relative, sha, path.stat().st_size, item["split"], item["rows"], bool(item["data"]))
        )
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_file() and relative != MANIFEST_NAME and relative not in listed:
            problems.append(Problem(relative, "unexpected"))
    if not any(problem.reason == "missing" for problem in problems) and (
        content_hash(recomputed) != manifest.get("content_sha256")
    ):
        problems.append(Problem(MANIFEST_NAME, "content_hash"))
    return Verification(problems=tuple(problems))


def _entry(directory: Path, data_file: DataFile, *, is_data: bool) -> FileEntry:
    path = directory / data_file.path
    return FileEntry(
        path=data_file.path,
        sha256=file_sha256(path),
        bytes=path.stat().st_size,
        split=data_file.split,
        rows=data_file.rows,
        is_data=is_data,
    )
