"""What every reader yields: a native item with the verdicts the source carried, or the row's problems."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

import orjson

from app.errors import Problem

VerdictKind = Literal["choice", "scores", "ranking"]


@dataclass(frozen=True, slots=True)
class ExternalVerdict:
    """A judgment made outside prefstack (a dataset's preference, a judge model, another tool's annotator).

    Positions are 0-based indexes into the item's `responses`, in the order the reader built them.
    `payload` by kind: choice `{"choice": position | "tie"}`, scores
    `{"scores": {"position": {"aspect": number | None}}}`, ranking `{"ranking": [[position, ...], ...]}`
    (best group first, tied positions share a group).
    """

    source: str
    judge: str
    kind: VerdictKind
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One item read from a source, in prefstack's native shape (docs/formats.md)."""

    number: int
    item: dict[str, Any]
    verdicts: tuple[ExternalVerdict, ...] = ()
    record: Any = field(default=None, compare=False, repr=False)
    """The record as the source had it, written to the rejects file if the item is refused."""
    empty_replies: bool = False
    """The source may hold empty replies (HH-RLHF): a response with content "" and metadata
    `{"empty_reply": true}` is then accepted; everywhere else an empty response is refused."""


@dataclass(frozen=True, slots=True)
class RowError:
    """A record that could not be read or converted: every problem names its row and field."""

    number: int
    problems: tuple[Problem, ...]
    record: Any = field(default=None, compare=False, repr=False)


ReadRow = SourceRow | RowError


def row_error(number: int, record: Any, *problems: tuple[str, str | None]) -> RowError:
    """A RowError from (message, field) pairs."""
    return RowError(
        number, tuple(Problem(message, field=where, row=number) for message, where in problems), record=record
    )


def content_id(prefix: str, value: Any) -> str:
    """A stable external_id for sources without ids: a prefix and a hash of the canonical JSON."""
    canonical = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return f"{prefix}-{hashlib.sha256(canonical).hexdigest()[:32]}"


def is_text(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


NUL_MESSAGE = "contains a NUL character (\\u0000), which a database cannot store"


def holds_nul(value: Any) -> bool:
    """Whether a string, or any string or key inside lists and objects, contains U+0000 (PostgreSQL
    refuses it in text and JSON; refusing it everywhere keeps the backends alike)."""
    pending = [value]
    while pending:
        current = pending.pop()
        kind = type(current)
        if kind is str:
            if "\x00" in current:
                return True
        elif kind is dict:
            pending.extend(current)
            pending.extend(current.values())
        elif kind is list:
            pending.extend(current)
    return False


def json_type(value: Any) -> str:
    """How a JSON value is named in messages: 'an object', 'a list', 'a number'..."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    names = {dict: "an object", list: "a list", str: "a string", type(None): "null"}
    return names.get(type(value), type(value).__name__)
