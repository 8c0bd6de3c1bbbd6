"""PostgreSQL COPY payloads in text format, built without a connection (so they can be built while one is busy)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

NULL = "\\N"


def copy_field(value: Any) -> str:
    """One value as COPY's text format writes it: NULL as \\N, booleans as t/f, text with \\, tab, newline and
    carriage return escaped. Text must not hold NUL (U+0000): PostgreSQL cannot store it, callers refuse it first."""
    if value is None:
        return NULL
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, str):
        return _escaped(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("COPY takes aware datetimes only (timestamptz columns)")
        return value.isoformat()
    raise TypeError(f"no COPY text form for {type(value).__name__}")


def _escaped(text: str) -> str:
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if "\n" in text:
        text = text.replace("\n", "\\n")
    if "\t" in text:
        text = text.replace("\t", "\\t")
    if "\r" in text:
        text = text.replace("\r", "\\r")
    return text


def copy_payload(rows: Iterable[tuple[Any, ...]]) -> bytes:
    """The rows as one COPY ... FROM STDIN (text format) payload, UTF-8 encoded."""
    return "".join("\t".join(map(copy_field, row)) + "\n" for row in rows).encode("utf-8")
