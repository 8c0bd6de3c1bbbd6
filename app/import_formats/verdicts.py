"""Checking external verdicts against the item they belong to."""

from __future__ import annotations

from typing import Any, TypeGuard

from app.errors import Problem
from app.import_formats.rows import NUL_MESSAGE, ExternalVerdict, holds_nul, is_text

MAX_SOURCE_CHARS = 64
MAX_JUDGE_CHARS = 200


def verdict_problems(verdict: ExternalVerdict, *, responses: int, row: int, index: int | None = None) -> list[Problem]:
    """What is wrong with a verdict given how many responses its item has (an empty list when nothing is).

    Fields are named `verdicts[<index>].<field>`, or just `<field>` without an index (one verdict a line).
    """
    where = "" if index is None else f"verdicts[{index}]."
    problems = []

    def problem(field: str, message: str) -> None:
        problems.append(Problem(message, field=f"{where}{field}", row=row))

    if not is_text(verdict.source) or not is_text(verdict.judge):
        problem("judge", "a verdict needs a source and a judge")
    elif len(verdict.source) > MAX_SOURCE_CHARS:
        problem("source", f"longer than {MAX_SOURCE_CHARS} characters")
    elif len(verdict.judge) > MAX_JUDGE_CHARS:
        problem("judge", f"longer than {MAX_JUDGE_CHARS} characters")
    elif holds_nul(verdict.source):
        problem("source", NUL_MESSAGE)
    elif holds_nul(verdict.judge):
        problem("judge", NUL_MESSAGE)
    payload = verdict.payload
    if holds_nul(payload):
        problem(verdict.kind, NUL_MESSAGE)
        return problems
    if verdict.kind == "choice":
        choice = payload.get("choice")
        if choice != "tie" and not _is_position(choice, responses):
            problem("choice", f"must be a response position from 0 to {responses - 1} or 'tie'")
    elif verdict.kind == "scores":
        scores = payload.get("scores")
        if not isinstance(scores, dict) or not scores:
            problem("scores", "must map response positions to their scores")
        else:
            for position, aspects in scores.items():
                if not (position.isdigit() and _is_position(int(position), responses)):
                    problem("scores", f"'{position}' is not a response position from 0 to {responses - 1}")
                elif not isinstance(aspects, dict) or not all(_is_score(value) for value in aspects.values()):
                    problem(f"scores.{position}", "must map aspects to numbers (or null when not rated)")
    elif verdict.kind == "ranking":
        ranking = payload.get("ranking")
        flat = [position for group in ranking for position in group] if _is_groups(ranking) else None
        if flat is None or sorted(flat) != list(range(responses)):
            problem("ranking", f"must rank every response position from 0 to {responses - 1} exactly once")
    else:
        problem("kind", "must be choice, scores or ranking")
    return problems


def _is_position(value: Any, responses: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < responses


def _is_score(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _is_groups(value: Any) -> TypeGuard[list[list[int]]]:
    return isinstance(value, list) and all(
        isinstance(group, list) and group and all(isinstance(p, int) and not isinstance(p, bool) for p in group)
        for group in value
    )


def verdict_key(kind: str, payload: dict[str, Any]) -> str | None:
    """The comparable key of a checked verdict, as human judgments store it: `p<position>` or `tie` for a
    choice, `0>1=2` for a ranking (best group first); None for scores."""
    if kind == "choice":
        choice = payload.get("choice")
        return "tie" if choice == "tie" else f"p{choice}"
    if kind == "ranking":
        return ">".join("=".join(str(position) for position in sorted(group)) for group in payload["ranking"])
    return None
