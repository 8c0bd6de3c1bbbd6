"""The input shape shared by the agreement measures: an items x raters matrix.

A rating matrix is a 2-D float array, one row per item and one column per rater (or per
rating slot, see `slot_matrix`), holding numeric values or category codes, with NaN where a
rater did not rate the item. Categorical labels are coded by `code_labels` into their index
in an ordered category list, so ordinal distances follow that order.

Alpha, Fleiss' kappa and percent agreement ignore who rated: for them a compact "slot"
matrix (each item's ratings packed to the left, as many columns as the largest overlap) is
enough and keeps the matrix narrow when there are many raters who each rate few items.
Cohen's kappa per pair needs rater identity: use `rating_matrix`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


class Level(StrEnum):
    """Krippendorff's levels of measurement, which fix the distance between two values."""

    NOMINAL = "nominal"
    ORDINAL = "ordinal"
    INTERVAL = "interval"
    RATIO = "ratio"


@dataclass(frozen=True)
class RatingMatrix:
    """Ratings as items x columns (raters or slots) with NaN for missing, and the row/column ids."""

    values: FloatArray
    item_ids: tuple[Hashable, ...]
    column_ids: tuple[Hashable, ...]


def as_rating_matrix(values: npt.ArrayLike) -> FloatArray:
    """Validate and return `values` as a 2-D float matrix (items x raters, NaN = missing).

    Raises ValueError for anything but a non-empty 2-D numeric array.
    """
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"a rating matrix is 2-D (items x raters), got {matrix.ndim} dimension(s)")
    if matrix.size == 0:
        raise ValueError("the rating matrix is empty")
    if np.isinf(matrix).any():
        raise ValueError("ratings must be finite numbers or NaN for missing")
    return matrix


def from_codes(codes: npt.ArrayLike, *, missing: int = -1) -> FloatArray:
    """Turn an integer code matrix with `missing` (default -1) for no rating into a rating matrix."""
    integer_codes = np.asarray(codes)
    if not np.issubdtype(integer_codes.dtype, np.integer):
        raise ValueError("from_codes expects integer category codes")
    matrix = integer_codes.astype(np.float64)
    matrix[integer_codes == missing] = np.nan
    return as_rating_matrix(matrix)


def code_labels(labels: Sequence[Hashable | None], categories: Sequence[Hashable]) -> FloatArray:
    """Code labels as their index in `categories` (float; None becomes NaN).

    The order of `categories` is the order used by ordinal measures and weighted kappa.
    Raises ValueError for a label that is not a category.
    """
    index = {category: position for position, category in enumerate(categories)}
    if len(index) != len(categories):
        raise ValueError("categories must be distinct")
    codes = np.full(len(labels), np.nan)
    for position, label in enumerate(labels):
        if label is None:
            continue
        if label not in index:
            raise ValueError(f"label {label!r} is not one of the categories {list(categories)!r}")
        codes[position] = index[label]
    return codes


def _factorize(ids: Sequence[Hashable]) -> tuple[tuple[Hashable, ...], IntArray]:
    """Distinct ids in first-seen order and each position's index into them."""
    seen: dict[Hashable, int] = {}
    positions = np.fromiter((seen.setdefault(value, len(seen)) for value in ids), dtype=np.intp, count=len(ids))
    return tuple(seen), positions


def rating_matrix(items: Sequence[Hashable], raters: Sequence[Hashable], values: npt.ArrayLike) -> RatingMatrix:
    """Build an items x raters matrix from (item, rater, value) triples given as three sequences.

    Ids keep their first-seen order. Raises ValueError when a rater rated an item twice (repeated
    items for self-consistency belong in `signals.self_consistency`, not in agreement).
    """
    numeric = np.asarray(values, dtype=np.float64)
    if not len(items) == len(raters) == len(numeric):
        raise ValueError("items, raters and values must have the same length")
    if len(numeric) == 0:
        raise ValueError("no ratings given")
    item_ids, item_index = _factorize(items)
    rater_ids, rater_index = _factorize(raters)
    cell = item_index * len(rater_ids) + rater_index
    if np.unique(cell).size != cell.size:
        raise ValueError("a rater rated the same item more than once")
    matrix = np.full((len(item_ids), len(rater_ids)), np.nan)
    matrix[item_index, rater_index] = numeric
    return RatingMatrix(as_rating_matrix(matrix), item_ids, rater_ids)


def slot_matrix(items: Sequence[Hashable], values: npt.ArrayLike) -> RatingMatrix:
    """Pack each item's ratings to the left: items x (largest number of ratings on an item).

    For the rater-blind measures (alpha, Fleiss' kappa, percent agreement); column ids are slot
    numbers 0, 1, ...
    """
    numeric = np.asarray(values, dtype=np.float64)
    if len(items) != len(numeric):
        raise ValueError("items and values must have the same length")
    if len(numeric) == 0:
        raise ValueError("no ratings given")
    item_ids, item_index = _factorize(items)
    order = np.argsort(item_index, kind="stable")
    sorted_items = item_index[order]
    counts = np.bincount(sorted_items, minlength=len(item_ids))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    slots = np.arange(len(sorted_items)) - starts[sorted_items]
    matrix = np.full((len(item_ids), int(counts.max())), np.nan)
    matrix[sorted_items, slots] = numeric[order]
    return RatingMatrix(as_rating_matrix(matrix), item_ids, tuple(range(matrix.shape[1])))


def category_codes(matrix: FloatArray) -> tuple[FloatArray, IntArray]:
    """The distinct observed values (sorted) and each rating's index into them (-1 where missing)."""
    present = ~np.isnan(matrix)
    values = np.unique(matrix[present])
    codes = np.full(matrix.shape, -1, dtype=np.intp)
    codes[present] = np.searchsorted(values, matrix[present])
    return values, codes
