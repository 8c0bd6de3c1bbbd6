import numpy as np
import numpy.typing as npt
import pytest

from app.quality.agreement import cohen_kappa_terms, fleiss_kappa, fleiss_kappa_terms, percent_agreement_terms
from app.quality.bootstrap import bootstrap_ci
from app.quality.krippendorff import alpha_terms, krippendorff_alpha
from app.quality.ratings import Level


def _simulate(
    rng: np.random.Generator, n_items: int, n_raters: int, n_classes: int, accuracy: float
) -> npt.NDArray[np.float64]:
    """Raters give the true class with probability `accuracy`, else a uniform class."""
    truth = rng.integers(0, n_classes, size=n_items)
    noise = rng.integers(0, n_classes, size=(n_items, n_raters))
    return np.where(rng.random((n_items, n_raters)) < accuracy, truth[:, None], noise).astype(float)


def test_fleiss_kappa_interval_covers_the_true_value_at_about_the_nominal_rate() -> None:
    n_classes, accuracy = 3, 0.6
    # Each rating is the true class with probability a; two ratings agree with probability
    # a^2 + (1 - a)^2 / (K - 1), and chance agreement is 1/K (uniform classes).
    hit = accuracy + (1 - accuracy) / n_classes
    agreement = hit**2 + (1 - hit) ** 2 / (n_classes - 1)
    true_kappa = (agreement - 1 / n_classes) / (1 - 1 / n_classes)
    rng = np.random.default_rng(2024)

    covered = 0
    for simulation in range(200):
        matrix = _simulate(rng, 150, 3, n_classes, accuracy)
        interval = bootstrap_ci(fleiss_kappa_terms(matrix), n_resamples=500, seed=simulation)
        covered += interval.low <= true_kappa <= interval.high

    assert 0.9 <= covered / 200 <= 0.99


def test_intervals_are_reproducible_for_a_seed() -> None:
    matrix = _simulate(np.random.default_rng(1), 200, 4, 4, 0.5)

    first = bootstrap_ci(alpha_terms(matrix, Level.ORDINAL), seed=7)
    again = bootstrap_ci(alpha_terms(matrix, Level.ORDINAL), seed=7)
    other = bootstrap_ci(alpha_terms(matrix, Level.ORDINAL), seed=8)

    assert first == again
    assert (first.low, first.high) != (other.low, other.high)
    assert first.low < first.estimate < first.high
    assert first.estimate == pytest.approx(krippendorff_alpha(matrix, Level.ORDINAL))


@pytest.mark.parametrize("level", list(Level))
def test_vectorized_resampling_matches_recomputing_the_statistic_per_resample(level: Level) -> None:
    matrix = _simulate(np.random.default_rng(3), 60, 3, 5, 0.5) + 1
    matrix[np.random.default_rng(4).random(matrix.shape) < 0.2] = np.nan

    vectorized = bootstrap_ci(alpha_terms(matrix, level), n_resamples=300, seed=11)
    looped = bootstrap_ci(lambda sample: krippendorff_alpha(sample, level), matrix, n_resamples=300, seed=11)

    assert vectorized.estimate == pytest.approx(looped.estimate)
    assert vectorized.low == pytest.approx(looped.low)
    assert vectorized.high == pytest.approx(looped.high)


def test_fleiss_and_percent_agreement_and_cohen_terms_bootstrap_like_their_functions() -> None:
    matrix = _simulate(np.random.default_rng(5), 80, 3, 3, 0.7)

    vectorized = bootstrap_ci(fleiss_kappa_terms(matrix), n_resamples=200, seed=2)
    looped = bootstrap_ci(fleiss_kappa, matrix, n_resamples=200, seed=2)
    agreement = bootstrap_ci(percent_agreement_terms(matrix), n_resamples=200, seed=2)
    kappa = bootstrap_ci(cohen_kappa_terms(matrix[:, 0], matrix[:, 1], weights="linear"), n_resamples=200)

    assert (vectorized.low, vectorized.high) == pytest.approx((looped.low, looped.high))
    assert 0 < agreement.low < agreement.estimate < agreement.high < 1
    assert kappa.low < kappa.estimate < kappa.high


def test_an_interval_is_nan_when_most_resamples_are_undefined() -> None:
    matrix = np.arange(20.0).reshape(10, 2)

    def defined_only_when_the_first_item_leads(sample: npt.NDArray[np.float64]) -> float:
        return float(sample.sum()) if sample[0, 0] == 0 else float("nan")

    interval = bootstrap_ci(defined_only_when_the_first_item_leads, matrix, n_resamples=100)

    assert 0 < interval.n_defined < 50
    assert np.isnan(interval.low)
    assert np.isnan(interval.high)


def test_bad_arguments_are_refused() -> None:
    terms = fleiss_kappa_terms(np.array([[0.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci(terms, n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(terms, confidence=1.5)
    with pytest.raises(ValueError, match="needs the ratings"):
        bootstrap_ci(fleiss_kappa)
