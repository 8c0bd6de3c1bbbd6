from collections.abc import Sequence
from itertools import permutations

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

from app.quality.agreement import (
    KappaWeights,
    cohen_kappa,
    fleiss_kappa,
    fleiss_kappa_from_counts,
    pairwise_cohen_kappa,
    percent_agreement,
)

nan = np.nan

# Fleiss (1971): 30 patients, 6 psychiatrists each, 5 diagnoses (depression, personality
# disorder, schizophrenia, neurosis, other), as the diagnoses data of R's irr package.
FLEISS_1971 = np.array(
    [
        [4, 4, 4, 4, 4, 4],
        [2, 2, 2, 5, 5, 5],
        [2, 3, 3, 3, 3, 5],
        [5, 5, 5, 5, 5, 5],
        [2, 2, 2, 4, 4, 4],
        [1, 1, 3, 3, 3, 3],
        [3, 3, 3, 3, 5, 5],
        [1, 1, 3, 3, 3, 4],
        [1, 1, 4, 4, 4, 4],
        [5, 5, 5, 5, 5, 5],
        [1, 4, 4, 4, 4, 4],
        [1, 2, 4, 4, 4, 4],
        [2, 2, 2, 3, 3, 3],
        [1, 4, 4, 4, 4, 4],
        [2, 2, 4, 4, 4, 5],
        [3, 3, 3, 3, 3, 5],
        [1, 1, 1, 4, 5, 5],
        [1, 1, 1, 1, 1, 2],
        [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 5, 5, 5],
        [5, 5, 5, 5, 5, 5],
        [2, 4, 4, 4, 4, 4],
        [2, 2, 4, 5, 5, 5],
        [1, 1, 4, 4, 4, 4],
        [1, 4, 4, 4, 4, 5],
        [2, 2, 2, 2, 2, 4],
        [1, 1, 1, 1, 5, 5],
        [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 3, 3, 3],
        [5, 5, 5, 5, 5, 5],
    ],
    dtype=float,
)

# Wikipedia's "Fleiss' kappa" worked example: 10 subjects x 5 categories, 14 raters each.
WIKIPEDIA_COUNTS = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def _pairs_from_table(table: Sequence[Sequence[int]]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Two raters' codes reproducing a rater-1 x rater-2 confusion table."""
    first: list[int] = []
    second: list[int] = []
    for row, counts in enumerate(table):
        for column, count in enumerate(counts):
            first += [row] * count
            second += [column] * count
    return np.array(first, float), np.array(second, float)


def test_fleiss_kappa_reproduces_fleiss_1971() -> None:
    assert round(fleiss_kappa(FLEISS_1971), 3) == 0.430
    assert fleiss_kappa(FLEISS_1971) == pytest.approx(0.4302445, abs=1e-7)


def test_fleiss_kappa_from_counts_reproduces_the_wikipedia_example() -> None:
    assert round(fleiss_kappa_from_counts(WIKIPEDIA_COUNTS), 3) == 0.210


@pytest.mark.parametrize("seed", range(5))
def test_fleiss_kappa_agrees_with_statsmodels_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, size=80)
    ratings = np.where(rng.random((80, 5)) < 0.5, truth[:, None], rng.integers(0, 4, (80, 5)))

    expected = statsmodels_fleiss_kappa(aggregate_raters(ratings)[0])

    assert fleiss_kappa(ratings.astype(float)) == pytest.approx(expected, abs=1e-12)


def test_fleiss_kappa_with_missing_ratings_follows_the_documented_formula() -> None:
    rng = np.random.default_rng(3)
    matrix = rng.integers(0, 3, size=(40, 4)).astype(float)
    matrix[rng.random(matrix.shape) < 0.3] = nan
    rows = [row[~np.isnan(row)] for row in matrix]
    rows = [row for row in rows if row.size >= 2]
    per_item = [
        sum(count * (count - 1) for count in np.unique(row, return_counts=True)[1]) / (row.size * (row.size - 1))
        for row in rows
    ]
    pooled = np.concatenate(rows)
    chance = sum((np.sum(pooled == category) / pooled.size) ** 2 for category in range(3))

    expected = (np.mean(per_item) - chance) / (1 - chance)

    assert fleiss_kappa(matrix) == pytest.approx(expected, abs=1e-12)


def test_percent_agreement_is_the_mean_share_of_agreeing_pairs() -> None:
    matrix = np.array([[1, 1, 1], [1, 1, 2], [1, 2, nan], [3, nan, nan]])

    # Items: 6/6, 2/6, 0/2 agreeing ordered pairs; the single-rating item is dropped.
    assert percent_agreement(matrix) == pytest.approx((1 + 1 / 3 + 0) / 3)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", range(4))
