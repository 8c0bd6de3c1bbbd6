"""Combining several annotators' verdicts on an item: pairwise majority, ranking consensus, rubric means."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
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


class ArbitrationMode(StrEnum):
    """Whether a lead's arbitration verdict decides an item's label in an export."""

    VERDICT_FIRST = "verdict-first"
    """A resolved case's verdict replaces the majority (or fitted) outcome."""
    IGNORE = "ignore"
    """Verdicts are left out: every item is aggregated from its judgments."""


_DECISION_FIELDS = ("choice", "preferred_position", "strength", "scores", "ranking", "all_bad")


def arbitrated_payloads(payloads: Sequence[dict[str, Any]], verdict: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An arbitrated item's judgments, each with the verdict's decision in place of its own.

    Each judgment keeps what is its annotator's alone (labels, rewrite, rationale) and takes the
    verdict's choice, preferred position, strength, scores and ranking. Majority, ranking
    consensus and rubric means then all give the verdict, with agreement 1.0, while the
    counts of votes and annotators stay those of the raw judgments.

    Args:
        payloads: the item's stored judgment payloads.
        verdict: the resolved case's payload (by response position).

    Returns:
        New payloads; the given ones are not changed.

    Example:
        >>> arbitrated_payloads([{"choice": "tie"}], {"choice": "B", "preferred_position": 1})
        [{'choice': 'B', 'preferred_position': 1}]
    """
    decision = {name: verdict[name] for name in _DECISION_FIELDS if name in verdict}
    return [{**payload, **decision} for payload in payloads]


STRENGTH_WEIGHTS = {"slightly": 1, "clearly": 2, "much": 3}
"""Signed strength of one preference vote: how much better the annotator said the winner was."""

TIE, BOTH_BAD = "tie", "both_bad"


class Abstain(StrEnum):
    """What a tie or both-bad vote counts as when the majority is taken."""

    KEEP = "keep"
    """A vote like any other: it counts against a winner and can itself win the item."""
    DROP = "drop"
    """An abstention: left out of the count, as if the annotator had not judged the item."""


@dataclass(frozen=True, slots=True)
class MajorityRule:
    """How several annotators' votes on one item become one outcome.

    Args:
        min_judgments: fewer counted votes give no outcome (`too_few_judgments`).
        min_agreement: the winning outcome's share of counted votes must reach this (0..1).
        ties: whether tie votes count (`keep`) or abstain (`drop`).
        both_bad: whether both-bad votes count (`keep`) or abstain (`drop`).
    """

    min_judgments: int = 1
    min_agreement: float = 0.0
    ties: Abstain = Abstain.KEEP
    both_bad: Abstain = Abstain.KEEP


@dataclass(frozen=True, slots=True)
class PairwiseDecision:
    """An item's aggregated pairwise outcome with the statistics kept for provenance.

    `outcome` is `preferred` (then `winner` is a response position), `tie`, `both_bad`,
    or a reason for having none: `too_few_judgments`, `no_majority`, `low_agreement`.
    """

    outcome: str
    winner: int | None
    votes: int
    """Counted votes (abstentions left out)."""
    agreeing: int
    """Votes for the winning outcome."""
    counts: dict[str, int]
    """Counted votes per outcome: `p<position>`, `tie`, `both_bad`."""
    signed_strength: float | None
    """Mean over counted votes of +weight (for the winner), -weight (against), 0 (tie/both-bad)."""
    margin_strength: float | None
    """Mean reward margin (slightly 0.5, clearly 1.0, much 2.0) over votes for the winner that gave one."""
    confidence: float | None = None
    """The fitted model's posterior of the outcome, when a `ModelLabel` decided it."""

    @property
    def agreement(self) -> float:
        """The fitted posterior when a model decided, else the winning outcome's share of counted votes."""
        if self.confidence is not None:
            return self.confidence
        return self.agreeing / self.votes if self.votes else 0.0

    @property
    def decided(self) -> bool:
        return self.outcome in ("preferred", TIE, BOTH_BAD)


STRENGTH_MARGINS = {"slightly": 0.5, "clearly": 1.0, "much": 2.0}


@dataclass(frozen=True, slots=True)
class ModelLabel:
    """An item's outcome fitted over the whole export (e.g. by Dawid-Skene), with its posterior.

    `outcome` is a vote key: `p<position>`, `tie` or `both_bad`.
    """

    outcome: str
    posterior: float


def _vote_of(payload: dict[str, Any]) -> str:
    position = payload.get("preferred_position")
    if isinstance(position, int) and not isinstance(position, bool):
        return f"p{position}"
    return BOTH_BAD if payload.get("choice") == BOTH_BAD else TIE


def pairwise_decision(
    payloads: Sequence[dict[str, Any]], rule: MajorityRule | None = None, label: ModelLabel | None = None
) -> PairwiseDecision:
    """Aggregate pairwise (or rubric overall-choice) votes by strict majority under a rule.

    The winning outcome needs more than half of the counted votes, at least
    `rule.min_judgments` counted votes and a share of at least `rule.min_agreement`.
    With a fitted `label`, the label's outcome wins instead, if its posterior reaches
    `rule.min_agreement` (the counted votes must still reach `rule.min_judgments`).

    Args:
        payloads: stored payloads with `choice` / `preferred_position` (and optional `strength`).
        rule: the majority rule; defaults count every vote and keep any majority.
        label: the item's outcome fitted over the whole export, replacing the majority.

    Returns:
        The decision; `winner` is set only when `outcome == "preferred"`.

    Example:
        >>> pairwise_decision([{"preferred_position": 1, "strength": "much"}, {"choice": "tie"}],
        ...                   MajorityRule(ties=Abstain.DROP)).winner
        1
    """
    rule = rule or MajorityRule()
    drop_ties, drop_both_bad = rule.ties is Abstain.DROP, rule.both_bad is Abstain.DROP
    counted: list[tuple[str, dict[str, Any]]] = []
    counts: dict[str, int] = {}
    for payload in payloads:
        vote = _vote_of(payload)
        if (drop_ties and vote == TIE) or (drop_both_bad and vote == BOTH_BAD):
            continue
        counted.append((vote, payload))
        counts[vote] = counts.get(vote, 0) + 1
    total = len(counted)
    ordered = dict(sorted(counts.items()))
    if total < max(rule.min_judgments, 1):
        return PairwiseDecision("too_few_judgments", None, total, 0, ordered, None, None)
    confidence = None if label is None else label.posterior
    if label is not None:
        best, agreeing = label.outcome, counts.get(label.outcome, 0)
        if label.posterior < rule.min_agreement:
            return PairwiseDecision("low_agreement", None, total, agreeing, ordered, None, None, confidence)
    else:
        best, agreeing = max(counts.items(), key=lambda entry: (entry[1], entry[0].startswith("p"), entry[0]))
        if agreeing * 2 <= total:
            return PairwiseDecision("no_majority", None, total, agreeing, ordered, None, None)
        if agreeing < rule.min_agreement * total:
            return PairwiseDecision("low_agreement", None, total, agreeing, ordered, None, None)
    if not best.startswith("p"):
        return PairwiseDecision(best, None, total, agreeing, ordered, None, None, confidence)
    signed: list[int] = []
    margins: list[float] = []
    any_strength = False
    for vote, payload in counted:
        strength = payload.get("strength")
        if strength is None:
            # The common case, without a strength: weight 1 and no margin.
            signed.append(1 if vote == best else -1 if vote.startswith("p") else 0)
            continue
        any_strength = any_strength or strength in STRENGTH_WEIGHTS
        weight = STRENGTH_WEIGHTS.get(strength, 1) if isinstance(strength, str) else 1
        if vote == best:
            signed.append(weight)
            if strength in STRENGTH_MARGINS:
                margins.append(STRENGTH_MARGINS[strength])
        elif vote.startswith("p"):
            signed.append(-weight)
        else:
            signed.append(0)
    return PairwiseDecision(
        "preferred",
        int(best[1:]),
        total,
        agreeing,
        ordered,
        sum(signed) / len(signed) if any_strength else None,
        sum(margins) / len(margins) if margins else None,
        confidence,
    )


@dataclass(frozen=True, slots=True)
class PairMajority:
    """How the rankings of an item order one pair of responses."""

    better: int
    worse: int
    wins: int
    """Rankings that put `better` strictly above `worse`."""
    votes: int
    """Rankings that placed both (ties included)."""

    @property
    def agreement(self) -> float:
        return self.wins / self.votes if self.votes else 0.0


@dataclass(frozen=True, slots=True)
class RankingConsensus:
    """An item's rankings combined: majority per pair and a Copeland consensus order."""

    order: list[int]
    """Response positions best first: Copeland score, then Borda score, then position."""
    copeland: dict[int, int]
    """Pairs won by majority minus pairs lost, per position."""
    borda: dict[int, float]
    """Mean over rankings of the number of responses ranked strictly below, per position."""
    pairs: list[PairMajority]
    """Every pair with a strict majority one way, by the consensus places of (better, worse)."""
    votes: int
    """Rankings counted (not all-bad, non-empty)."""
    all_bad_votes: int

    @property
    def all_bad(self) -> bool:
        """A strict majority of the judgments said every response was bad."""
        return self.all_bad_votes * 2 > self.votes + self.all_bad_votes

    def condorcet_winner(self) -> int | None:
        """The response that beats every other one by pairwise majority, if there is one."""
        if not self.order:
            return None
        top = self.order[0]
        beaten = {pair.worse for pair in self.pairs if pair.better == top}
        return top if len(beaten) == len(self.order) - 1 else None


def ranking_consensus(payloads: Sequence[dict[str, Any]], positions: Sequence[int]) -> RankingConsensus:
    """Combine rankings: each ranking votes on every pair; majority per pair; Copeland order.

    A ranking `[[2], [0, 1]]` says 2 beats 0 and 2 beats 1, and ties 0 with 1. A pair has a
    winner when more than half of the rankings that placed both put one strictly above the
    other (ties count as votes for neither). Copeland (pairs won minus pairs lost) orders
    the responses; the mean Borda score, then the position, break its ties.
    Judgments marked all-bad are counted apart and, when their ranking is empty, vote on nothing.

    Args:
        payloads: stored ranking payloads (`ranking` best first, `all_bad`).
        positions: the item's response positions.

    Returns:
        The consensus.

    Example:
        >>> ranking_consensus([{"ranking": [[1], [0], [2]]}, {"ranking": [[1], [2], [0]]}], [0, 1, 2]).order
        [1, 0, 2]
    """
    known = sorted(set(positions))
    wins: Counter[tuple[int, int]] = Counter()
    placed: Counter[tuple[int, int]] = Counter()
    borda_sum: Counter[int] = Counter()
    votes = all_bad = 0
    for payload in payloads:
        if payload.get("all_bad"):
            all_bad += 1
            continue
        groups = [[p for p in group if p in known] for group in payload.get("ranking") or []]
        rank_of = {position: index for index, group in enumerate(groups) for position in group}
        if not rank_of:
            continue
        votes += 1
        for position, rank in rank_of.items():
            borda_sum[position] += sum(1 for other in rank_of.values() if other > rank)
        for index, first in enumerate(known):
            for second in known[index + 1 :]:
                if first in rank_of and second in rank_of:
                    placed[(first, second)] += 1
                    if rank_of[first] < rank_of[second]:
                        wins[(first, second)] += 1
                    elif rank_of[second] < rank_of[first]:
                        wins[(second, first)] += 1
    pairs: list[PairMajority] = []
    copeland = dict.fromkeys(known, 0)
    for (first, second), count in sorted(placed.items()):
        for better, worse in ((first, second), (second, first)):
            if wins[(better, worse)] * 2 > count:
                pairs.append(PairMajority(better, worse, wins[(better, worse)], count))
                copeland[better] += 1
                copeland[worse] -= 1
    borda = {position: (borda_sum[position] / votes if votes else 0.0) for position in known}
    order = sorted(known, key=lambda position: (-copeland[position], -borda[position], position))
    place = {position: index for index, position in enumerate(order)}
    pairs.sort(key=lambda pair: (place[pair.better], place[pair.worse]))
    return RankingConsensus(order, copeland, borda, pairs, votes, all_bad)


@dataclass(frozen=True, slots=True)
class CriterionAggregate:
    """One criterion over one response's judgments."""

    kind: str
    """`likert` (mean), `binary` (share of True) or `categorical` (majority label)."""
    value: float | str
    count: int


@dataclass(frozen=True, slots=True)
class ResponseScores:
    """A response's rubric scores over every judgment of its item."""

    position: int
    criteria: dict[str, CriterionAggregate]
    overall: float | None
    """Mean of the Likert criteria means, each normalised to 0..1 by its scale; None without one."""
    judgments: int


def rubric_scores(
    payloads: Sequence[dict[str, Any]], positions: Sequence[int], scales: Mapping[str, tuple[int, int]]
) -> dict[int, ResponseScores]:
    """Aggregate rubric scores per response and criterion.

    Likert (integer) criteria take the mean, binary (bool) criteria the share of True,
    categorical (label) criteria the most frequent label (ties: the label first in
    alphabetical order). `overall` is the mean over Likert criteria with a known scale of
    `(mean - min) / (max - min)`, so it lies in 0..1.

    Args:
        payloads: stored rubric payloads (`scores: {"<position>": {criterion: value}}`).
        positions: the item's response positions.
        scales: `(min, max)` of each Likert criterion, from the project's rubric.

    Returns:
        Scores per response position (responses nobody scored have no criteria).

    Example:
        >>> rubric_scores([{"scores": {"0": {"helpful": 5}}}], [0], {"helpful": (1, 5)})[0].overall
        1.0
    """
    found: dict[int, ResponseScores] = {}
    for position in positions:
        values: dict[str, list[Any]] = {}
        judged = 0
        for payload in payloads:
            given = (payload.get("scores") or {}).get(str(position))
            if given is None:
                continue
            judged += 1
            for name, value in given.items():
                values.setdefault(name, []).append(value)
        criteria = {name: _criterion(seen) for name, seen in sorted(values.items())}
        normalised = [
            (float(aggregate.value) - scales[name][0]) / (scales[name][1] - scales[name][0])
            for name, aggregate in criteria.items()
            if aggregate.kind == "likert" and name in scales and scales[name][1] > scales[name][0]
        ]
        overall = sum(normalised) / len(normalised) if normalised else None
        found[position] = ResponseScores(position, criteria, overall, judged)
    return found


def _criterion(values: list[Any]) -> CriterionAggregate:
    if all(isinstance(value, bool) for value in values):
        return CriterionAggregate("binary", sum(values) / len(values), len(values))
    if all(isinstance(value, int | float) and not isinstance(value, bool) for value in values):
        return CriterionAggregate("likert", sum(values) / len(values), len(values))
    counts = Counter(str(value) for value in values)
    label = min(counts, key=lambda name: (-counts[name], name))
    return CriterionAggregate("categorical", label, len(values))


def flagged_positions(
    payloads: Sequence[dict[str, Any]], violating: Collection[str], *, min_share: float = 0.5
) -> set[int]:
    """Responses that more than `min_share` of the judgments labelled with a violating label.

    A label value `gambling:severe` matches the name `gambling` or the full value.

    Args:
        payloads: stored pairwise payloads (`labels: {"<position>": [values]}`).
        violating: label names (or full values) that violate policy.
        min_share: a response is flagged when strictly more than this share of judgments flag it.

    Returns:
        The flagged positions.

    Example:
        >>> flagged_positions([{"labels": {"1": ["gambling:severe"]}}], {"gambling"})
        {1}
    """
    if not payloads or not violating:
        return set()
    flags: Counter[int] = Counter()
    for payload in payloads:
        for position, values in (payload.get("labels") or {}).items():
            if any(value in violating or value.split(":", 1)[0] in violating for value in values):
                flags[int(position)] += 1
    return {position for position, count in flags.items() if count > min_share * len(payloads)}
