"""Statistics written as per-item additive terms, so bootstrapping items stays vectorized.

Each agreement measure here is a function of a few sums over items (coincidences, category
counts, per-item agreement). `ItemTerms` keeps one row of those terms per item and the
function that turns summed rows into the statistic. The point estimate combines the column
sums; a bootstrap resample of items combines a weighted sum (weights = how often each item
was drawn), which is one sparse or dense matrix product for a whole batch of resamples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from app.quality.ratings import FloatArray, IntArray

Terms = FloatArray | sparse.csr_array


@dataclass(frozen=True)
class ItemTerms:
    """One row of additive terms per item and how summed rows become the statistic.

    `combine` maps a (resamples x terms) array of summed rows to one value per resample,
    NaN where the statistic is undefined for that sample.
    """

    terms: Terms
    combine: Callable[[FloatArray], FloatArray]

    @property
    def n_items(self) -> int:
        return int(self.terms.shape[0])

    def value(self) -> float:
        """The statistic over all items."""
        totals = np.asarray(self.terms.sum(axis=0), dtype=np.float64).reshape(1, -1)
        return float(self.combine(totals)[0])

    def weighted_totals(self, weights: FloatArray) -> FloatArray:
        """Summed rows for each row of `weights` (resamples x items)."""
        if isinstance(self.terms, sparse.csr_array):
            return np.asarray((self.terms.T @ weights.T).T, dtype=np.float64)
        return weights @ self.terms


def pack_slots(codes: IntArray) -> IntArray:
    """Move each row's present codes (>= 0) to the left; -1 fills the rest.

    The result has as many columns as the most ratings on one item, so pair loops over
    columns cost (largest overlap)^2 rather than (number of raters)^2.
    """
    present = codes >= 0
    per_row = present.sum(axis=1)
    width = max(int(per_row.max(initial=0)), 1)
    rows, columns = np.nonzero(present)
    starts = np.concatenate(([0], np.cumsum(per_row)[:-1]))
    slots = np.arange(rows.size) - starts[rows]
    packed = np.full((codes.shape[0], width), -1, dtype=np.intp)
    packed[rows, slots] = codes[rows, columns]
    return packed


def count_patterns(counts: IntArray) -> tuple[IntArray, IntArray]:
    """The distinct rows of an items x categories count table and how many items share each.

    Statistics written as per-item terms of the counts (alpha, percent agreement, Fleiss'
    kappa) take the same terms for items with the same counts: a large table of a few
    categories and a handful of ratings per item has only a few dozen distinct rows.
    """
    table = np.asarray(counts, dtype=np.int64)
    if table.ndim != 2:
        raise ValueError("counts must be an items x categories table")
    if table.shape[0] == 0:
        return table.copy(), np.zeros(0, dtype=np.int64)
    base = int(table.max()) + 1
    if table.shape[1] * np.log2(max(base, 2)) < 62:
        keys = table @ (base ** np.arange(table.shape[1], dtype=np.int64))
        _, first, multiplicity = np.unique(keys, return_index=True, return_counts=True)
        return table[first], multiplicity.astype(np.int64)
    patterns, multiplicity = np.unique(table, axis=0, return_counts=True)
    return patterns, multiplicity.astype(np.int64)


def rating_patterns(
    units: IntArray, values: IntArray, *, n_units: int, n_categories: int, min_ratings: int = 2
) -> tuple[IntArray, IntArray]:
    """`count_patterns` of the units x categories count table of long-format ratings, keeping units with
    at least `min_ratings` ratings, without building the table.

    Each unit's counts become one integer (count of category c as digit c in base "most ratings on a
    unit + 1"); in any base above the largest count, integer order is `count_patterns`' order, so
    the patterns come out the same and in the same order.
    """
    unit_codes = np.asarray(units, dtype=np.intp)
    value_codes = np.asarray(values, dtype=np.intp)
    per_unit = np.bincount(unit_codes, minlength=n_units)
    base = int(per_unit.max(initial=0)) + 1
    if unit_codes.size == 0 or n_categories * np.log2(max(base, 2)) >= 52:
        table = np.bincount(unit_codes * n_categories + value_codes, minlength=n_units * n_categories)
        table = table.reshape(-1, n_categories)
        return count_patterns(table[table.sum(axis=1) >= min_ratings])
    place = base ** np.arange(n_categories, dtype=np.int64)
    # Sums of distinct powers below 2**52: exact in the float64 weights of bincount.
    keys = np.bincount(unit_codes, weights=place[value_codes].astype(np.float64), minlength=n_units)
    kept = keys[per_unit >= min_ratings].astype(np.int64)
    if base**n_categories <= 4 * kept.size + 1024:
        multiplicity = np.bincount(kept, minlength=base**n_categories)
        distinct = np.flatnonzero(multiplicity)
        multiplicity = multiplicity[distinct]
    else:
        distinct, multiplicity = np.unique(kept, return_counts=True)
    patterns = distinct[:, None] // place[None, :] % base
    return patterns.astype(np.int64), multiplicity.astype(np.int64)


def counts_to_ratings(patterns: IntArray) -> FloatArray:
    """An items x (most ratings) matrix holding, per row, category c `patterns[row, c]` times (NaN after)."""
    table = np.asarray(patterns, dtype=np.int64)
    per_row = table.sum(axis=1)
    width = max(int(per_row.max(initial=0)), 1)
    matrix = np.full((table.shape[0], width), np.nan)
    rows = np.repeat(np.arange(table.shape[0]), per_row)
    values = np.repeat(np.tile(np.arange(table.shape[1]), table.shape[0]), table.reshape(-1))
    starts = np.concatenate(([0], np.cumsum(per_row)[:-1]))
    matrix[rows, np.arange(rows.size) - starts[rows]] = values
    return matrix