def test_cohen_kappa_agrees_with_scikit_learn(weights: str | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 5, size=70)
    second = np.clip(first + rng.integers(-2, 3, size=70), 0, 4)

    expected = cohen_kappa_score(first, second, weights=weights)

    assert cohen_kappa(first, second, weights=weights or "unweighted") == pytest.approx(expected, abs=1e-12)


def test_cohen_kappa_reproduces_the_sas_example() -> None:
    # SAS PROC FREQ example as tested by statsmodels: simple kappa 0.4842, weighted 0.4701.
    first, second = _pairs_from_table([[0, 4, 1], [0, 8, 0], [0, 1, 5]])

    assert round(cohen_kappa(first, second), 4) == 0.4842
    assert round(cohen_kappa(first, second, weights=KappaWeights.LINEAR), 4) == 0.4701


def test_cohen_kappa_uses_only_items_both_rated() -> None:
    first = np.array([0, 1, 2, 0, nan, 1])
    second = np.array([0, 1, 2, 1, 2, nan])

    assert cohen_kappa(first, second) == pytest.approx(cohen_kappa_score([0, 1, 2, 0], [0, 1, 2, 1]))


def test_given_categories_fix_the_weighting_scale() -> None:
    first, second = np.array([0.0, 2.0, 2.0]), np.array([0.0, 2.0, 0.0])

    observed_scale = cohen_kappa(first, second, weights="linear")
    full_scale = cohen_kappa(first, second, weights="linear", categories=[0, 1, 2])

    assert observed_scale == pytest.approx(cohen_kappa_score([0, 1, 1], [0, 1, 0], weights="linear"))
    assert full_scale == pytest.approx(cohen_kappa_score(first, second, weights="linear", labels=[0, 1, 2]))


def test_pairwise_kappa_lists_every_pair_and_their_mean() -> None:
    rng = np.random.default_rng(5)
    matrix = rng.integers(0, 3, size=(30, 3)).astype(float)

    result = pairwise_cohen_kappa(matrix, raters=["ann", "bo", "cy"], weights="quadratic")

    assert result.pairs == (("ann", "bo"), ("ann", "cy"), ("bo", "cy"))
    expected = [cohen_kappa_score(matrix[:, a], matrix[:, b], weights="quadratic") for a, b in [(0, 1), (0, 2), (1, 2)]]
    assert result.kappas == pytest.approx(expected)
    assert result.mean == pytest.approx(np.mean(expected))
    assert result.shared_items == (30, 30, 30)


def test_pairwise_kappa_skips_pairs_with_too_few_shared_items() -> None:
    matrix = np.array([[0, 0, nan], [1, 1, nan], [nan, 0, 1], [1, 0, 0]], dtype=float)

    result = pairwise_cohen_kappa(matrix, min_shared_items=2)

    assert result.pairs == ((0, 1), (1, 2))


def test_all_raters_agreeing_gives_kappa_one() -> None:
    matrix = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2], [1, 1, 1]], dtype=float)

    assert fleiss_kappa(matrix) == 1.0
    assert percent_agreement(matrix) == 1.0
    assert cohen_kappa(matrix[:, 0], matrix[:, 1], weights="quadratic") == 1.0
    assert pairwise_cohen_kappa(matrix).mean == 1.0


def test_a_single_category_throughout_gives_nan_without_a_warning() -> None:
    matrix = np.ones((4, 3))

    assert np.isnan(fleiss_kappa(matrix))
    assert np.isnan(cohen_kappa(matrix[:, 0], matrix[:, 1]))
    assert np.isnan(pairwise_cohen_kappa(matrix).mean)
    assert percent_agreement(matrix) == 1.0


def test_a_single_rater_is_refused() -> None:
    with pytest.raises(ValueError, match="two or more ratings"):
        fleiss_kappa(np.array([[0.0], [1.0]]))
    with pytest.raises(ValueError, match="two raters"):
        pairwise_cohen_kappa(np.array([[0.0], [1.0]]))


def test_empty_input_is_refused() -> None:
    for measure in (fleiss_kappa, percent_agreement):
        with pytest.raises(ValueError, match="empty"):
            measure(np.empty((0, 2)))
    with pytest.raises(ValueError, match="rated by both"):
        cohen_kappa([nan, 1.0], [1.0, nan])


def test_kappa_does_not_depend_on_rater_order() -> None:
    rng = np.random.default_rng(9)
    matrix = rng.integers(0, 4, size=(25, 3)).astype(float)
    matrix[rng.random(matrix.shape) < 0.2] = nan

    values = {round(fleiss_kappa(matrix[:, list(order)]), 12) for order in permutations(range(3))}

    assert len(values) == 1


def test_a_rating_outside_the_given_categories_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of the given categories"):
        cohen_kappa([0.0, 3.0], [0.0, 1.0], categories=[0, 1, 2])
