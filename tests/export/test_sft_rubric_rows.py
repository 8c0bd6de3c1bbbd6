"""SFT rows from rewrites, top-ranked responses and winners; rubric rows per response."""

from __future__ import annotations

from collections import Counter

from export.formats import RowFormat
from export.rubric import RubricOptions, build_rubric_rows
from export.sft import SftOptions, build_sft_rows
from tests.export.records import assistant, item, pairwise, ranked, scored, user, vote


def test_sft_takes_rewrites_and_condorcet_winners_by_default() -> None:
    rewrite = {"position": 0, "content": "a, improved"}
    items = [
        item("rw", ["a", "b"], [vote("0", rewrite=rewrite), vote("0", rewrite=rewrite)]),
        ranked("r", [[[2], [0], [1]], [[2], [1], [0]]]),
        pairwise("p", "11"),
    ]
    rows = list(build_sft_rows(items))
    assert rows == [
        {"messages": [*user("prompt rw"), *assistant("a, improved")]},
        {"messages": [*user("prompt r"), *assistant("r2 r")]},
    ]


def test_sft_pairwise_winners_when_asked_and_standard_format() -> None:
    options = SftOptions(from_pairwise=True, row_format=RowFormat.STANDARD, provenance=True)
    rows = list(build_sft_rows([pairwise("p", "110")], options))
    assert rows == [
        {
            "prompt": "prompt p",
            "completion": "b p",
            "external_id": "p",
            "source": "pairwise",
            "annotators": 3,
            "votes": 3,
            "agreement": 2 / 3,
        }
    ]


def test_sft_skips_ranked_items_without_a_clear_winner_or_all_bad() -> None:
    skips: Counter[str] = Counter()
    cycle = ranked("c", [[[0], [1], [2]], [[1], [2], [0]], [[2], [0], [1]]])
    bad = ranked("b", [[[0], [1], [2]]], all_bad=2)
    assert list(build_sft_rows([cycle, bad], skips=skips)) == []
    assert skips == {"no_majority": 1, "both_bad": 1}


def test_rubric_rows_carry_aggregates_per_response() -> None:
    source = scored(
        "s",
        [
            {"0": {"helpful": 5, "safe": True, "tone": "warm"}, "1": {"helpful": 1, "safe": False, "tone": "cold"}},
            {"0": {"helpful": 4, "safe": True, "tone": "warm"}, "1": {"helpful": 2, "safe": True, "tone": "cold"}},
        ],
    )
    rows = list(build_rubric_rows([source, pairwise("p", "1")], RubricOptions(scales={"helpful": (1, 5)})))
    assert rows == [
        {
            "prompt": user("prompt s"),
            "completion": assistant("c0 s"),
            "scores": {"helpful": 4.5, "safe": 1.0, "tone": "warm"},
            "overall": 0.875,
            "n_judgments": 2,
        },
        {
            "prompt": user("prompt s"),
            "completion": assistant("c1 s"),
            "scores": {"helpful": 1.5, "safe": 0.5, "tone": "cold"},
            "overall": 0.125,
            "n_judgments": 2,
        },
    ]


def test_rubric_rows_need_min_judgments_per_response() -> None:
    source = scored("s", [{"0": {"h": 3}, "1": {"h": 4}}, {"0": {"h": 5}}])
    skips: Counter[str] = Counter()
    rows = list(build_rubric_rows([source], RubricOptions(min_judgments=2), skips=skips))
    assert [(row["completion"], row["overall"]) for row in rows] == [(assistant("c0 s"), None)]
    assert skips == {"too_few_judgments": 1}
