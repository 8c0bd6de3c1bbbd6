"""Tiny literal judged items for the builder tests."""

from __future__ import annotations

from typing import Any

from preference_store.judgments import ItemJudgments, ResponseText


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def vote(choice: str, strength: str | None = None, **extra: Any) -> dict[str, Any]:
    """A stored pairwise payload: choice is "0"/"1" (a position), "tie" or "both_bad"."""
    preferred = int(choice) if choice.isdigit() else None
    return {
        "choice": "A" if preferred is not None else choice,
        "preferred_position": preferred,
        "strength": strength,
        "labels": extra.pop("labels", {}),
        "rewrite": extra.pop("rewrite", None),
        "rationale": None,
        **extra,
    }


def item(
    external_id: str,
    responses: list[str],
    payloads: list[dict[str, Any]],
    *,
    prompt: str | list[dict[str, str]] | None = None,
    item_id: int = 1,
) -> ItemJudgments:
    messages = (
        user(prompt if prompt is not None else f"prompt {external_id}") if not isinstance(prompt, list) else prompt
    )
    return ItemJudgments(
        item_id=item_id,
        external_id=external_id,
        messages=messages,
        metadata={},
        responses=[ResponseText(position, content, f"m{position}") for position, content in enumerate(responses)],
        payloads=payloads,
        annotator_ids=list(range(len(payloads))),
    )


def pairwise(external_id: str, votes: str, *, strengths: str = "", **kwargs: Any) -> ItemJudgments:
    """Two responses `a <id>` / `b <id>`; votes one character each: 0, 1, t (tie), x (both bad)."""
    names = {"t": "tie", "x": "both_bad"}
    strength_names = {"s": "slightly", "c": "clearly", "m": "much", "-": None}
    payloads = [
        vote(names.get(v, v), strength_names[strengths[i]] if i < len(strengths) else None) for i, v in enumerate(votes)
    ]
    return item(external_id, [f"a {external_id}", f"b {external_id}"], payloads, **kwargs)


def ranked(external_id: str, rankings: list[list[list[int]]], *, size: int = 3, all_bad: int = 0) -> ItemJudgments:
    payloads: list[dict[str, Any]] = [{"ranking": r, "all_bad": False, "rationale": None} for r in rankings]
    payloads += [{"ranking": [], "all_bad": True, "rationale": None}] * all_bad
    return item(external_id, [f"r{p} {external_id}" for p in range(size)], payloads)


def scored(external_id: str, scores: list[dict[str, dict[str, Any]]], *, size: int = 2, **extra: Any) -> ItemJudgments:
    payloads = [{"scores": s, "rationale": None, **extra} for s in scores]
    return item(external_id, [f"c{p} {external_id}" for p in range(size)], payloads)
