"""prefstack's own item shape (docs/formats.md): passed through; the import service validates it."""

from __future__ import annotations

from typing import Any

from app.import_formats.rows import SourceRow

NAME = "native"


def matches(record: dict[str, Any]) -> bool:
    return "responses" in record


def convert(number: int, record: Any) -> SourceRow:
    """A native record is already an item."""
    return SourceRow(number, record, record=record)
