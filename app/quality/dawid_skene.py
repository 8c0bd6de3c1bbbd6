"""Dawid-Skene label aggregation by expectation-maximisation (Dawid & Skene 1979).

Each annotator j has a confusion matrix pi_j[true, observed]; classes have priors p. EM starts
from the majority-vote shares (each item's vote distribution as its posterior), then
alternates:

- M-step: p = mean posterior; pi_j[c, l] proportional to the posterior mass of class c on the
  items where j answered l, plus a small pseudo-count (`smoothing`) so an unseen cell never
  gets probability 0;
- E-step: log posterior[i, c] = log p_c + sum over i's judgments of log pi_j[c, l], normalised.

It stops when the log-likelihood improves by less than `tolerance` (relative) or after
`max_iterations`. EM converges slowly near the optimum: on the tests' simulation, 1e-6 stops
after 29 iterations with posteriors within 0.03 of the fixed point, the default 1e-8 after 49
within 0.005; run to the fixed point, the posteriors equal crowd-kit's DawidSkene to 1e-5.

Labels are the posterior argmax, ties to the lowest class code. Competence is the
prior-weighted diagonal of an annotator's confusion matrix: the chance the annotator
answers the true class on a random item. Complexity per iteration O(judgments x classes +
annotators x classes^2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from app.quality.majority import long_format_codes, vote_counts
from app.quality.ratings import FloatArray, IntArray


@dataclass(frozen=True)
class DawidSkeneResult:
    """Fitted model: item posteriors and labels, annotator confusion matrices, class priors."""

    posteriors: FloatArray
    labels: IntArray
    confusion: FloatArray
    priors: FloatArray
    competence: FloatArray
    log_likelihood: float
    n_iterations: int
    converged: bool


def dawid_skene(
    items: npt.ArrayLike,
    annotators: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    n_items: int,
    n_annotators: int,
    n_classes: int,
    max_iterations: int = 100,
    tolerance: float = 1e-8,
    smoothing: float = 0.01,
    accelerate: bool = False,
) -> DawidSkeneResult:
    """Fit Dawid-Skene to long-format judgments (0-based item, annotator and class codes).

    Items without a judgment get the class priors as posterior. With `accelerate`, EM steps
    are extrapolated by SQUAREM (Varadhan & Roland 2008): the same fixed point in far fewer
    passes over the judgments; `max_iterations` then counts SQUAREM steps (three EM steps each).
    """
    item_index, label_index = long_format_codes(items, labels, n_items=n_items, n_classes=n_classes)
    annotator_index = np.asarray(annotators, dtype=np.intp)
    if annotator_index.shape != item_index.shape:
        raise ValueError("annotators must have one code per judgment")
    if annotator_index.min() < 0 or annotator_index.max() >= n_annotators:
        raise ValueError("annotator codes must be in [0, n_annotators)")
    if max_iterations < 1 or tolerance <= 0 or smoothing <= 0:
        # Without a pseudo-count a zero confusion cell can zero every class of an item (0/0).
        raise ValueError("max_iterations >= 1, tolerance > 0 and smoothing > 0 are required")

    counts = vote_counts(item_index, label_index, n_items=n_items, n_classes=n_classes)
    totals = counts.sum(axis=1, keepdims=True)
    posteriors = np.full((n_items, n_classes), 1.0 / n_classes)
    np.divide(counts, totals, out=posteriors, where=totals > 0)
    # Classes x items inside the loop: reductions over classes then run along contiguous rows.
    posteriors = np.ascontiguousarray(posteriors.T)
    # Items x (annotator, answer) cells: how often each item got each answer from each annotator.
    # Both EM steps are then one sparse product: (cells x classes) log-probabilities into the
    # items, and the items' posteriors back into the cells.
    n_cells = n_annotators * n_classes
    answers = sparse.csr_array(
        (np.ones(item_index.size), (item_index, annotator_index * n_classes + label_index)), shape=(n_items, n_cells)
    )
    answers.sum_duplicates()

    previous = -np.inf
    converged = False
    iteration = 0
    if accelerate:
        priors, confusion = _maximise(posteriors, answers, n_annotators, n_classes, smoothing)
        posteriors, log_likelihood = _expect(priors, confusion, answers)
        for iteration in range(1, max_iterations + 1):  # noqa: B007 - the count is reported
            previous = log_likelihood
            priors, confusion, posteriors, log_likelihood = _squarem_step(
                priors, confusion, posteriors, log_likelihood, answers, smoothing
            )
            if log_likelihood - previous <= tolerance * abs(previous):
                converged = True
                break
    else:
        for iteration in range(1, max_iterations + 1):  # noqa: B007 - the count is reported
            priors, confusion = _maximise(posteriors, answers, n_annotators, n_classes, smoothing)
            posteriors, log_likelihood = _expect(priors, confusion, answers)
            if np.isfinite(previous) and log_likelihood - previous <= tolerance * abs(previous):
                converged = True
                break
            previous = log_likelihood
    posteriors = np.ascontiguousarray(posteriors.T)
    competence = np.einsum("c,jcc->j", priors, confusion)
    return DawidSkeneResult(
        posteriors=posteriors,
        labels=posteriors.argmax(axis=1).astype(np.intp),
        confusion=confusion,
        priors=priors,
        competence=competence,
        log_likelihood=float(log_likelihood),
        n_iterations=iteration,
        converged=converged,
    )


def _squarem_step(
    priors: FloatArray,
    confusion: FloatArray,
    posteriors: FloatArray,
    log_likelihood: float,
    answers: sparse.csr_array,
    smoothing: float,
) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """One SQUAREM step (scheme S3) from parameters whose E-step gave `posteriors` and `log_likelihood`.

    Two EM steps give the first and second differences r and v; the parameters move to
    theta - 2 a r + a^2 v with a = -|r| / |v| (at most -1), are clipped back to probabilities
    and get one more EM step. A step that would lower the likelihood below the second plain EM
    step's falls back to that step, so the likelihood never decreases.
    """
    n_annotators, n_classes = confusion.shape[0], priors.size
    theta = np.concatenate((priors, confusion.reshape(-1)))
    first_priors, first_confusion = _maximise(posteriors, answers, n_annotators, n_classes, smoothing)
    first_posteriors, _ = _expect(first_priors, first_confusion, answers)
    second_priors, second_confusion = _maximise(first_posteriors, answers, n_annotators, n_classes, smoothing)
    second_posteriors, second_likelihood = _expect(second_priors, second_confusion, answers)
    first = np.concatenate((first_priors, first_confusion.reshape(-1)))
    second = np.concatenate((second_priors, second_confusion.reshape(-1)))
    change = first - theta
    curvature = second - first - change
    spread = float(np.linalg.norm(curvature))
    fallback = (second_priors, second_confusion, second_posteriors, second_likelihood)
    if spread == 0.0 or not np.isfinite(spread):
        return fallback
    step = min(-float(np.linalg.norm(change)) / spread, -1.0)
    moved = np.clip(theta - 2 * step * change + step**2 * curvature, 1e-12, None)
    moved_priors = moved[:n_classes] / moved[:n_classes].sum()
    moved_confusion = moved[n_classes:].reshape(n_annotators, n_classes, n_classes)
    moved_confusion = moved_confusion / moved_confusion.sum(axis=2, keepdims=True)
    moved_posteriors, _ = _expect(moved_priors, moved_confusion, answers)
    new_priors, new_confusion = _maximise(moved_posteriors, answers, n_annotators, n_classes, smoothing)
    new_posteriors, new_likelihood = _expect(new_priors, new_confusion, answers)
    if not np.isfinite(new_likelihood) or new_likelihood < second_likelihood:
        return fallback
    return new_priors, new_confusion, new_posteriors, new_likelihood


def _maximise(
    posteriors: FloatArray,
    answers: sparse.csr_array,
    n_annotators: int,
    n_classes: int,
    smoothing: float,
) -> tuple[FloatArray, FloatArray]:
    """M-step from classes x items posteriors."""
    priors = posteriors.mean(axis=1)
    # mass[true class, cell] = posterior mass of the true class over the items given that cell's answer.
    mass = np.asarray(posteriors @ answers, dtype=np.float64)
    confusion = mass.reshape(n_classes, n_annotators, n_classes).transpose(1, 0, 2) + smoothing
    row_totals = confusion.sum(axis=2, keepdims=True)
    # An annotator who never met a class (all-zero row without smoothing) answers it uniformly.
    confusion = np.divide(confusion, row_totals, out=np.full_like(confusion, 1.0 / n_classes), where=row_totals > 0)
    return priors, confusion


def _expect(priors: FloatArray, confusion: FloatArray, answers: sparse.csr_array) -> tuple[FloatArray, float]:
    """E-step: classes x items posteriors and the log-likelihood."""
    n_classes = priors.size
    with np.errstate(divide="ignore"):
        log_confusion = np.log(confusion)
        log_priors = np.log(priors)
    # cells x classes: log pi_j[true, answer] for cell (j, answer).
    per_cell = log_confusion.transpose(0, 2, 1).reshape(-1, n_classes)
    joint = np.ascontiguousarray(np.asarray(answers @ per_cell, dtype=np.float64).T)
    joint += log_priors[:, None]
    top = joint.max(axis=0)
    top[~np.isfinite(top)] = 0.0
    # In place: each step is a pass over classes x items, and new arrays of that size cost as much again.
    joint -= top
    weights = np.exp(joint, out=joint)
    totals = weights.sum(axis=0)
    with np.errstate(divide="ignore"):
        normaliser = np.log(totals) + top
    weights /= totals
    return weights, float(normaliser.sum())
