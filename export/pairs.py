"""Preference pairs from judged items: pairwise majorities, ranking consensus, rewrites, rubric choices.

DPO and reward rows are the same pairs; the reward export adds a margin.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from export.aggregate import Abstain, MajorityRule, ModelLabel, pairwise_decision, ranking_consensus, rubric_scores
from export.formats import RowFormat, item_kind, response_text
from preference_store.judgments import ItemJudgments


class RankingPairs(StrEnum):
    """Which pairs a ranked item gives (only pairs a strict majority of its rankings agree on)."""

    ALL_PAIRS = "all_pairs"
    """Every pair of responses with a majority: up to n(n-1)/2 rows per item."""
    BEST_VS_REST = "best_vs_rest"
    """The consensus best response against each response it beats by majority: up to n-1 rows."""


@dataclass(frozen=True, slots=True)
class PairOptions:
    """Which items and sources become preference pairs, and how votes are combined.

    Args:
        min_judgments: counted votes an item (or ranking pair) needs.
        min_agreement: share of counted votes the winning outcome needs (0..1).
        ties: tie votes count (`keep`) or abstain (`drop`).
        both_bad: both-bad (and all-bad ranking) votes count (`keep`) or abstain (`drop`).
        from_pairwise: pairs from pairwise majorities.
        from_rankings: pairs from ranking consensus.
        ranking_pairs: `all_pairs` or `best_vs_rest`.
        from_rewrites: the annotator's rewrite as chosen, the response it rewrote as rejected.
        from_rubric_choice: pairs from the overall choice of two-response rubric items.
        rubric_scales: `(min, max)` per Likert criterion, for rubric overall scores.
        row_format: conversational (default) or standard.
        provenance: add external_id, source, annotators, votes, agreement columns.
        fitted_labels: item id -> outcome fitted over the whole export (Dawid-Skene); replaces the majority.
    """

    min_judgments: int = 1
    min_agreement: float = 0.0
    ties: Abstain = Abstain.KEEP
    both_bad: Abstain = Abstain.KEEP
    from_pairwise: bool = True
    from_rankings: bool = True
    ranking_pairs: RankingPairs = RankingPairs.ALL_PAIRS
    from_rewrites: bool = True
    from_rubric_choice: bool = True
    rubric_scales: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    row_format: RowFormat = RowFormat.CONVERSATIONAL
    provenance: bool = False
    fitted_labels: Mapping[int, ModelLabel] = field(default_factory=dict)

    @property
    def rule(self) -> MajorityRule:
        return MajorityRule(self.min_judgments, self.min_agreement, self.ties, self.both_bad)


@dataclass(frozen=True, slots=True)
class PreferencePair:
    """One chosen/rejected pair of an item, with where it came from."""

    chosen: str | None
    rejected: str | None
    source: str
    """`pairwise`, `ranking`, `rewrite` or `rubric`."""
    agreement: float | None
    strength_margin: float | None = None
    """Mean of slightly 0.5 / clearly 1.0 / much 2.0 over the votes for the winner."""
    score_gap: float | None = None
    """Rubric overall score of chosen minus rejected (0..1), when both are known."""
    rank_distance: int | None = None
    """Places between chosen and rejected in the consensus order."""


def preference_pairs(item: ItemJudgments, options: PairOptions, skips: Counter[str]) -> Iterator[PreferencePair]:
    """Every pair an item gives under the options; items without a decision are counted by reason.

    Args:
        item: a judged item.
        options: sources and aggregation rule.
        skips: item-level reasons (`no_majority`, `tie`, `both_bad`, ...) are counted here.

    Returns:
        The item's pairs: aggregated ones first, then rewrites.

    Example:
        >>> [pair.source for pair in preference_pairs(item, PairOptions(), Counter())]
        ['pairwise', 'rewrite']
    """
    kind = item_kind(item)
    if kind == "pairwise" and options.from_pairwise:
        yield from _choice_pairs(item, options, skips, source="pairwise")
    elif kind == "rubric" and options.from_rubric_choice and any("choice" in p for p in item.payloads):
        yield from _choice_pairs(item, options, skips, source="rubric")
    elif kind == "ranking" and options.from_rankings:
        yield from _ranking_pairs(item, options, skips)
    if kind == "pairwise" and options.from_rewrites:
        yield from _rewrite_pairs(item, options)


def _choice_pairs(
    item: ItemJudgments, options: PairOptions, skips: Counter[str], *, source: str
) -> Iterator[PreferencePair]:
    payloads = [payload for payload in item.payloads if source == "pairwise" or "choice" in payload]
    decision = pairwise_decision(payloads, options.rule, options.fitted_labels.get(item.item_id))
    if decision.winner is None:
        skips[decision.outcome] += 1
        return
    others = [response.position for response in item.responses if response.position != decision.winner]
    if len(others) != 1:
        skips["not_two_responses"] += 1
        return
    gap = None
    if source == "rubric":
        scores = rubric_scores(payloads, [decision.winner, others[0]], options.rubric_scales)
        chosen_overall, rejected_overall = scores[decision.winner].overall, scores[others[0]].overall
        if chosen_overall is not None and rejected_overall is not None:
            gap = max(chosen_overall - rejected_overall, 0.0)
    yield PreferencePair(
        response_text(item, decision.winner),
        response_text(item, others[0]),
        source,
        decision.agreement,
        strength_margin=decision.margin_strength,
        score_gap=gap,
    )


def _ranking_pairs(item: ItemJudgments, options: PairOptions, skips: Counter[str]) -> Iterator[PreferencePair]:
    consensus = ranking_consensus(item.payloads, [response.position for response in item.responses])
    counted = consensus.votes + (consensus.all_bad_votes if options.both_bad is Abstain.KEEP else 0)
    if counted < max(options.min_judgments, 1):
        skips["too_few_judgments"] += 1
        return
    if options.both_bad is Abstain.KEEP and consensus.all_bad:
        skips["both_bad"] += 1
        return
    place = {position: index for index, position in enumerate(consensus.order)}
    best = consensus.order[0] if consensus.order else None
    found = 0
    for pair in consensus.pairs:
        if options.ranking_pairs is RankingPairs.BEST_VS_REST and pair.better != best:
            continue
        if pair.votes < options.min_judgments or pair.agreement < options.min_agreement:
            skips["low_agreement"] += 1
            continue
        found += 1
        yield PreferencePair(
            response_text(item, pair.better),
            response_text(item, pair.worse),
            "ranking",
            pair.agreement,
            rank_distance=abs(place[pair.worse] - place[pair.better]),
        )
    if not found:
        skips["no_majority"] += 1


def _rewrite_pairs(item: ItemJudgments, options: PairOptions) -> Iterator[PreferencePair]:
    seen: set[tuple[int, str]] = set()
    for payload in item.payloads:
        rewrite = payload.get("rewrite")
        if not rewrite or len(item.payloads) < options.min_judgments:
            continue
        key = (int(rewrite["position"]), str(rewrite["content"]))
        if key in seen:
            continue
        seen.add(key)
        yield PreferencePair(key[1], response_text(item, key[0]), "rewrite", None)
