"""Percent agreement, Fleiss' kappa and Cohen's kappa (per pair, unweighted and weighted).

All take an items x raters matrix (NaN = missing) of category codes (see `ratings`).

Percent agreement and Fleiss' kappa use the items with at least two ratings. Each such item
i with n_i ratings, n_ic of them in category c, has observed agreement
P_i = sum_c n_ic (n_ic - 1) / (n_i (n_i - 1)), the share of agreeing ordered rating pairs.
Percent agreement is the mean of P_i. Fleiss' kappa (Fleiss 1971) is
(P_bar - P_e) / (1 - P_e) with p_c = sum_i n_ic / sum_i n_i and P_e = sum_c p_c^2; with the
same number of ratings on every item this is exactly Fleiss' formula, and with missing
ratings it is its usual generalisation (each item weighs the same in P_bar, each rating the
same in p_c).

Cohen's kappa (Cohen 1960; weighted: Cohen 1968) compares two raters on the items both
rated: kappa = 1 - sum w o / sum w e over the confusion matrix o and its expectation e from
the margins, with weights w = 0/1 (unweighted), |i - j| (linear) or (i - j)^2 (quadratic) on
category positions. Categories are the values either rater used, sorted, unless given.

Defined behaviour: no item with two ratings (or no item rated by both raters) raises
ValueError; kappa is NaN when chance agreement is total (one category used throughout),
as it is 0/0 there. Complexity: O(N * s^2) for N items and s ratings per item; Cohen's kappa
for all pairs of R raters is O(R^2 * N).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import combinations

import numpy as np
import numpy.typing as npt
from scipy import sparse

from app.quality.additive import ItemTerms, pack_slots
from app.quality.ratings import FloatArray, as_rating_matrix, category_codes


class KappaWeights(StrEnum):
    """Disagreement weights for Cohen's kappa over ordered categories."""

    UNWEIGHTED = "unweighted"
    LINEAR = "linear"
    QUADRATIC = "quadratic"


@dataclass(frozen=True)
class PairwiseKappa:
    """Cohen's kappa for each pair of raters with enough shared items, and their mean (Light's kappa)."""

    pairs: tuple[tuple[Hashable, Hashable], ...]
    kappas: tuple[float, ...]
    shared_items: tuple[int, ...]
    mean: float


def percent_agreement(ratings: npt.ArrayLike) -> float:
    """Mean share of agreeing rating pairs per item (items with two or more ratings)."""
    return percent_agreement_terms(ratings).value()


def fleiss_kappa(ratings: npt.ArrayLike) -> float:
    """Fleiss' kappa of an items x raters code matrix, with missing ratings (see module doc)."""
    return fleiss_kappa_terms(ratings).value()


def fleiss_kappa_from_counts(counts: npt.ArrayLike) -> float:
    """Fleiss' kappa from an items x categories table of how many raters chose each category."""
    table = np.asarray(counts, dtype=np.float64)
    if table.ndim != 2 or table.size == 0:
        raise ValueError("counts must be a non-empty items x categories table")
    if (table < 0).any() or not np.array_equal(table, np.round(table)):
        raise ValueError("counts must be non-negative whole numbers")
    return _fleiss_terms_from_counts(table).value()


def percent_agreement_terms(ratings: npt.ArrayLike) -> ItemTerms:
    """Percent agreement as per-item terms (for bootstrapping)."""
    counts = _category_counts(as_rating_matrix(ratings))
    item_agreement, pairable = _item_agreement(counts)

    def combine(totals: FloatArray) -> FloatArray:
        return _ratio(totals[:, 0], totals[:, 1])

    return ItemTerms(np.column_stack((item_agreement, pairable)), combine)


def fleiss_kappa_terms(ratings: npt.ArrayLike) -> ItemTerms:
    """Fleiss' kappa as per-item terms (for bootstrapping)."""
    return _fleiss_terms_from_counts(_category_counts(as_rating_matrix(ratings)))


def cohen_kappa(
    first: npt.ArrayLike,
    second: npt.ArrayLike,
    *,
    weights: KappaWeights | str = KappaWeights.UNWEIGHTED,
    categories: Sequence[float] | None = None,
) -> float:
    """Cohen's kappa between two raters' codes (NaN = not rated), on the items both rated."""
    return cohen_kappa_terms(first, second, weights=weights, categories=categories).value()


def cohen_kappa_terms(
    first: npt.ArrayLike,
    second: npt.ArrayLike,
    *,
    weights: KappaWeights | str = KappaWeights.UNWEIGHTED,
    categories: Sequence[float] | None = None,
) -> ItemTerms:
    """Cohen's kappa as per-item confusion terms (for bootstrapping)."""
    pair = as_rating_matrix(
        np.column_stack((np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)))
    )
    shared = ~np.isnan(pair).any(axis=1)
    if not shared.any():
        raise ValueError("Cohen's kappa needs at least one item rated by both raters")
    scale = _scale(pair[shared], categories)
    k = scale.size
    positions = np.full(pair.shape, -1, dtype=np.intp)
    positions[shared] = np.searchsorted(scale, pair[shared])
    items = np.flatnonzero(shared)
    terms = sparse.csr_array(
        (np.ones(items.size), (items, positions[items, 0] * k + positions[items, 1])), shape=(pair.shape[0], k * k)
    )
    disagreement = _disagreement_weights(k, KappaWeights(weights)).reshape(-1)

    def combine(totals: FloatArray) -> FloatArray:
        return _kappa_from_confusions(totals.reshape(-1, k, k), disagreement)

    return ItemTerms(terms, combine)


