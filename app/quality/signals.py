"""Per-annotator quality signals, computed for all annotators at once.

Judgments come in long format: one row per judgment with a 0-based annotator code, and the
functions return one value per annotator (`n_annotators` long; NaN for an annotator with no
qualifying judgment). Shares come with their counts, so a scorecard can show "7/9" and
decide what is too few to judge.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt
from scipy.stats import binomtest, norm

from app.quality.kinds import PairwiseOutcome
from app.quality.ratings import FloatArray, IntArray


@dataclass(frozen=True)
class Shares:
    """Per annotator: share of qualifying judgments (NaN when none) and the counts behind it."""

    share: FloatArray
    hits: IntArray
    total: IntArray


@dataclass(frozen=True)
class PositionBias:
    """Per annotator: share of decided judgments for the left side and the two-sided binomial p-value."""

    left_share: FloatArray
    left: IntArray
    decided: IntArray
    p_value: FloatArray


@dataclass(frozen=True)
class StraightLining:
    """Per annotator: share of rubric judgments with one score on every criterion, and mean score variance."""

    share: FloatArray
    mean_variance: FloatArray
    judgments: IntArray


class ShownChoice(IntEnum):
    """Codes of a pairwise choice by the side it was shown on."""

    LEFT = 0
    RIGHT = 1
    TIE = 2
    BOTH_BAD = 3


def gold_accuracy(annotators: npt.ArrayLike, correct: npt.ArrayLike, *, n_annotators: int) -> Shares:
    """Share of gold judgments answered correctly (an accepted alternative counts as correct)."""
    annotator_index = _annotator_codes(annotators, n_annotators)
    return _shares(annotator_index, np.asarray(correct, dtype=bool), np.ones(annotator_index.size, bool), n_annotators)


def agreement_with_aggregate(
    annotators: npt.ArrayLike, labels: npt.ArrayLike, aggregate: npt.ArrayLike, *, n_annotators: int
) -> Shares:
    """Share of judgments equal to the item's aggregate label (`aggregate` aligned per judgment; -1 = none)."""
    annotator_index = _annotator_codes(annotators, n_annotators)
    label_codes = np.asarray(labels)
    aggregate_codes = np.asarray(aggregate)
    has_aggregate = aggregate_codes >= 0
    return _shares(annotator_index, label_codes == aggregate_codes, has_aggregate, n_annotators)


def position_bias(annotators: npt.ArrayLike, shown_choices: npt.ArrayLike, *, n_annotators: int) -> PositionBias:
    """Share of left-side choices among decided judgments, with an exact two-sided binomial test.

    Ties and both-bad are excluded. Sides are randomised per assignment, so an unbiased
    annotator chooses left with probability 1/2: p-value of `scipy.stats.binomtest(left,
    decided, 0.5)`; NaN without decided judgments.
    """
    annotator_index = _annotator_codes(annotators, n_annotators)
    choices = np.asarray(shown_choices)
    decided = np.isin(choices, (ShownChoice.LEFT, ShownChoice.RIGHT))
    shares = _shares(annotator_index, choices == ShownChoice.LEFT, decided, n_annotators)
    p_values = np.full(n_annotators, np.nan)
    for annotator in np.flatnonzero(shares.total):
        p_values[annotator] = binomtest(int(shares.hits[annotator]), int(shares.total[annotator]), 0.5).pvalue
    return PositionBias(shares.share, shares.hits, shares.total, p_values)


def choice_rate(annotators: npt.ArrayLike, outcomes: npt.ArrayLike, outcome: int, *, n_annotators: int) -> Shares:
    """Share of an annotator's pairwise judgments with the given outcome (e.g. `PairwiseOutcome.TIE`)."""
    annotator_index = _annotator_codes(annotators, n_annotators)
    codes = np.asarray(outcomes)
    return _shares(annotator_index, codes == outcome, np.ones(codes.shape, bool), n_annotators)


def seconds_per_thousand_characters(
    annotators: npt.ArrayLike, active_seconds: npt.ArrayLike, text_characters: npt.ArrayLike, *, n_annotators: int
) -> FloatArray:
    """Median active seconds per 1,000 characters of item text (the median resists idle outliers)."""
    annotator_index = _annotator_codes(annotators, n_annotators)
    seconds = np.asarray(active_seconds, dtype=np.float64)
    characters = np.asarray(text_characters, dtype=np.float64)
    if (characters <= 0).any():
        raise ValueError("text lengths must be positive")
    rate = seconds / (characters / 1000.0)
    medians = np.full(n_annotators, np.nan)
    # Group the rates by annotator (a radix sort for small integer keys), then select each
    # group's middle values in linear time instead of sorting every rate.
    keys = annotator_index.astype(np.int16) if n_annotators <= np.iinfo(np.int16).max else annotator_index
    grouped = rate[np.argsort(keys, kind="stable")]
    counts = np.bincount(annotator_index, minlength=n_annotators)
    ends = np.cumsum(counts)
    for annotator in np.flatnonzero(counts).tolist():
        size = int(counts[annotator])
        low, high = (size - 1) // 2, size // 2
        middle = np.partition(grouped[ends[annotator] - size : ends[annotator]], (low, high))
        medians[annotator] = (middle[low] + middle[high]) / 2.0
    return medians


def too_fast_share(
    annotators: npt.ArrayLike, active_seconds: npt.ArrayLike, *, threshold_seconds: float, n_annotators: int
) -> Shares:
    """Share of judgments made in less than `threshold_seconds` of active time."""
    annotator_index = _annotator_codes(annotators, n_annotators)
    seconds = np.asarray(active_seconds, dtype=np.float64)
    return _shares(annotator_index, seconds < threshold_seconds, np.ones(seconds.shape, bool), n_annotators)


