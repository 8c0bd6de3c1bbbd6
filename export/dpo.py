"""DPO rows (TRL's preference format with an explicit prompt) from judged items."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from export.formats import preference_row, provenance
from export.pairs import PairOptions, RankingPairs, preference_pairs
from preference_store.judgments import ItemJudgments

__all__ = ["CONVERSATIONAL_PREFERENCE_SCHEMA", "DpoOptions", "RankingPairs", "build_dpo_rows"]

_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
CONVERSATIONAL_PREFERENCE_SCHEMA = pa.schema([("prompt", _MESSAGES), ("chosen", _MESSAGES), ("rejected", _MESSAGES)])

DpoOptions = PairOptions
"""DPO rows take the pair options as they are."""


def build_dpo_rows(
    items: Iterable[ItemJudgments], options: PairOptions | None = None, *, skips: Counter[str] | None = None
) -> Iterator[dict[str, Any]]:
    """Rows in TRL's preference format with an explicit prompt (`prompt`, `chosen`, `rejected`).

    Pairs come from pairwise majorities, ranking consensus (all pairs or best vs rest), rubric
    overall choices and rewrites, each switchable in the options. Items decided as tie or
    both-bad, or without a majority, give no pair.

    Args:
        items: judged items in a stable order (the store yields them by id).
        options: sources, aggregation and format; defaults keep every decided item, conversational.
        skips: refused items and rows are counted here by reason.

    Returns:
        An iterator of `{"prompt": [...messages], "chosen": [assistant], "rejected": [assistant]}`
        (plain strings in the standard format), plus provenance columns when asked.

    Example:
        >>> rows = list(build_dpo_rows(store.iter_judged_items(session, project_id=1)))
        >>> rows[0]["chosen"]
        [{'role': 'assistant', 'content': '...'}]
    """
    options = options or PairOptions()
    skips = Counter() if skips is None else skips
    for item in items:
        for pair in preference_pairs(item, options, skips):
            row = preference_row(item.messages, pair.chosen, pair.rejected, options.row_format, skips)
            if row is None:
                continue
            if options.provenance:
                row |= provenance(item, source=pair.source, agreement=pair.agreement)
            yield row