def pairwise_cohen_kappa(
    ratings: npt.ArrayLike,
    *,
    raters: Sequence[Hashable] | None = None,
    weights: KappaWeights | str = KappaWeights.UNWEIGHTED,
    min_shared_items: int = 2,
) -> PairwiseKappa:
    """Cohen's kappa for every rater pair sharing at least `min_shared_items` items, and the mean.

    Categories are the values anyone used, so weighted kappas share one scale. Pairs whose
    kappa is undefined (NaN) are listed but left out of the mean; the mean is NaN when no
    pair has a defined kappa.
    """
    matrix = as_rating_matrix(ratings)
    names = tuple(range(matrix.shape[1])) if raters is None else tuple(raters)
    if len(names) != matrix.shape[1]:
        raise ValueError("one rater name per column is needed")
    if matrix.shape[1] < 2:
        raise ValueError("pairwise kappa needs at least two raters")
    scale = _scale(matrix, None)
    present = ~np.isnan(matrix)
    shared_counts = present.T.astype(np.int64) @ present.astype(np.int64)
    pairs, kappas, shared = [], [], []
    for left, right in combinations(range(matrix.shape[1]), 2):
        if shared_counts[left, right] < min_shared_items:
            continue
        pairs.append((names[left], names[right]))
        kappas.append(cohen_kappa(matrix[:, left], matrix[:, right], weights=weights, categories=list(scale)))
        shared.append(int(shared_counts[left, right]))
    defined = [kappa for kappa in kappas if not np.isnan(kappa)]
    mean = float(np.mean(defined)) if defined else float("nan")
    return PairwiseKappa(tuple(pairs), tuple(kappas), tuple(shared), mean)


def _category_counts(matrix: FloatArray) -> FloatArray:
    """Items x categories counts of ratings."""
    values, codes = category_codes(matrix)
    slots = pack_slots(codes)
    k = max(values.size, 1)
    rows = np.repeat(np.arange(slots.shape[0]), slots.shape[1])
    flat = slots.reshape(-1)
    present = flat >= 0
    counts = np.bincount(rows[present] * k + flat[present], minlength=slots.shape[0] * k)
    return counts.reshape(slots.shape[0], k).astype(np.float64)


def _item_agreement(counts: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per item: observed agreement P_i (0 when unpairable) and 1 if pairable else 0."""
    ratings_per_item = counts.sum(axis=1)
    pairable = ratings_per_item >= 2
    if not pairable.any():
        raise ValueError("agreement needs at least one item with two or more ratings")
    agreeing = (counts * (counts - 1)).sum(axis=1)
    item_agreement = np.zeros(counts.shape[0])
    np.divide(agreeing, ratings_per_item * (ratings_per_item - 1), out=item_agreement, where=pairable)
    return item_agreement, pairable.astype(np.float64)


def _fleiss_terms_from_counts(counts: FloatArray) -> ItemTerms:
    item_agreement, pairable = _item_agreement(counts)
    used = counts * pairable[:, None]
    terms = np.column_stack((item_agreement, pairable, used))

    def combine(totals: FloatArray) -> FloatArray:
        observed = _ratio(totals[:, 0], totals[:, 1])
        category_totals = totals[:, 2:]
        shares = category_totals / np.maximum(category_totals.sum(axis=1, keepdims=True), 1.0)
        chance = (shares**2).sum(axis=1)
        return _ratio(observed - chance, 1.0 - chance)

    return ItemTerms(terms, combine)


def _scale(matrix: FloatArray, categories: Sequence[float] | None) -> FloatArray:
    values, _ = category_codes(matrix)
    if categories is None:
        return values
    scale = np.asarray(categories, dtype=np.float64)
    if np.unique(scale).size != scale.size or not np.all(np.diff(scale) > 0):
        raise ValueError("categories must be distinct and in increasing order")
    if not np.isin(values, scale).all():
        raise ValueError("a rating is not one of the given categories")
    return scale


def _disagreement_weights(k: int, weights: KappaWeights) -> FloatArray:
    distance = np.abs(np.subtract.outer(np.arange(k), np.arange(k))).astype(np.float64)
    if weights is KappaWeights.UNWEIGHTED:
        return (distance > 0).astype(np.float64)
    if weights is KappaWeights.LINEAR:
        return distance
    return distance**2


def _kappa_from_confusions(confusions: FloatArray, disagreement: FloatArray) -> FloatArray:
    total = confusions.sum(axis=(1, 2))
    safe_total = np.maximum(total, 1.0)[:, None, None]
    observed = confusions / safe_total
    expected = confusions.sum(axis=2)[:, :, None] * confusions.sum(axis=1)[:, None, :] / safe_total**2
    size = confusions.shape[0]
    observed_disagreement = observed.reshape(size, -1) @ disagreement
    expected_disagreement = expected.reshape(size, -1) @ disagreement
    kappa = np.full(size, np.nan)
    defined = (total > 0) & (expected_disagreement > 0)
    kappa[defined] = 1.0 - observed_disagreement[defined] / expected_disagreement[defined]
    return kappa


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """numerator / denominator, NaN where the denominator is 0 (without a warning)."""
    result = np.full(np.shape(numerator), np.nan)
    np.divide(numerator, denominator, out=result, where=denominator != 0)
    return result
