"""Readers for the formats items arrive in: pure and streaming, no database, no web framework.

Each reader turns a source into `SourceRow`s (a native item and the verdicts the source carried)
or `RowError`s (the row's problems, each naming its row and field). docs/formats.md has them all.
"""

from app.import_formats.rows import ExternalVerdict, ReadRow, RowError, SourceRow
from app.import_formats.sources import (
    FORMATS,
    SHAPES,
    SourceFormat,
    detect_format,
    detect_shape,
    read_source,
    read_values,
    source_format,
)

__all__ = [
    "FORMATS",
    "SHAPES",
    "ExternalVerdict",
    "ReadRow",
    "RowError",
    "SourceFormat",
    "SourceRow",
    "detect_format",
    "detect_shape",
    "read_source",
    "read_values",
    "source_format",
]
