"""The grouped bootstrap (identical items drawn as one multinomial) against the item-by-item bootstrap."""

import numpy as np
import pytest

from app.quality.additive import count_patterns, counts_to_ratings
from app.quality.agreement import percent_agreement_terms
from app.quality.bootstrap import bootstrap_ci, bootstrap_ci_weighted
from app.quality.krippendorff import alpha_terms, krippendorff_alpha
from app.quality.ratings import Level


def _counts(seed: int, n_items: int = 4000, n_classes: int = 4, per_item: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    labels = np.where(
        rng.random((n_items, per_item)) < 0.6, truth[:, None], rng.integers(0, n_classes, (n_items, per_item))
    )
    counts = np.zeros((n_items, n_classes), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(n_items), per_item), labels.reshape(-1)), 1)
    return counts


def test_count_patterns_keep_every_item_once() -> None:
    counts = _counts(1)
    patterns, multiplicity = count_patterns(counts)

    assert multiplicity.sum() == counts.shape[0]
    assert len({tuple(row) for row in counts.tolist()}) == patterns.shape[0]
    assert counts_to_ratings(patterns)[:, :5].shape == (patterns.shape[0], 5)
    assert (np.sort(counts_to_ratings(np.array([[2, 0, 1]])), axis=1)[0] == [0, 0, 2]).all()


@pytest.mark.parametrize("level", [Level.NOMINAL, Level.ORDINAL])
def test_grouped_estimate_is_the_statistic_of_all_items_and_the_interval_matches(level: Level) -> None:
    counts = _counts(2)
    patterns, multiplicity = count_patterns(counts)
    every_item = counts_to_ratings(counts)

    grouped = bootstrap_ci_weighted(alpha_terms(counts_to_ratings(patterns), level), multiplicity, n_resamples=2000)
    itemwise = bootstrap_ci(alpha_terms(every_item, level), n_resamples=2000)

    assert grouped.estimate == pytest.approx(krippendorff_alpha(every_item, level), abs=1e-12)
    # Same sampling distribution, other draws: the limits agree to Monte Carlo error.
    assert grouped.low == pytest.approx(itemwise.low, abs=0.004)
    assert grouped.high == pytest.approx(itemwise.high, abs=0.004)
    assert grouped.n_defined == 2000


def test_grouped_percent_agreement_and_reproducibility() -> None:
    counts = _counts(3)
    patterns, multiplicity = count_patterns(counts)
    terms = percent_agreement_terms(counts_to_ratings(patterns))

    first = bootstrap_ci_weighted(terms, multiplicity, n_resamples=500, seed=4)
    again = bootstrap_ci_weighted(terms, multiplicity, n_resamples=500, seed=4)

    assert first == again
    assert first.estimate == pytest.approx(percent_agreement_terms(counts_to_ratings(counts)).value(), abs=1e-12)
    assert first.low < first.estimate < first.high


def test_bad_multiplicities_are_refused() -> None:
    terms = percent_agreement_terms(np.array([[0.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="multiplicity"):
        bootstrap_ci_weighted(terms, [1])
    with pytest.raises(ValueError, match="multiplicity"):
        bootstrap_ci_weighted(terms, [0, 0])
