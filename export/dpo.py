"""TRL preference rows (explicit prompt, conversational) from judged pairwise items."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from export.aggregate import pairwise_majority
from preference_store.judgments import ItemJudgments

Message = dict[str, str]

_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
CONVERSATIONAL_PREFERENCE_SCHEMA = pa.schema([("prompt", _MESSAGES), ("chosen", _MESSAGES), ("rejected", _MESSAGES)])


@dataclass(frozen=True, slots=True)
class DpoOptions:
    """Which items become rows."""

    min_judgments: int = 1


def build_dpo_rows(items: Iterable[ItemJudgments], options: DpoOptions | None = None) -> Iterator[dict[str, Any]]:
    """Rows in TRL's conversational preference format with an explicit prompt.

    One row per item whose judgments prefer one response by strict majority; items
    decided as tie or both-bad, or without a majority, give no row.

    Args:
        items: judged items in a stable order (the store yields them by id).
        options: filters; defaults keep every item with at least one judgment.

    Returns:
        An iterator of `{"prompt": [...messages], "chosen": [assistant], "rejected": [assistant]}`.

    Example:
        >>> rows = list(build_dpo_rows(store.iter_judged_items(session, project_id=1)))
        >>> rows[0]["chosen"]
        [{'role': 'assistant', 'content': '...'}]
    """
    options = options or DpoOptions()
    for item in items:
        if len(item.payloads) < options.min_judgments or len(item.responses) != 2:
            continue
        outcome = pairwise_majority(item.payloads)
        if outcome.preferred_position is None:
            continue
        by_position = {response.position: response.content for response in item.responses}
        chosen = by_position.get(outcome.preferred_position)
        rejected_positions = [position for position in by_position if position != outcome.preferred_position]
        if chosen is None or len(rejected_positions) != 1:
            continue
        rejected = by_position[rejected_positions[0]]
        if not chosen.strip() or not rejected.strip() or chosen == rejected:
            continue
        yield {
            "prompt": [_message(message) for message in item.messages],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }


def _message(message: dict[str, Any]) -> Message:
    return {"role": str(message["role"]), "content": str(message["content"])}