def straight_lining(annotators: npt.ArrayLike, rubric_scores: npt.ArrayLike, *, n_annotators: int) -> StraightLining:
    """Share of rubric judgments giving every scored criterion the same score, and the mean score variance.

    `rubric_scores` is judgments x criteria (NaN = criterion not scored); judgments with fewer
    than two scored criteria do not count.
    """
    annotator_index = _annotator_codes(annotators, n_annotators)
    scores = np.asarray(rubric_scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != annotator_index.size:
        raise ValueError("rubric_scores must be judgments x criteria, one row per annotator code")
    scored = (~np.isnan(scores)).sum(axis=1)
    counts = scored >= 2
    filled = np.where(np.isnan(scores), 0.0, scores)
    means = np.zeros(scores.shape[0])
    np.divide(filled.sum(axis=1), scored, out=means, where=scored > 0)
    squared = np.where(np.isnan(scores), 0.0, (scores - means[:, None]) ** 2).sum(axis=1)
    variance = np.zeros(scores.shape[0])
    np.divide(squared, scored, out=variance, where=scored > 0)
    flat = counts & (variance == 0)
    shares = _shares(annotator_index, flat, counts, n_annotators)
    variance_sums = np.bincount(annotator_index[counts], weights=variance[counts], minlength=n_annotators)
    mean_variance = np.full(n_annotators, np.nan)
    np.divide(variance_sums, shares.total, out=mean_variance, where=shares.total > 0)
    return StraightLining(shares.share, mean_variance, shares.total)


def unswap_pairwise(outcomes: npt.ArrayLike) -> IntArray:
    """Map pairwise outcome codes of a side-swapped repeat back: first <-> second; tie, both bad stay."""
    codes = np.asarray(outcomes, dtype=np.intp)
    mapped = codes.copy()
    mapped[codes == PairwiseOutcome.FIRST] = PairwiseOutcome.SECOND
    mapped[codes == PairwiseOutcome.SECOND] = PairwiseOutcome.FIRST
    return mapped


def self_consistency(
    annotators: npt.ArrayLike,
    first_outcomes: npt.ArrayLike,
    repeat_outcomes: npt.ArrayLike,
    repeat_swapped: npt.ArrayLike,
    *,
    n_annotators: int,
) -> Shares:
    """Share of repeated pairwise items answered the same way twice, after mapping swapped repeats back.

    Outcome codes are `PairwiseOutcome` as the annotator saw the pair: a repeat shown with the
    responses swapped has its first/second choice mapped back before comparing.
    """
    annotator_index = _annotator_codes(annotators, n_annotators)
    first = np.asarray(first_outcomes, dtype=np.intp)
    repeat = np.asarray(repeat_outcomes, dtype=np.intp)
    swapped = np.asarray(repeat_swapped, dtype=bool)
    if not first.shape == repeat.shape == swapped.shape == annotator_index.shape:
        raise ValueError("one annotator, first outcome, repeat outcome and swap flag per repeated item")
    comparable = np.where(swapped, unswap_pairwise(repeat), repeat)
    return _shares(annotator_index, first == comparable, np.ones(first.shape, bool), n_annotators)


def _annotator_codes(annotators: npt.ArrayLike, n_annotators: int) -> IntArray:
    codes = np.asarray(annotators, dtype=np.intp)
    if codes.ndim != 1:
        raise ValueError("annotator codes must be a 1-D array")
    if codes.size and (codes.min() < 0 or codes.max() >= n_annotators):
        raise ValueError("annotator codes must be in [0, n_annotators)")
    return codes


def _shares(
    annotator_index: IntArray, hit: npt.NDArray[np.bool_], counted: npt.NDArray[np.bool_], n_annotators: int
) -> Shares:
    if not hit.shape == counted.shape == annotator_index.shape:
        raise ValueError("one value per judgment is needed")
    hits = np.bincount(annotator_index[counted & hit], minlength=n_annotators).astype(np.intp)
    total = np.bincount(annotator_index[counted], minlength=n_annotators).astype(np.intp)
    share = np.full(n_annotators, np.nan)
    np.divide(hits, total, out=share, where=total > 0)
    return Shares(share, hits, total)


def holm_adjusted(p_values: npt.ArrayLike) -> FloatArray:
    """Holm (1979) step-down adjusted p-values, for flagging many annotators at a family-wise level.

    NaN entries (annotators without a test) stay NaN and do not count as tests.
    """
    raw = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(raw.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(raw))
    order = tested[np.argsort(raw[tested], kind="stable")]
    multipliers = np.arange(order.size, 0, -1)
    adjusted[order] = np.minimum(np.maximum.accumulate(raw[order] * multipliers), 1.0)
    return adjusted


def wilson_interval(
    hits: npt.ArrayLike, total: npt.ArrayLike, *, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Wilson (1927) score interval for shares such as gold accuracy (NaN where total is 0)."""
    successes = np.asarray(hits, dtype=np.float64)
    trials = np.asarray(total, dtype=np.float64)
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    z = float(norm.ppf(0.5 + confidence / 2))
    low = np.full(trials.shape, np.nan)
    high = np.full(trials.shape, np.nan)
    some = trials > 0
    n = trials[some]
    share = successes[some] / n
    centre = (share + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(share * (1 - share) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    low[some] = np.clip(centre - half, 0.0, 1.0)
    high[some] = np.clip(centre + half, 0.0, 1.0)
    return low, high
