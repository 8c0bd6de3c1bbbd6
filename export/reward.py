"""Reward-model rows: the DPO pairs plus an optional `margin` TRL's RewardTrainer adds to its loss."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from export.formats import preference_row, provenance
from export.pairs import PairOptions, PreferencePair, preference_pairs
from preference_store.judgments import ItemJudgments

NO_MARGIN = "no_margin"


@dataclass(frozen=True, slots=True)
class RewardOptions(PairOptions):
    """Pair options plus the margin.

    Args:
        margin: add a `margin` float column.
        missing_margin: the margin of a pair no source gives one for (0.0 = plain Bradley-Terry);
            None drops such pairs (counted as `no_margin`).
        rank_margin_step: margin per place between chosen and rejected in a ranking's consensus order.
        score_margin_scale: multiplies a rubric overall score gap (0..1).
    """

    margin: bool = True
    missing_margin: float | None = 0.0
    rank_margin_step: float = 0.5
    score_margin_scale: float = 2.0


def pair_margin(pair: PreferencePair, options: RewardOptions) -> float | None:
    """A pair's margin: strength first, then rubric score gap, then rank distance, else the fallback.

    - strength: mean over the votes for the winner of slightly 0.5, clearly 1.0, much 2.0
      (votes without a strength left out);
    - rubric: `score_margin_scale * (overall(chosen) - overall(rejected))`, floored at 0;
    - ranking: `rank_margin_step * places between them in the consensus order`.

    Args:
        pair: a preference pair.
        options: the margin settings.

    Returns:
        The margin, or `options.missing_margin` when no source applies.

    Example:
        >>> pair_margin(PreferencePair("a", "b", "ranking", 1.0, rank_distance=2), RewardOptions())
        1.0
    """
    if pair.strength_margin is not None:
        return pair.strength_margin
    if pair.score_gap is not None:
        return options.score_margin_scale * pair.score_gap
    if pair.rank_distance is not None:
        return options.rank_margin_step * pair.rank_distance
    return options.missing_margin


def build_reward_rows(
    items: Iterable[ItemJudgments], options: RewardOptions | None = None, *, skips: Counter[str] | None = None
) -> Iterator[dict[str, Any]]:
    """Rows for TRL's RewardTrainer: `prompt`, `chosen`, `rejected` and, when asked, `margin`.

    Args:
        items: judged items in a stable order.
        options: pair sources, aggregation, format and margin.
        skips: refused items and rows are counted here by reason.

    Returns:
        An iterator of preference rows with a float `margin`.

    Example:
        >>> next(build_reward_rows(items))["margin"]
        1.0
    """
    options = options or RewardOptions()
    skips = Counter() if skips is None else skips
    for item in items:
        for pair in preference_pairs(item, options, skips):
            margin = pair_margin(pair, options) if options.margin else None
            if options.margin and margin is None:
                skips[NO_MARGIN] += 1
                continue
            row = preference_row(item.messages, pair.chosen, pair.rejected, options.row_format, skips)
            if row is None:
                continue
            if margin is not None:
                row["margin"] = float(margin)
            if options.provenance:
                row |= provenance(item, source=pair.source, agreement=pair.agreement)
            yield row
