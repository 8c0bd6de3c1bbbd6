"""Combining several annotators' pairwise verdicts into one label."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PairwiseOutcome:
    """The majority verdict on an item: the preferred response position, or None."""

    preferred_position: int | None
    votes: int
    agreeing: int


def pairwise_majority(payloads: Sequence[dict[str, Any]]) -> PairwiseOutcome:
    """The response more than half of the judgments preferred; ties and both-bad never win.

    Args:
        payloads: stored pairwise judgment payloads (`choice`, `preferred_position`).

    Returns:
        The outcome; `preferred_position` is None without a strict majority for one response.

    Example:
        >>> pairwise_majority([{"preferred_position": 1}, {"preferred_position": 1}, {"choice": "tie"}])
        PairwiseOutcome(preferred_position=1, votes=3, agreeing=2)
    """
    outcomes: Counter[int | str] = Counter()
    for payload in payloads:
        position = payload.get("preferred_position")
        outcomes[position if isinstance(position, int) else str(payload.get("choice"))] += 1
    votes = sum(outcomes.values())
    if not votes:
        return PairwiseOutcome(None, 0, 0)
    winner, count = max(outcomes.items(), key=lambda entry: (entry[1], isinstance(entry[0], int)))
    if isinstance(winner, int) and count * 2 > votes:
        return PairwiseOutcome(winner, votes, count)
    return PairwiseOutcome(None, votes, count)
