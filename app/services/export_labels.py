"""Item labels fitted over a whole export before its rows are built (Dawid-Skene)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

import numpy as np

from app.quality.dawid_skene import dawid_skene
from export.aggregate import BOTH_BAD, TIE, Abstain, ModelLabel

DAWID_SKENE_MAX_ITERATIONS = 100
DAWID_SKENE_TOLERANCE = 1e-6
"""Relative log-likelihood gain to stop at: labels settle long before posteriors reach the fixed point."""


class Aggregation(StrEnum):
    """How several annotators' pairwise votes on an item become its label."""

    MAJORITY = "majority"
    """A strict majority of the counted votes (`export.aggregate.pairwise_decision`)."""
    DAWID_SKENE = "dawid-skene"
    """The Dawid-Skene posterior: votes weighted by each annotator's fitted confusion matrix."""


def dawid_skene_labels(
    votes: Iterable[tuple[int, int, str]], *, ties: Abstain, both_bad: Abstain
) -> dict[int, ModelLabel]:
    """Fit Dawid-Skene to pairwise votes and return each item's most probable outcome.

    Tie and both-bad votes that the rule drops are left out of the fit, as the majority rule
    leaves them out of its count.

    Args:
        votes: `(item_id, annotator_id, verdict)` with verdicts `p<position>`, `tie` or `both_bad`.
        ties, both_bad: whether those votes count (`keep`) or abstain (`drop`).

    Returns:
        `item_id -> ModelLabel(outcome, posterior)` for every item with a counted vote.

    Example:
        >>> dawid_skene_labels([(1, 7, "p0"), (1, 8, "p0"), (1, 9, "p1")], ties=Abstain.KEEP,
        ...                    both_bad=Abstain.KEEP)[1].outcome
        'p0'
    """
    dropped = {TIE} if ties is Abstain.DROP else set()
    if both_bad is Abstain.DROP:
        dropped.add(BOTH_BAD)
    counted = [(item, annotator, verdict) for item, annotator, verdict in votes if verdict not in dropped]
    if not counted:
        return {}
    item_ids, item_codes = np.unique(np.fromiter((vote[0] for vote in counted), dtype=np.int64), return_inverse=True)
    _, annotator_codes = np.unique(np.fromiter((vote[1] for vote in counted), dtype=np.int64), return_inverse=True)
    classes = sorted({vote[2] for vote in counted})
    class_of = {name: code for code, name in enumerate(classes)}
    label_codes = np.fromiter((class_of[vote[2]] for vote in counted), dtype=np.intp, count=len(counted))
    fitted = dawid_skene(
        item_codes,
        annotator_codes,
        label_codes,
        n_items=len(item_ids),
        n_annotators=int(annotator_codes.max()) + 1,
        n_classes=len(classes),
        max_iterations=DAWID_SKENE_MAX_ITERATIONS,
        tolerance=DAWID_SKENE_TOLERANCE,
    )
    posterior_of_label = fitted.posteriors[np.arange(len(item_ids)), fitted.labels]
    return {
        int(item_id): ModelLabel(classes[int(label)], round(float(posterior), 6))
        for item_id, label, posterior in zip(item_ids, fitted.labels, posterior_of_label, strict=True)
    }
