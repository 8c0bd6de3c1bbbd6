import krippendorff as reference
import numpy as np
import pytest

from app.quality.krippendorff import coincidence_matrix, krippendorff_alpha
from app.quality.ratings import Level

nan = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers x 12 units.
OBSERVERS = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
)
WORKED_EXAMPLE = OBSERVERS.T


@pytest.mark.parametrize(
    ("level", "published"),
    [(Level.NOMINAL, 0.743), (Level.ORDINAL, 0.815), (Level.INTERVAL, 0.849), (Level.RATIO, 0.797)],
)
def test_alpha_reproduces_krippendorff_2011_worked_example(level: Level, published: float) -> None:
    assert round(krippendorff_alpha(WORKED_EXAMPLE, level), 3) == published


def test_coincidence_matrix_matches_the_worked_example() -> None:
    values, coincidences = coincidence_matrix(WORKED_EXAMPLE)
    assert values.tolist() == [1, 2, 3, 4, 5]
    # Counted by hand from the table: unit 12 has one value and drops out, so n = 40.
    assert coincidences.sum(axis=1) == pytest.approx([9, 13, 10, 5, 3])
    assert coincidences[0, 0] == pytest.approx(7)
    assert coincidences[0, 1] == pytest.approx(4 / 3)
    assert coincidences[2, 2] == pytest.approx(8)


@pytest.mark.parametrize("level", list(Level))
@pytest.mark.parametrize("seed", range(5))
def test_alpha_agrees_with_the_krippendorff_package_on_random_data_with_missing_values(level: Level, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_items, n_raters = int(rng.integers(5, 60)), int(rng.integers(2, 7))
    truth = rng.integers(1, 6, size=n_items)
    ratings = np.where(rng.random((n_items, n_raters)) < 0.6, truth[:, None], rng.integers(1, 6, (n_items, n_raters)))
    matrix = ratings.astype(float)
    matrix[rng.random(matrix.shape) < 0.3] = nan

    expected = reference.alpha(reliability_data=matrix.T, level_of_measurement=level.value)

    assert krippendorff_alpha(matrix, level) == pytest.approx(expected, abs=1e-10)


def test_items_with_a_single_rating_are_dropped() -> None:
    with_lonely_item = np.vstack([WORKED_EXAMPLE, [7, nan, nan, nan]])

    assert krippendorff_alpha(with_lonely_item) == pytest.approx(krippendorff_alpha(WORKED_EXAMPLE))


def test_perfect_agreement_gives_one() -> None:
    matrix = np.array([[1, 1, 1], [2, 2, nan], [3, 3, 3], [1, 1, nan]])

    for level in Level:
        assert krippendorff_alpha(matrix, level) == 1.0


def test_no_variation_at_all_gives_nan_without_a_warning() -> None:
    assert np.isnan(krippendorff_alpha(np.full((5, 3), 2.0)))


def test_a_single_rater_is_refused() -> None:
    with pytest.raises(ValueError, match="two or more ratings"):
        krippendorff_alpha(np.array([[1.0], [2.0], [3.0]]))


def test_empty_input_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        krippendorff_alpha(np.empty((0, 3)))


def test_negative_values_are_refused_at_ratio_level() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        krippendorff_alpha(np.array([[-1.0, 1.0], [2.0, 2.0]]), Level.RATIO)


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="bogus"):
        krippendorff_alpha(WORKED_EXAMPLE, "bogus")
