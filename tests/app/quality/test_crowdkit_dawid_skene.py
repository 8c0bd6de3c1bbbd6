"""Dawid-Skene against crowd-kit's `DawidSkene` on a seeded simulation with a biased and a random annotator."""

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from app.quality.dawid_skene import DawidSkeneResult, dawid_skene
from app.quality.majority import majority_vote

crowdkit_aggregation = pytest.importorskip("crowdkit.aggregation")
pd = pytest.importorskip("pandas")

N_CLASSES = 3

Codes = npt.NDArray[np.int64]
# The last item is crowd-kit's fitted DawidSkene, untyped: crowd-kit comes in through importorskip.
Fitted = tuple[Codes, Codes, Codes, DawidSkeneResult, Any]


def _confusion(accuracy: float) -> np.ndarray:
    matrix = np.full((N_CLASSES, N_CLASSES), (1 - accuracy) / (N_CLASSES - 1))
    np.fill_diagonal(matrix, accuracy)
    return matrix


# Three careful annotators, one biased (answers the next class 70% of the time: systematically
# wrong but informative) and one answering at random.
BIASED = np.roll(_confusion(0.7), 1, axis=1)
RANDOM = np.full((N_CLASSES, N_CLASSES), 1 / N_CLASSES)
ANNOTATORS = np.array([_confusion(0.85), _confusion(0.8), _confusion(0.75), BIASED, RANDOM])


def _simulate(seed: int, n_items: int = 3000, per_item: int = 3) -> tuple[Codes, Codes, Codes, Codes]:
    rng = np.random.default_rng(seed)
    truth = rng.choice(N_CLASSES, size=n_items, p=[0.3, 0.4, 0.3])
    items: list[int] = []
    annotators: list[int] = []
    labels: list[int] = []
    for item in range(n_items):
        for annotator in rng.choice(len(ANNOTATORS), size=per_item, replace=False):
            items.append(item)
            annotators.append(int(annotator))
            labels.append(int(rng.choice(N_CLASSES, p=ANNOTATORS[annotator, truth[item]])))
    return truth, np.array(items), np.array(annotators), np.array(labels)


def _fit(truth: Codes, items: Codes, annotators: Codes, labels: Codes, **options: Any) -> DawidSkeneResult:
    """Our Dawid-Skene on a simulation, to a tight tolerance."""
    return dawid_skene(
        items,
        annotators,
        labels,
        n_items=truth.size,
        n_annotators=len(ANNOTATORS),
        n_classes=N_CLASSES,
        tolerance=1e-12,
        **options,
    )


@pytest.fixture(scope="module")
def fitted() -> Fitted:
    truth, items, annotators, labels = _simulate(seed=11)
    ours = _fit(truth, items, annotators, labels, max_iterations=2000, smoothing=1e-9)
    frame = pd.DataFrame({"task": items, "worker": annotators, "label": labels})
    with warnings.catch_warnings():
        # crowd-kit 1.4 calls pandas APIs that pandas 3 deprecates; its results are unaffected.
        warnings.simplefilter("ignore")
        theirs = crowdkit_aggregation.DawidSkene(n_iter=2000, tol=1e-12).fit(frame)
    return truth, items, labels, ours, theirs


def test_the_labels_are_crowd_kits(fitted: Fitted) -> None:
    _, _, _, ours, theirs = fitted
    their_labels = theirs.labels_.sort_index().to_numpy()

    assert ours.converged
    assert np.array_equal(ours.labels, their_labels)


def test_the_posteriors_and_priors_are_crowd_kits(fitted: Fitted) -> None:
    _, _, _, ours, theirs = fitted
    their_posteriors = theirs.probas_.sort_index()[list(range(N_CLASSES))].to_numpy()
    their_priors = theirs.priors_.sort_index().to_numpy()

    assert np.abs(ours.posteriors - their_posteriors).max() < 1e-4
    assert ours.priors == pytest.approx(their_priors, abs=1e-3)


def test_it_beats_majority_vote_on_the_simulation(fitted: Fitted) -> None:
    truth, items, labels, ours, _ = fitted
    majority = majority_vote(items, labels, n_items=truth.size, n_classes=N_CLASSES)

    assert np.mean(ours.labels == truth) > np.mean(majority.labels == truth) + 0.02


@pytest.mark.parametrize("seed", [11, 12])
def test_the_accelerated_fit_reaches_the_same_fixed_point(seed: int) -> None:
    truth, items, annotators, labels = _simulate(seed=seed, n_items=1500)
    plain = _fit(truth, items, annotators, labels, max_iterations=5000)
    fast = _fit(truth, items, annotators, labels, max_iterations=500, accelerate=True)

    assert plain.converged and fast.converged
    # Plain EM crawls along flat ridges and may stop short; SQUAREM gets as far up.
    assert fast.n_iterations * 3 < plain.n_iterations
    assert fast.log_likelihood >= plain.log_likelihood - 1e-9 * abs(plain.log_likelihood)
    assert np.abs(fast.posteriors - plain.posteriors).max() < 0.01
    assert np.array_equal(fast.labels, plain.labels)
