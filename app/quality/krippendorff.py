"""Krippendorff's alpha at nominal, ordinal, interval and ratio levels, with missing data.

Follows Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": items with fewer
than two ratings are not pairable and are dropped; each remaining item u with m_u ratings adds
1/(m_u - 1) to the coincidence matrix o[c, k] for every ordered pair of its ratings (c, k).
With n_c = sum_k o[c, k] and n = sum_c n_c,

    alpha = 1 - (n - 1) * sum_ck o[c, k] delta[c, k] / sum_ck n_c n_k delta[c, k]

where delta is the level's squared distance (nominal: 0/1; ordinal: from the ranks' marginal
counts; interval: (c - k)^2; ratio: ((c - k) / (c + k))^2).

Defined behaviour: no item with two ratings -> ValueError; ratings without any variation
(expected disagreement 0, e.g. everyone always answers the same) -> NaN, as alpha is 0/0
there. Complexity: O(N * s) for N items and s = largest number of ratings on an item, plus
O(k^2) for k distinct values (a 100k x 3 nominal matrix takes a few tens of milliseconds);
continuous values should be rounded to a scale first (more than 5,000 distinct values is
refused).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import sparse

from app.quality.additive import ItemTerms, pack_slots
from app.quality.ratings import FloatArray, Level, as_rating_matrix, category_codes

MAX_DISTINCT_VALUES = 5_000


def krippendorff_alpha(ratings: npt.ArrayLike, level: Level | str = Level.NOMINAL) -> float:
    """Krippendorff's alpha of an items x raters matrix (NaN = missing) at `level`."""
    return alpha_terms(ratings, level).value()


def coincidence_matrix(ratings: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """The distinct values and Krippendorff's coincidence matrix o[c, k] over them."""
    values, terms = _coincidence_terms(as_rating_matrix(ratings))
    k = values.size
    return values, np.asarray(terms.sum(axis=0), dtype=np.float64).reshape(k, k)


def alpha_terms(ratings: npt.ArrayLike, level: Level | str = Level.NOMINAL) -> ItemTerms:
    """Alpha as per-item coincidence terms (for bootstrapping); raises when nothing is pairable."""
    level = Level(level)
    values, terms = _coincidence_terms(as_rating_matrix(ratings))
    if terms.nnz == 0:
        raise ValueError("Krippendorff's alpha needs at least one item with two or more ratings")
    if level is Level.RATIO and (values < 0).any():
        raise ValueError("ratio-level alpha needs non-negative values")

    def combine(totals: FloatArray) -> FloatArray:
        return _alpha_from_coincidences(totals.reshape(-1, values.size, values.size), values, level)

    return ItemTerms(terms, combine)


def _coincidence_terms(matrix: FloatArray) -> tuple[FloatArray, sparse.csr_array]:
    values, codes = category_codes(matrix)
    if values.size > MAX_DISTINCT_VALUES:
        raise ValueError(
            f"{values.size} distinct values: alpha builds a values x values matrix; round to a scale first"
        )
    k = max(values.size, 1)
    slots = pack_slots(codes)
    pairable = (slots >= 0).sum(axis=1)
    weight = np.zeros(slots.shape[0])
    np.divide(1.0, pairable - 1, out=weight, where=pairable >= 2)
    rows, columns, data = [], [], []
    width = slots.shape[1]
    for first in range(width):
        for second in range(width):
            if first == second:
                continue
            both = (slots[:, first] >= 0) & (slots[:, second] >= 0)
            items = np.flatnonzero(both)
            rows.append(items)
            columns.append(slots[items, first] * k + slots[items, second])
            data.append(weight[items])
    if not rows:
        return values, sparse.csr_array((matrix.shape[0], k * k))
    terms = sparse.coo_array(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(columns))), shape=(matrix.shape[0], k * k)
    ).tocsr()
    terms.sum_duplicates()
    return values, terms


def _alpha_from_coincidences(coincidences: FloatArray, values: FloatArray, level: Level) -> FloatArray:
    """Alpha for each coincidence matrix in a (batch x k x k) array; NaN where undefined."""
    marginals = coincidences.sum(axis=2)
    total = marginals.sum(axis=1)
    delta = _squared_distances(values, marginals, level)
    observed = (coincidences * delta).sum(axis=(1, 2))
    expected = (marginals[:, :, None] * marginals[:, None, :] * delta).sum(axis=(1, 2))
    defined = (total > 1) & (expected > 0)
    alpha = np.full(coincidences.shape[0], np.nan)
    alpha[defined] = 1.0 - (total[defined] - 1.0) * observed[defined] / expected[defined]
    return alpha


def _squared_distances(values: FloatArray, marginals: FloatArray, level: Level) -> FloatArray:
    """delta[c, k] for the level, shaped to broadcast against (batch x k x k)."""
    if level is Level.NOMINAL:
        return 1.0 - np.eye(values.size)
    if level is Level.INTERVAL:
        return np.subtract.outer(values, values) ** 2
    if level is Level.RATIO:
        sums = np.add.outer(values, values)
        ratio = np.zeros_like(sums)
        np.divide(np.subtract.outer(values, values), sums, out=ratio, where=sums != 0)
        return ratio**2
    # Ordinal: the distance between ranks c <= k is the count of values from c to k, minus half
    # of the two end counts (Krippendorff 2011, p. 6); it depends on the sample's marginals.
    cumulative = np.cumsum(marginals, axis=1)
    low = np.minimum.outer(np.arange(values.size), np.arange(values.size))
    high = np.maximum.outer(np.arange(values.size), np.arange(values.size))
    between = cumulative[:, high] - cumulative[:, low] + marginals[:, low]
    return (between - (marginals[:, low] + marginals[:, high]) / 2.0) ** 2
