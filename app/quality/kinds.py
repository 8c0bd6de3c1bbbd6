"""Encoding the four kinds of annotation data as rating matrices, and Kendall's W for rankings.

- Pairwise outcomes: `PairwiseOutcome` codes (first / second response preferred, tie, both
  bad), nominal level. The codes refer to the responses' canonical positions, not to the side
  they were shown on (sides are shuffled per assignment; see `signals.position_bias`).
- Signed preference strength (e.g. -3..3, negative = first response better): the number
  itself, at ordinal level (or interval when the scale's steps are meant to be equal).
- Rubric scores: one rating matrix per criterion, ordinal level.
- Rankings: each item's ranking of m responses becomes m(m-1)/2 pairwise-order units
  (`ranking_order_units`): for responses a < b, code 0 = a ranked above b, 1 = b above a,
  2 = tied. Alpha (nominal) or Fleiss' kappa on those units measures agreement on the
  relative order, works with missing rankings and partial overlap, and shares its scale with
  pairwise tasks. `kendalls_w` gives the classic per-item concordance of complete rankings.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from app.quality.ratings import FloatArray, code_labels


class PairwiseOutcome(IntEnum):
    """Nominal codes of a pairwise judgment, by canonical response position."""

    FIRST = 0
    SECOND = 1
    TIE = 2
    BOTH_BAD = 3


PAIRWISE_LABELS = ("first", "second", "tie", "both_bad")


def encode_pairwise(outcomes: Sequence[str | None]) -> FloatArray:
    """Codes of pairwise outcomes named `first`, `second`, `tie` or `both_bad` (None = missing)."""
    return code_labels(outcomes, PAIRWISE_LABELS)


def ranking_order_units(ranks: npt.ArrayLike) -> FloatArray:
    """Pairwise-order units from an items x raters x responses array of ranks (1 = best, NaN = not ranked).

    Returns an (items * pairs) x raters matrix: row i * pairs + p holds each rater's order of
    response pair p = (a, b), a < b, in `itertools.combinations` order: 0 if a ranked above b,
    1 if below, 2 if tied, NaN if the rater ranked no such item.
    """
    array = np.asarray(ranks, dtype=np.float64)
    if array.ndim != 3 or array.size == 0:
        raise ValueError("ranks must be a non-empty items x raters x responses array")
    n_items, n_raters, n_responses = array.shape
    if n_responses < 2:
        raise ValueError("a ranking needs at least two responses")
    first, second = np.triu_indices(n_responses, k=1)
    higher, lower = array[:, :, first], array[:, :, second]
    units = np.full(higher.shape, np.nan)
    units[higher < lower] = 0.0
    units[higher > lower] = 1.0
    units[higher == lower] = 2.0
    return units.transpose(0, 2, 1).reshape(n_items * first.size, n_raters)


def kendalls_w(ranks: npt.ArrayLike) -> float:
    """Kendall's coefficient of concordance W of a raters x objects array of complete rankings.

    Scores are converted to mid-ranks, and tied ranks use the correction of Kendall & Babington
    Smith (1939): W = 12 S / (m^2 (n^3 - n) - m sum T), T = sum over tie groups (t^3 - t).
    NaN when every rater ties every object (no variation).
    """
    scores = np.asarray(ranks, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] < 2 or scores.shape[1] < 2:
        raise ValueError("Kendall's W needs a raters x objects array with at least two of each")
    if np.isnan(scores).any():
        raise ValueError("Kendall's W needs complete rankings; use ranking_order_units for missing ones")
    n_raters, n_objects = scores.shape
    mid_ranks = rankdata(scores, axis=1)
    rank_sums = mid_ranks.sum(axis=0)
    spread = float(((rank_sums - rank_sums.mean()) ** 2).sum())
    ties = 0.0
    for row in scores:
        _, sizes = np.unique(row, return_counts=True)
        ties += float((sizes**3 - sizes).sum())
    denominator = n_raters**2 * (n_objects**3 - n_objects) - n_raters * ties
    if denominator <= 0:
        return float("nan")
    return float(12.0 * spread / denominator)
