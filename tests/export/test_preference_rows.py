"""DPO and reward rows: every source, both formats, the guarantees and the margin."""

from __future__ import annotations

from collections import Counter

from export.aggregate import Abstain
from export.dpo import DpoOptions, RankingPairs, build_dpo_rows
from export.formats import RowFormat
from export.reward import RewardOptions, build_reward_rows
from tests.export.records import assistant, item, pairwise, ranked, scored, user, vote

ONLY_PAIRWISE = DpoOptions(from_rewrites=False)


def test_pairwise_majority_gives_one_conversational_row() -> None:
    rows = list(build_dpo_rows([pairwise("x", "110")]))
    assert rows == [{"prompt": user("prompt x"), "chosen": assistant("b x"), "rejected": assistant("a x")}]


def test_standard_rows_are_plain_strings_and_multi_turn_items_are_refused() -> None:
    conversation = [*user("hi"), *assistant("hello"), *user("and now?")]
    skips: Counter[str] = Counter()
    rows = list(
        build_dpo_rows(
            [pairwise("one", "0"), pairwise("multi", "0", prompt=conversation)],
            DpoOptions(row_format=RowFormat.STANDARD),
            skips=skips,
        )
    )
    assert rows == [{"prompt": "prompt one", "chosen": "a one", "rejected": "b one"}]
    assert skips == {"multi_turn_standard": 1}


def test_undecided_items_are_counted_by_reason() -> None:
    skips: Counter[str] = Counter()
    items = [pairwise("tie", "tt"), pairwise("bad", "x"), pairwise("split", "01"), pairwise("ok", "0")]
    rows = list(build_dpo_rows(items, skips=skips))
    assert [row["chosen"] for row in rows] == [assistant("a ok")]
    assert skips == {"tie": 1, "both_bad": 1, "no_majority": 1}


def test_guarantees_refuse_empty_prompt_empty_completion_and_equal_pair() -> None:
    skips: Counter[str] = Counter()
    items = [
        item("same", ["x", " x "], [vote("0")]),
        item("blank", ["x", "  "], [vote("0")]),
        item("noprompt", ["x", "y"], [vote("0")], prompt="   "),
        item("assistant-last", ["x", "y"], [vote("0")], prompt=[*user("q"), *assistant("a")]),
    ]
    assert list(build_dpo_rows(items, skips=skips)) == []
    assert skips == {
        "chosen_equals_rejected": 1,
        "empty_completion": 1,
        "empty_prompt": 1,
        "prompt_not_ending_on_user": 1,
    }


def test_rewrite_is_chosen_over_the_response_it_rewrote() -> None:
    rewrite = {"position": 1, "content": "b, but better"}
    source = item("rw", ["a", "b"], [vote("1", rewrite=rewrite), vote("1", rewrite=rewrite), vote("0")])
    rows = list(build_dpo_rows([source], DpoOptions(provenance=True)))
    assert [(r["chosen"], r["rejected"], r["source"]) for r in rows] == [
        (assistant("b"), assistant("a"), "pairwise"),
        (assistant("b, but better"), assistant("b"), "rewrite"),
    ]
    assert rows[0] | {"prompt": None} == {
        "prompt": None,
        "chosen": assistant("b"),
        "rejected": assistant("a"),
        "external_id": "rw",
        "source": "pairwise",
        "annotators": 3,
        "votes": 3,
        "agreement": 2 / 3,
    }
    assert list(build_dpo_rows([source], DpoOptions(from_rewrites=False, from_pairwise=False))) == []


def test_ranking_all_pairs_and_best_vs_rest() -> None:
    source = ranked("r", [[[2], [0], [1]], [[2], [1], [0]], [[2], [0], [1]]])
    pairs = [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in build_dpo_rows([source])]
    assert pairs == [("r2 r", "r0 r"), ("r2 r", "r1 r"), ("r0 r", "r1 r")]
    best = DpoOptions(ranking_pairs=RankingPairs.BEST_VS_REST)
    assert [r["rejected"][0]["content"] for r in build_dpo_rows([source], best)] == ["r0 r", "r1 r"]


def test_ranking_all_bad_majority_gives_no_pairs_unless_dropped() -> None:
    source = ranked("bad", [[[0], [1], [2]]], all_bad=2)
    skips: Counter[str] = Counter()
    assert list(build_dpo_rows([source], skips=skips)) == []
    assert skips == {"both_bad": 1}
    assert len(list(build_dpo_rows([source], DpoOptions(both_bad=Abstain.DROP)))) == 3


def test_ranking_pair_needs_min_agreement() -> None:
    source = ranked("r", [[[0], [1], [2]], [[0], [2], [1]], [[0], [1], [2]]])
    rows = list(build_dpo_rows([source], DpoOptions(min_agreement=0.9)))
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows] == [
        ("r0 r", "r1 r"),
        ("r0 r", "r2 r"),
    ]


def test_rubric_overall_choice_gives_a_pair() -> None:
    source = scored("s", [{"0": {"h": 2}, "1": {"h": 5}}], choice="B", preferred_position=1)
    rows = list(build_dpo_rows([source]))
    assert rows == [{"prompt": user("prompt s"), "chosen": assistant("c1 s"), "rejected": assistant("c0 s")}]
    assert list(build_dpo_rows([scored("plain", [{"0": {"h": 2}, "1": {"h": 5}}])])) == []


def test_reward_margin_from_strength_rubric_gap_and_rank_distance() -> None:
    options = RewardOptions(rubric_scales={"h": (1, 5)}, from_rewrites=False)
    items = [
        pairwise("strong", "111", strengths="msc"),
        pairwise("plain", "11"),
        scored("s", [{"0": {"h": 2}, "1": {"h": 5}}], choice="B", preferred_position=1),
        ranked("r", [[[2], [0], [1]]]),
    ]
    margins = [row["margin"] for row in build_reward_rows(items, options)]
    assert margins == [(2.0 + 0.5 + 1.0) / 3, 0.0, 2.0 * 0.75, 0.5, 1.0, 0.5]


def test_reward_without_margin_and_refusing_pairs_without_one() -> None:
    no_margin = list(build_reward_rows([pairwise("p", "1")], RewardOptions(margin=False)))
    assert no_margin == [{"prompt": user("prompt p"), "chosen": assistant("b p"), "rejected": assistant("a p")}]
    skips: Counter[str] = Counter()
    strict = RewardOptions(missing_margin=None)
    assert list(build_reward_rows([pairwise("p", "1")], strict, skips=skips)) == []
    assert skips == {"no_margin": 1}
