import numpy as np
import pytest
from scipy.stats import friedmanchisquare

from app.quality.kinds import PairwiseOutcome, encode_pairwise, kendalls_w, ranking_order_units
from app.quality.krippendorff import krippendorff_alpha

nan = np.nan


def test_pairwise_outcomes_are_coded_in_a_fixed_order() -> None:
    codes = encode_pairwise(["first", "second", "tie", "both_bad", None])

    assert codes[:4].tolist() == [PairwiseOutcome.FIRST, PairwiseOutcome.SECOND, PairwiseOutcome.TIE, 3]
    assert np.isnan(codes[4])
    with pytest.raises(ValueError, match="not one of"):
        encode_pairwise(["left"])


def test_ranking_order_units_encode_each_response_pair() -> None:
    ranks = np.array([[[1, 2, 3], [2, 1, 2]], [[3, 1, 2], [nan, nan, nan]]])

    units = ranking_order_units(ranks)

    # Pairs (0, 1), (0, 2), (1, 2) per item; codes 0 = first above, 1 = below, 2 = tied.
    assert units.shape == (6, 2)
    assert units[:3].tolist() == [[0, 1], [0, 2], [0, 0]]
    assert units[3:, 0].tolist() == [1, 1, 0]
    assert np.isnan(units[3:, 1]).all()


def test_identical_rankings_have_full_agreement_on_order_units() -> None:
    ranking = np.array([[1, 2, 3, 4], [2, 1, 4, 3], [4, 3, 2, 1]], dtype=float)
    ranks = np.stack([ranking, ranking, ranking], axis=1)

    assert krippendorff_alpha(ranking_order_units(ranks)) == 1.0


def test_kendalls_w_is_one_for_identical_and_zero_for_opposite_rankings() -> None:
    assert kendalls_w([[1, 2, 3, 4]] * 3) == pytest.approx(1.0)
    assert kendalls_w([[1, 2, 3], [3, 2, 1]]) == pytest.approx(0.0)


@pytest.mark.parametrize("seed", range(4))
def test_kendalls_w_with_ties_matches_friedmans_statistic(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(1, 5, size=(5, 6)).astype(float)
    m, n = scores.shape

    # W = chi2_Friedman / (m (n - 1)); scipy's Friedman test applies the same tie correction.
    expected = friedmanchisquare(*scores.T).statistic / (m * (n - 1))

    assert kendalls_w(scores) == pytest.approx(expected)


def test_kendalls_w_refuses_incomplete_rankings() -> None:
    incomplete: list[list[float]] = [[1, 2, nan], [1, 2, 3]]
    with pytest.raises(ValueError, match="complete"):
        kendalls_w(incomplete)
