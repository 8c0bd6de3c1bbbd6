"""Bradley-Terry (Davidson) ratings: against choix, with ties, bootstrap intervals, ranking decomposition."""

from __future__ import annotations

import choix
import numpy as np
import numpy.typing as npt
import pytest

from app.quality.bradley_terry import (
    FIRST_WINS,
    SECOND_WINS,
    TIE,
    bradley_terry,
    ranking_pairs,
    to_elo,
    win_rates,
)

TRUE_STRENGTHS = np.array([-1.5, -0.8, 0.0, 0.3, 0.9, 1.1])


def _simulate(
    seed: int, n: int, strengths: npt.NDArray[np.float64] = TRUE_STRENGTHS
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    rng = np.random.default_rng(seed)
    m = strengths.size
    first = rng.integers(0, m, n)
    second = (first + rng.integers(1, m, n)) % m
    p_first = 1.0 / (1.0 + np.exp(-(strengths[first] - strengths[second])))
    outcome = np.where(rng.random(n) < p_first, FIRST_WINS, SECOND_WINS)
    return first, second, outcome


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ratings_without_ties_match_choix_map_estimate(seed: int) -> None:
    first, second, outcome = _simulate(seed, 2000)
    ratings = bradley_terry(first, second, outcome, n_models=6, ridge=0.02, resamples=0)
    data = [(a, b) if o == FIRST_WINS else (b, a) for a, b, o in zip(first, second, outcome, strict=True)]
    # choix minimizes alpha * |theta|^2 - log-likelihood: the same MAP estimate at alpha = ridge / 2.
    expected = choix.opt_pairwise(6, data, alpha=0.01, tol=1e-10)
    expected = expected - expected.mean()
    np.testing.assert_allclose(ratings.strength, expected, atol=1e-5)
    assert ratings.tie_parameter == 0.0
    assert ratings.strength.mean() == pytest.approx(0.0, abs=1e-12)


def test_choix_ilsr_agrees_on_the_ranking_of_a_large_sample() -> None:
    first, second, outcome = _simulate(7, 20_000)
    ratings = bradley_terry(first, second, outcome, n_models=6, ridge=1e-6, resamples=0)
    data = [(a, b) if o == FIRST_WINS else (b, a) for a, b, o in zip(first, second, outcome, strict=True)]
    expected = choix.ilsr_pairwise(6, data, alpha=0.0, tol=1e-12)
    np.testing.assert_allclose(ratings.strength, expected - expected.mean(), atol=1e-4)
    np.testing.assert_allclose(ratings.strength, TRUE_STRENGTHS - TRUE_STRENGTHS.mean(), atol=0.1)


def test_a_model_that_only_ties_sits_between_the_winner_and_the_loser() -> None:
    # 0 beats 2 often; 1 only ever ties, with both.
    first = [0] * 30 + [0] * 10 + [1] * 10
    second = [2] * 30 + [1] * 10 + [2] * 10
    outcome = [FIRST_WINS] * 25 + [SECOND_WINS] * 5 + [TIE] * 20
    ratings = bradley_terry(first, second, outcome, n_models=3, resamples=0)
    assert ratings.strength[0] > ratings.strength[1] > ratings.strength[2]
    assert ratings.strength[1] == pytest.approx(0.0, abs=1e-6)  # symmetric data: exactly in the middle
    assert ratings.tie_parameter > 0
    assert ratings.ties[0, 1] == ratings.ties[1, 0] == 10


def test_ties_count_half_a_win_in_the_win_rate_matrix() -> None:
    ratings = bradley_terry(
        [0, 0, 1, 0], [1, 1, 0, 1], [FIRST_WINS, TIE, FIRST_WINS, SECOND_WINS], n_models=2, resamples=0
    )
    shares, counts = win_rates(ratings.wins, ratings.ties)
    assert counts[0, 1] == 4
    assert shares[0, 1] == pytest.approx((1 + 0.5) / 4)
    assert shares[1, 0] == pytest.approx((2 + 0.5) / 4)
    assert np.isnan(shares[0, 0])
    np.testing.assert_allclose(ratings.comparisons, [4, 4])


def test_undefeated_and_disconnected_models_stay_finite() -> None:
    # model 0 never loses; models 2 and 3 never meet 0 or 1.
    ratings = bradley_terry([0, 0, 2], [1, 1, 3], [FIRST_WINS, FIRST_WINS, TIE], n_models=4, resamples=50)
    assert np.isfinite(ratings.strength).all()
    assert ratings.strength[0] > ratings.strength[1]
    assert np.isfinite(ratings.low).all() and np.isfinite(ratings.high).all()


def test_bootstrap_intervals_cover_the_truth_and_shrink_with_more_items() -> None:
    centred = TRUE_STRENGTHS - TRUE_STRENGTHS.mean()
    covered = 0
    for seed in range(5):
        first, second, outcome = _simulate(100 + seed, 1500)
        ratings = bradley_terry(first, second, outcome, n_models=6, resamples=300, seed=seed)
        assert (ratings.low <= ratings.strength).all() and (ratings.strength <= ratings.high).all()
        covered += int(((ratings.low <= centred) & (centred <= ratings.high)).sum())
    assert covered >= 0.85 * 5 * 6
    small = bradley_terry(*_simulate(1, 300), n_models=6, resamples=300)
    large = bradley_terry(*_simulate(1, 3000), n_models=6, resamples=300)
    assert ((large.high - large.low) < (small.high - small.low)).all()


def test_bootstrap_resamples_items_and_is_seeded() -> None:
    first, second, outcome = _simulate(3, 400)
    items = np.arange(400) // 4  # four outcomes per item
    one = bradley_terry(first, second, outcome, n_models=6, items=items, resamples=200, seed=5)
    two = bradley_terry(first, second, outcome, n_models=6, items=items, resamples=200, seed=5)
    np.testing.assert_array_equal(one.low, two.low)
    assert one.items == 100


def test_reference_model_is_anchored_at_zero_and_elo_scale() -> None:
    first, second, outcome = _simulate(4, 500)
    ratings = bradley_terry(first, second, outcome, n_models=6, reference=2, resamples=100)
    assert ratings.strength[2] == 0.0
    assert ratings.low[2] == ratings.high[2] == 0.0
    assert ratings.elo[2] == pytest.approx(1000.0)
    assert to_elo([np.log(10.0)])[0] == pytest.approx(1400.0)


def test_ranking_decomposes_into_pairs_with_ties_inside_groups() -> None:
    assert ranking_pairs([[1], [0, 2], [3]]) == [
        (1, 0, FIRST_WINS),
        (1, 2, FIRST_WINS),
        (1, 3, FIRST_WINS),
        (0, 2, TIE),
        (0, 3, FIRST_WINS),
        (2, 3, FIRST_WINS),
    ]
    assert ranking_pairs([[0, 1, 2]]) == [(0, 1, TIE), (0, 2, TIE), (1, 2, TIE)]
    assert ranking_pairs([]) == []


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="itself"):
        bradley_terry([0], [0], [0], n_models=2)
    with pytest.raises(ValueError, match="model codes"):
        bradley_terry([0], [5], [0], n_models=2)
    with pytest.raises(ValueError, match="outcome"):
        bradley_terry([0], [1], [3], n_models=2)
    empty = bradley_terry([], [], [], n_models=2)
    np.testing.assert_array_equal(empty.strength, [0.0, 0.0])
