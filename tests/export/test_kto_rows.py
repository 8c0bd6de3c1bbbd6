"""KTO rows: pairwise, both-bad, rubric thresholds, policy labels; the seeded shuffle."""

from __future__ import annotations

from collections import Counter
from typing import Any

from export.kto import KtoOptions, build_kto_rows, seeded_shuffle, shuffle_bucket, shuffle_key
from tests.export.records import assistant, item, pairwise, scored, user, vote


def _labels(rows: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    return [(row["completion"][0]["content"], row["label"]) for row in rows]


def test_pairwise_winner_is_desirable_and_loser_is_not() -> None:
    rows = list(build_kto_rows([pairwise("x", "110")]))
    assert rows == [
        {"prompt": user("prompt x"), "completion": assistant("b x"), "label": True},
        {"prompt": user("prompt x"), "completion": assistant("a x"), "label": False},
    ]


def test_both_bad_gives_two_negatives_and_tie_gives_nothing() -> None:
    skips: Counter[str] = Counter()
    rows = list(build_kto_rows([pairwise("bad", "xx0"), pairwise("tie", "tt")], skips=skips))
    assert _labels(rows) == [("a bad", False), ("b bad", False)]
    assert skips == {"tie": 1}
    assert list(build_kto_rows([pairwise("bad", "xx")], KtoOptions(both_bad_negatives=False))) == []


def test_rubric_thresholds_label_the_ends_and_skip_the_middle() -> None:
    source = scored("s", [{"0": {"h": 5}, "1": {"h": 1}, "2": {"h": 3}}], size=3)
    options = KtoOptions(rubric_scales={"h": (1, 5)}, desirable_at=0.75, undesirable_at=0.25)
    assert _labels(list(build_kto_rows([source], options))) == [("c0 s", True), ("c1 s", False)]


def test_policy_violation_is_negative_even_for_the_winner() -> None:
    flagged = {"1": ["gambling:severe"]}
    source = item("p", ["a", "b"], [vote("1", labels=flagged), vote("1", labels=flagged), vote("1")])
    options = KtoOptions(violating_labels={"gambling"}, provenance=True)
    rows = list(build_kto_rows([source], options))
    assert [(r["completion"], r["label"], r["source"]) for r in rows] == [
        (assistant("a"), False, "pairwise"),
        (assistant("b"), False, "policy"),
    ]
    assert _labels(list(build_kto_rows([source]))) == [("b", True), ("a", False)]


def test_seeded_shuffle_is_deterministic_and_ignores_input_order() -> None:
    rows = list(build_kto_rows([pairwise(str(n), "0") for n in range(30)]))
    once = seeded_shuffle(rows, 7)
    assert once == seeded_shuffle(list(reversed(rows)), 7)
    assert once != rows
    assert once != seeded_shuffle(rows, 8)
    assert sorted(map(repr, once)) == sorted(map(repr, rows))


def test_shuffle_ignores_provenance_columns() -> None:
    row = {"prompt": "p", "completion": "c", "label": True}
    assert shuffle_key(row, 1) == shuffle_key(row | {"external_id": "x"}, 1)


def test_bucketed_spill_then_sorting_each_bucket_equals_the_whole_shuffle() -> None:
    rows = list(build_kto_rows([pairwise(str(n), "1") for n in range(50)]))
    buckets: list[list[dict[str, object]]] = [[] for _ in range(4)]
    for row in rows:
        buckets[shuffle_bucket(row, 3, 4)].append(row)
    assert all(buckets)
    assert [row for bucket in buckets for row in seeded_shuffle(bucket, 3)] == seeded_shuffle(rows, 3)
