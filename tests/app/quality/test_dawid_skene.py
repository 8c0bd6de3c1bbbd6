import dataclasses
import functools

import numpy as np
import numpy.typing as npt
import pytest

from app.quality.dawid_skene import DawidSkeneResult, dawid_skene
from app.quality.majority import majority_vote

N_CLASSES = 3

Codes = npt.NDArray[np.int64]
Simulation = tuple[Codes, Codes, Codes, DawidSkeneResult]


def _confusion(accuracy: float) -> npt.NDArray[np.float64]:
    matrix = np.full((N_CLASSES, N_CLASSES), (1 - accuracy) / (N_CLASSES - 1))
    np.fill_diagonal(matrix, accuracy)
    return matrix


GOOD = [_confusion(0.9), _confusion(0.85), _confusion(0.8)]
RANDOM = np.full((N_CLASSES, N_CLASSES), 1 / N_CLASSES)
# Answers the next class 80% of the time: systematically wrong but informative.
ADVERSARIAL = np.roll(_confusion(0.8), 1, axis=1)
ANNOTATORS = np.array([*GOOD, RANDOM, ADVERSARIAL])


def _simulate(seed: int, n_items: int = 2000, per_item: int = 3) -> tuple[Codes, Codes, Codes, Codes]:
    rng = np.random.default_rng(seed)
    truth = rng.choice(N_CLASSES, size=n_items, p=[0.5, 0.3, 0.2])
    items: list[int] = []
    annotators: list[int] = []
    labels: list[int] = []
    for item in range(n_items):
        for annotator in rng.choice(len(ANNOTATORS), size=per_item, replace=False):
            items.append(item)
            annotators.append(annotator)
            labels.append(rng.choice(N_CLASSES, p=ANNOTATORS[annotator, truth[item]]))
    return truth, np.array(items), np.array(annotators), np.array(labels)


@pytest.fixture(scope="module")
def simulation() -> Simulation:
    truth, items, annotators, labels = _simulate(seed=7)
    result = dawid_skene(
        items, annotators, labels, n_items=truth.size, n_annotators=len(ANNOTATORS), n_classes=N_CLASSES
    )
    return truth, items, labels, result


def test_recovers_the_annotators_confusion_matrices(simulation: Simulation) -> None:
    _, _, _, result = simulation

    assert result.converged
    assert np.abs(result.confusion - ANNOTATORS).max() < 0.08


def test_recovers_true_labels_clearly_better_than_majority_vote(simulation: Simulation) -> None:
    truth, items, labels, result = simulation
    majority = majority_vote(items, labels, n_items=truth.size, n_classes=N_CLASSES)

    dawid_skene_accuracy = np.mean(result.labels == truth)
    majority_accuracy = np.mean(majority.labels == truth)

    assert dawid_skene_accuracy > 0.88
    assert dawid_skene_accuracy > majority_accuracy + 0.1


def test_recovers_class_priors_and_ranks_competence(simulation: Simulation) -> None:
    _, _, _, result = simulation

    assert result.priors == pytest.approx([0.5, 0.3, 0.2], abs=0.03)
    assert result.posteriors.sum(axis=1) == pytest.approx(np.ones(result.posteriors.shape[0]))
    good, random, adversarial = result.competence[:3], result.competence[3], result.competence[4]
    assert good == pytest.approx([0.9, 0.85, 0.8], abs=0.05)
    assert random == pytest.approx(1 / 3, abs=0.05)
    assert adversarial < 0.2


def test_the_same_input_gives_the_same_result() -> None:
    truth, items, annotators, labels = _simulate(seed=3, n_items=300)
    run = functools.partial(
        dawid_skene, items, annotators, labels, n_items=truth.size, n_annotators=len(ANNOTATORS), n_classes=N_CLASSES
    )

    first = run()
    again = run()

    for field in dataclasses.fields(first):
        assert np.array_equal(getattr(first, field.name), getattr(again, field.name))


def test_a_posterior_tie_goes_to_the_lowest_class() -> None:
    # Two equally reliable annotators who always disagree: nothing separates the two classes.
    result = dawid_skene([0, 0, 1, 1], [0, 1, 0, 1], [0, 1, 1, 0], n_items=2, n_annotators=2, n_classes=2)

    assert result.posteriors[:, 0] == pytest.approx(result.posteriors[:, 1])
    assert result.labels.tolist() == [0, 0]


def test_an_item_without_judgments_gets_the_priors() -> None:
    result = dawid_skene([0, 0, 1, 1], [0, 1, 0, 1], [1, 1, 0, 0], n_items=3, n_annotators=2, n_classes=2)

    assert result.posteriors[2] == pytest.approx(result.priors)


def test_stops_at_max_iterations_without_claiming_convergence() -> None:
    truth, items, annotators, labels = _simulate(seed=5, n_items=200)

    result = dawid_skene(
        items, annotators, labels, n_items=truth.size, n_annotators=len(ANNOTATORS), n_classes=3, max_iterations=2
    )

    assert result.n_iterations == 2
    assert not result.converged


def test_majority_vote_breaks_ties_toward_the_lowest_class_and_flags_them() -> None:
    vote = majority_vote([0, 0, 0, 1, 1, 2], [2, 2, 1, 1, 0, 1], n_items=4, n_classes=3)

    assert vote.labels.tolist() == [2, 0, 1, -1]
    assert vote.is_tie.tolist() == [False, True, False, False]
    assert vote.shares == pytest.approx([2 / 3, 1 / 2, 1, 0])


@pytest.mark.parametrize(
    ("items", "labels", "message"),
    [([], [], "no judgments"), ([0, 5], [0, 0], "item codes"), ([0, 1], [0, 3], "label codes")],
)
def test_bad_long_format_input_is_refused(items: list[int], labels: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        majority_vote(items, labels, n_items=2, n_classes=3)
    with pytest.raises(ValueError, match=message):
        dawid_skene(items, [0] * len(items), labels, n_items=2, n_annotators=1, n_classes=3)


def test_a_zero_pseudo_count_is_refused() -> None:
    with pytest.raises(ValueError, match="smoothing > 0"):
        dawid_skene([0, 1], [0, 0], [0, 1], n_items=2, n_annotators=1, n_classes=2, smoothing=0)
