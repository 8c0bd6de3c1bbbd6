"""Dawid-Skene labels for exports: annotators weighted by their fitted accuracy, on simulated votes."""

from __future__ import annotations

import random
from collections import Counter

from app.services.export_labels import dawid_skene_labels
from export.aggregate import Abstain

ITEMS = 300


def _simulated_votes(seed: int) -> tuple[list[tuple[int, int, str]], dict[int, str]]:
    """Two careful annotators (95% right) and three who answer at random, on every item."""
    rng = random.Random(seed)
    truth = {item: rng.choice(("p0", "p1")) for item in range(ITEMS)}
    votes: list[tuple[int, int, str]] = []
    for item, answer in truth.items():
        for annotator in (1, 2):
            wrong = "p1" if answer == "p0" else "p0"
            votes.append((item, annotator, answer if rng.random() < 0.95 else wrong))
        votes.extend((item, annotator, rng.choice(("p0", "p1"))) for annotator in (3, 4, 5))
    return votes, truth


def _majority(votes: list[tuple[int, int, str]]) -> dict[int, str]:
    counts: dict[int, Counter[str]] = {}
    for item, _, verdict in votes:
        counts.setdefault(item, Counter())[verdict] += 1
    return {item: tally.most_common(1)[0][0] for item, tally in counts.items()}


def test_dawid_skene_outweighs_random_annotators_that_fool_the_majority() -> None:
    votes, truth = _simulated_votes(seed=7)
    labels = dawid_skene_labels(votes, ties=Abstain.KEEP, both_bad=Abstain.KEEP)
    majority = _majority(votes)
    fitted_right = sum(labels[item].outcome == answer for item, answer in truth.items()) / ITEMS
    majority_right = sum(majority[item] == answer for item, answer in truth.items()) / ITEMS
    assert fitted_right >= 0.92  # the careful pair disagree on ~10% of items: there it is a coin flip
    assert fitted_right > majority_right + 0.05
    assert all(0.5 <= label.posterior <= 1.0 for label in labels.values())


def test_dropped_ties_are_left_out_of_the_fit() -> None:
    votes = [(1, 1, "tie"), (1, 2, "tie"), (1, 3, "p0"), (2, 1, "p1"), (2, 2, "p1"), (2, 3, "p1")]
    kept = dawid_skene_labels(votes, ties=Abstain.KEEP, both_bad=Abstain.KEEP)
    assert kept[1].outcome == "tie"
    dropped = dawid_skene_labels(votes, ties=Abstain.DROP, both_bad=Abstain.KEEP)
    assert dropped[1].outcome == "p0" and dropped[2].outcome == "p1"
    assert dawid_skene_labels([(1, 1, "tie")], ties=Abstain.DROP, both_bad=Abstain.KEEP) == {}


def test_the_fit_does_not_depend_on_the_order_of_the_votes() -> None:
    votes, _ = _simulated_votes(seed=3)
    shuffled = list(votes)
    random.Random(0).shuffle(shuffled)
    kwargs = {"ties": Abstain.KEEP, "both_bad": Abstain.KEEP}
    assert dawid_skene_labels(votes, **kwargs) == dawid_skene_labels(shuffled, **kwargs)
