import numpy as np
import numpy.typing as npt
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from app.quality.kinds import PairwiseOutcome
from app.quality.signals import (
    ShownChoice,
    agreement_with_aggregate,
    choice_rate,
    gold_accuracy,
    holm_adjusted,
    position_bias,
    seconds_per_thousand_characters,
    self_consistency,
    straight_lining,
    too_fast_share,
    unswap_pairwise,
    wilson_interval,
)

nan = np.nan


def _choices(rng: np.random.Generator, n: int, left_probability: float) -> npt.NDArray[np.int64]:
    return np.where(rng.random(n) < left_probability, ShownChoice.LEFT, ShownChoice.RIGHT)


def test_position_bias_flags_a_left_leaning_rater_and_not_an_unbiased_one() -> None:
    rng = np.random.default_rng(12)
    choices = np.concatenate([_choices(rng, 200, 0.5), _choices(rng, 200, 0.7)])
    annotators = np.repeat([0, 1], 200)

    bias = position_bias(annotators, choices, n_annotators=2)

    assert bias.p_value[0] > 0.05
    assert bias.p_value[1] < 0.001
    assert bias.left_share[1] == pytest.approx(bias.left[1] / 200)


def test_position_bias_excludes_ties_and_both_bad() -> None:
    choices = [ShownChoice.LEFT] * 6 + [ShownChoice.RIGHT] * 2 + [ShownChoice.TIE] * 5 + [ShownChoice.BOTH_BAD] * 3

    bias = position_bias(np.zeros(len(choices), int), choices, n_annotators=2)

    assert bias.decided.tolist() == [8, 0]
    assert bias.left_share[0] == pytest.approx(0.75)
    # Exact two-sided binomial test of 6 of 8: 2 * P(X >= 6) = 2 * 37 / 256.
    assert bias.p_value[0] == pytest.approx(74 / 256)
    assert np.isnan(bias.p_value[1])
    assert np.isnan(bias.left_share[1])


def test_gold_accuracy_and_agreement_with_the_aggregate_count_per_annotator() -> None:
    annotators = np.array([0, 0, 0, 1, 1])

    gold = gold_accuracy(annotators, [True, False, True, True, True], n_annotators=3)
    agreement = agreement_with_aggregate(annotators, [1, 2, 0, 0, 3], [1, 1, -1, 0, 0], n_annotators=3)

    assert gold.share[:2] == pytest.approx([2 / 3, 1.0])
    assert gold.total.tolist() == [3, 2, 0]
    assert np.isnan(gold.share[2])
    assert agreement.hits.tolist() == [1, 1, 0]
    assert agreement.total.tolist() == [2, 2, 0]


def test_tie_and_both_bad_rates() -> None:
    outcomes = [PairwiseOutcome.TIE, PairwiseOutcome.FIRST, PairwiseOutcome.BOTH_BAD, PairwiseOutcome.TIE]

    ties = choice_rate([0, 0, 0, 0], outcomes, PairwiseOutcome.TIE, n_annotators=1)
    both_bad = choice_rate([0, 0, 0, 0], outcomes, PairwiseOutcome.BOTH_BAD, n_annotators=1)

    assert ties.share.tolist() == [0.5]
    assert both_bad.share.tolist() == [0.25]


def test_active_time_is_the_median_per_thousand_characters() -> None:
    annotators = [0, 0, 0, 1, 1]
    seconds = [10, 30, 600, 5, 9]
    characters = [1000, 2000, 1000, 500, 1000]

    rate = seconds_per_thousand_characters(annotators, seconds, characters, n_annotators=3)

    assert rate[0] == pytest.approx(15)
    assert rate[1] == pytest.approx((10 + 9) / 2)
    assert np.isnan(rate[2])


def test_too_fast_share_uses_the_threshold() -> None:
    share = too_fast_share([0, 0, 0, 1], [1.0, 2.9, 3.0, 10.0], threshold_seconds=3.0, n_annotators=2)

    assert share.share.tolist() == pytest.approx([2 / 3, 0.0])


def test_straight_lining_counts_rubrics_with_one_score_everywhere() -> None:
    scores = np.array(
        [
            [3, 3, 3],  # straight line
            [3, 3, nan],  # straight line on the scored criteria
            [1, 3, 5],
            [4, nan, nan],  # one criterion: does not count
            [2, 2, 2],
        ]
    )

    result = straight_lining([0, 0, 0, 0, 1], scores, n_annotators=2)

    assert result.judgments.tolist() == [3, 1]
    assert result.share.tolist() == pytest.approx([2 / 3, 1.0])
    assert result.mean_variance[0] == pytest.approx((0 + 0 + 8 / 3) / 3)
    assert result.mean_variance[1] == 0


def test_self_consistency_maps_swapped_repeats_back_before_comparing() -> None:
    first = [PairwiseOutcome.FIRST, PairwiseOutcome.FIRST, PairwiseOutcome.TIE, PairwiseOutcome.SECOND]
    repeat = [PairwiseOutcome.SECOND, PairwiseOutcome.FIRST, PairwiseOutcome.TIE, PairwiseOutcome.SECOND]
    swapped = [True, True, True, False]

    result = self_consistency([0, 0, 0, 0], first, repeat, swapped, n_annotators=1)

    # Swapped: SECOND maps back to FIRST (consistent), FIRST to SECOND (inconsistent), TIE stays.
    assert result.hits.tolist() == [3]
    assert unswap_pairwise([0, 1, 2, 3]).tolist() == [1, 0, 2, 3]


def test_annotator_codes_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="n_annotators"):
        gold_accuracy([0, 3], [True, False], n_annotators=2)
    with pytest.raises(ValueError, match="positive"):
        seconds_per_thousand_characters([0], [3.0], [0], n_annotators=1)


def test_holm_adjustment_matches_statsmodels_and_keeps_untested_annotators_nan() -> None:
    raw = np.array([0.01, nan, 0.04, 0.03, 0.005, 0.5])

    adjusted = holm_adjusted(raw)

    expected = multipletests(raw[~np.isnan(raw)], method="holm")[1]
    assert adjusted[~np.isnan(raw)] == pytest.approx(expected)
    assert np.isnan(adjusted[1])


def test_wilson_interval_matches_statsmodels() -> None:
    hits, total = np.array([0, 7, 20, 3]), np.array([10, 9, 20, 0])

    low, high = wilson_interval(hits, total)

    expected_low, expected_high = proportion_confint(hits[:3], total[:3], alpha=0.05, method="wilson")
    assert low[:3] == pytest.approx(expected_low)
    assert high[:3] == pytest.approx(expected_high)
    assert np.isnan(low[3])
    assert np.isnan(high[3])
