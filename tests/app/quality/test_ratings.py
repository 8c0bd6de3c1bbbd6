import numpy as np
import numpy.typing as npt
import pytest

from app.quality.ratings import as_rating_matrix, code_labels, from_codes, rating_matrix, slot_matrix

nan = np.nan


def test_rating_matrix_places_triples_by_item_and_rater() -> None:
    matrix = rating_matrix(["i1", "i1", "i2", "i3"], ["ann", "bo", "bo", "ann"], [1, 2, 3, 4])

    assert matrix.item_ids == ("i1", "i2", "i3")
    assert matrix.column_ids == ("ann", "bo")
    expected: list[list[float]] = [[1, 2], [nan, 3], [4, nan]]
    assert np.array_equal(matrix.values, expected, equal_nan=True)


def test_a_rater_rating_an_item_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="more than once"):
        rating_matrix(["i1", "i1"], ["ann", "ann"], [1, 2])


def test_slot_matrix_packs_each_items_ratings_left() -> None:
    matrix = slot_matrix(["a", "b", "a", "a", "c"], [1, 2, 3, 4, 5])

    expected: list[list[float]] = [[1, 3, 4], [2, nan, nan], [5, nan, nan]]
    assert np.array_equal(matrix.values, expected, equal_nan=True)


def test_labels_are_coded_by_category_position() -> None:
    assert np.array_equal(code_labels(["bad", None, "good"], ["bad", "ok", "good"]), [0, nan, 2], equal_nan=True)


def test_integer_codes_use_minus_one_for_missing() -> None:
    expected: list[list[float]] = [[0, nan], [2, 1]]
    assert np.array_equal(from_codes([[0, -1], [2, 1]]), expected, equal_nan=True)


@pytest.mark.parametrize(
    ("values", "message"),
    [(np.empty((0, 2)), "empty"), ([1, 2, 3], "2-D"), ([[1, np.inf]], "finite")],
)
def test_malformed_matrices_are_refused(values: npt.ArrayLike, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        as_rating_matrix(values)


def test_empty_triples_are_refused() -> None:
    with pytest.raises(ValueError, match="no ratings"):
        rating_matrix([], [], [])
    with pytest.raises(ValueError, match="no ratings"):
        slot_matrix([], [])
