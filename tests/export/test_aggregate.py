"""Aggregation across annotators: majority rules, ranking consensus, rubric means, policy flags."""

from __future__ import annotations

from typing import Any

from export.aggregate import (
    Abstain,
    MajorityRule,
    ModelLabel,
    flagged_positions,
    pairwise_decision,
    ranking_consensus,
    rubric_scores,
)
from tests.export.records import vote


def test_tie_votes_count_against_the_winner_unless_dropped() -> None:
    votes = [vote("1"), vote("tie"), vote("tie"), vote("1")]
    assert pairwise_decision(votes).outcome == "no_majority"
    dropped = pairwise_decision(votes, MajorityRule(ties=Abstain.DROP))
    assert (dropped.outcome, dropped.winner, dropped.votes, dropped.agreeing) == ("preferred", 1, 2, 2)


def test_both_bad_can_win_when_kept_and_abstains_when_dropped() -> None:
    votes = [vote("both_bad"), vote("both_bad"), vote("0")]
    assert pairwise_decision(votes).outcome == "both_bad"
    assert pairwise_decision(votes, MajorityRule(both_bad=Abstain.DROP)).winner == 0


def test_min_judgments_and_min_agreement_refuse_weak_items() -> None:
    votes = [vote("0"), vote("0"), vote("1")]
    assert pairwise_decision(votes, MajorityRule(min_judgments=4)).outcome == "too_few_judgments"
    assert pairwise_decision(votes, MajorityRule(min_agreement=0.7)).outcome == "low_agreement"
    decision = pairwise_decision(votes, MajorityRule(min_agreement=0.6))
    assert decision.winner == 0
    assert decision.agreement == 2 / 3
    assert decision.counts == {"p0": 2, "p1": 1}


def test_signed_strength_and_margin_of_the_winner() -> None:
    votes = [vote("1", "much"), vote("1", "slightly"), vote("0", "clearly"), vote("tie")]
    decision = pairwise_decision(votes, MajorityRule(ties=Abstain.DROP))
    assert decision.winner == 1
    assert decision.signed_strength == (3 + 1 - 2) / 3
    assert decision.margin_strength == (2.0 + 0.5) / 2
    plain = pairwise_decision([vote("1"), vote("1")])
    assert (plain.signed_strength, plain.margin_strength) == (None, None)


def test_ranking_consensus_is_copeland_with_pair_majorities() -> None:
    consensus = ranking_consensus(
        [{"ranking": [[1], [0], [2]]}, {"ranking": [[1], [2], [0]]}, {"ranking": [[0], [1, 2]]}], [0, 1, 2]
    )
    assert consensus.order == [1, 0, 2]
    assert consensus.copeland == {0: 0, 1: 2, 2: -2}
    assert [(p.better, p.worse, p.wins, p.votes) for p in consensus.pairs] == [(1, 0, 2, 3), (1, 2, 2, 3), (0, 2, 2, 3)]
    assert consensus.condorcet_winner() == 1


def test_ranking_without_pair_majority_has_no_condorcet_winner() -> None:
    cycle = ranking_consensus(
        [{"ranking": [[0], [1], [2]]}, {"ranking": [[1], [2], [0]]}, {"ranking": [[2], [0], [1]]}], [0, 1, 2]
    )
    assert cycle.copeland == {0: 0, 1: 0, 2: 0}
    assert cycle.order == [0, 1, 2]
    assert cycle.condorcet_winner() is None


def test_all_bad_majority_is_counted_apart() -> None:
    consensus = ranking_consensus(
        [{"ranking": [], "all_bad": True}, {"ranking": [[0], [1], [2]], "all_bad": True}, {"ranking": [[0], [1], [2]]}],
        [0, 1, 2],
    )
    assert (consensus.votes, consensus.all_bad_votes, consensus.all_bad) == (1, 2, True)


def test_rubric_scores_mean_share_and_majority_label_with_normalised_overall() -> None:
    payloads: list[dict[str, Any]] = [
        {"scores": {"0": {"helpful": 5, "safe": True, "tone": "warm"}, "1": {"helpful": 1}}},
        {"scores": {"0": {"helpful": 4, "safe": False, "tone": "cold"}, "1": {"helpful": 2}}},
        {"scores": {"0": {"helpful": 3, "safe": True, "tone": "warm"}}},
    ]
    scores = rubric_scores(payloads, [0, 1], {"helpful": (1, 5)})
    first = scores[0].criteria
    assert (first["helpful"].kind, first["helpful"].value) == ("likert", 4.0)
    assert (first["safe"].kind, first["safe"].value) == ("binary", 2 / 3)
    assert (first["tone"].kind, first["tone"].value) == ("categorical", "warm")
    assert scores[0].overall == 0.75
    assert (scores[1].overall, scores[1].judgments) == (0.125, 2)


def test_policy_flag_needs_more_than_half_of_judgments() -> None:
    one = {"labels": {"1": ["gambling:severe"]}}
    none: dict[str, object] = {"labels": {}}
    assert flagged_positions([one, one, none], {"gambling"}) == {1}
    assert flagged_positions([one, none], {"gambling"}) == set()
    assert flagged_positions([one], {"gambling:minor"}) == set()
    assert flagged_positions([one], {"gambling:severe"}) == {1}


def test_a_fitted_label_decides_where_the_majority_cannot() -> None:
    split = [{"preferred_position": 0, "strength": "much"}, {"preferred_position": 1, "strength": "slightly"}]
    assert pairwise_decision(split).outcome == "no_majority"
    fitted = pairwise_decision(split, label=ModelLabel("p0", 0.93))
    assert (fitted.outcome, fitted.winner, fitted.agreement, fitted.agreeing) == ("preferred", 0, 0.93, 1)
    assert fitted.margin_strength == 2.0
    assert pairwise_decision(split, MajorityRule(min_agreement=0.95), ModelLabel("p0", 0.93)).outcome == (
        "low_agreement"
    )
    assert pairwise_decision(split, MajorityRule(min_judgments=3), ModelLabel("p0", 0.99)).outcome == (
        "too_few_judgments"
    )
    assert pairwise_decision(split, label=ModelLabel("tie", 0.6)).outcome == "tie"
