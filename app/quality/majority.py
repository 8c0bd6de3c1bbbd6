"""Majority vote over long-format labels (one row per judgment).

Ties are broken toward the lowest class code, deterministically; `is_tie` marks those items
so a caller can abstain or send them to arbitration instead. Complexity O(judgments + items x
classes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.quality.ratings import FloatArray, IntArray


@dataclass(frozen=True)
class MajorityVote:
    """Per item: winning class (-1 for an item without votes), its vote share, tie flag and vote counts."""

    labels: IntArray
    shares: FloatArray
    is_tie: npt.NDArray[np.bool_]
    counts: FloatArray


def vote_counts(items: npt.ArrayLike, labels: npt.ArrayLike, *, n_items: int, n_classes: int) -> FloatArray:
    """Items x classes table of how many judgments chose each class."""
    item_index, label_index = long_format_codes(items, labels, n_items=n_items, n_classes=n_classes)
    flat = np.bincount(item_index * n_classes + label_index, minlength=n_items * n_classes)
    return flat.reshape(n_items, n_classes).astype(np.float64)


def majority_vote(items: npt.ArrayLike, labels: npt.ArrayLike, *, n_items: int, n_classes: int) -> MajorityVote:
    """The most chosen class per item (item and class codes are 0-based integers)."""
    counts = vote_counts(items, labels, n_items=n_items, n_classes=n_classes)
    # Classes x items: the reductions over a handful of classes then run along contiguous rows.
    by_class = np.ascontiguousarray(counts.T)
    totals = by_class.sum(axis=0)
    winners = by_class.argmax(axis=0)
    top = by_class.max(axis=0)
    voted = totals > 0
    shares = np.zeros(n_items)
    np.divide(top, totals, out=shares, where=voted)
    is_tie = voted & ((by_class == top).sum(axis=0) > 1)
    return MajorityVote(np.where(voted, winners, -1).astype(np.intp), shares, is_tie, counts)


def long_format_codes(
    items: npt.ArrayLike, labels: npt.ArrayLike, *, n_items: int, n_classes: int
) -> tuple[IntArray, IntArray]:
    """Validate long-format item and label codes; raises ValueError when out of range or empty."""
    item_index = np.asarray(items, dtype=np.intp)
    label_index = np.asarray(labels, dtype=np.intp)
    if item_index.shape != label_index.shape or item_index.ndim != 1:
        raise ValueError("items and labels must be 1-D arrays of the same length")
    if item_index.size == 0:
        raise ValueError("no judgments given")
    if item_index.min() < 0 or item_index.max() >= n_items:
        raise ValueError("item codes must be in [0, n_items)")
    if label_index.min() < 0 or label_index.max() >= n_classes:
        raise ValueError("label codes must be in [0, n_classes)")
    return item_index, label_index
