"""DPO rows from judged items: majority, exclusions, TRL's column shapes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from export.aggregate import pairwise_majority
from export.dpo import build_dpo_rows
from preference_store.judgments import ItemJudgments, ResponseText


def _item(external_id: str, votes: list[Any], *, messages: list[dict[str, str]] | None = None) -> ItemJudgments:
    payloads = [
        {"choice": "A" if isinstance(v, int) else v, "preferred_position": v if isinstance(v, int) else None}
        for v in votes
    ]
    return ItemJudgments(
        item_id=1,
        external_id=external_id,
        messages=messages or [{"role": "user", "content": f"prompt {external_id}"}],
        metadata={},
        responses=[ResponseText(0, f"first {external_id}", "m0"), ResponseText(1, f"second {external_id}", "m1")],
        payloads=payloads,
        annotator_ids=list(range(len(votes))),
    )


def test_majority_needs_more_than_half_and_never_picks_tie() -> None:
    assert pairwise_majority([{"preferred_position": 1}]).preferred_position == 1
    assert (
        pairwise_majority([{"preferred_position": 0}, {"preferred_position": 0}, {"choice": "tie"}]).preferred_position
        == 0
    )
    assert pairwise_majority([{"preferred_position": 0}, {"preferred_position": 1}]).preferred_position is None
    assert (
        pairwise_majority([{"choice": "tie"}, {"choice": "tie"}, {"preferred_position": 1}]).preferred_position is None
    )
    assert pairwise_majority([{"choice": "both_bad"}]).preferred_position is None
    assert pairwise_majority([]).votes == 0


def test_rows_are_conversational_with_explicit_prompt() -> None:
    conversation = [
        {"role": "system", "content": "Be safe."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "is this spam?"},
    ]
    rows = list(build_dpo_rows([_item("x", [1, 1, 0], messages=conversation)]))
    assert rows == [
        {
            "prompt": conversation,
            "chosen": [{"role": "assistant", "content": "second x"}],
            "rejected": [{"role": "assistant", "content": "first x"}],
        }
    ]


def test_ties_both_bad_and_split_votes_give_no_row() -> None:
    items = [_item("tie", ["tie", "tie"]), _item("bad", ["both_bad"]), _item("split", [0, 1]), _item("ok", [0])]
    rows = list(build_dpo_rows(items))
    assert [row["chosen"][0]["content"] for row in rows] == ["first ok"]


def test_identical_responses_give_no_row() -> None:
    same = replace(_item("same", [0]), responses=[ResponseText(0, "x", "a"), ResponseText(1, "x", "b")])
    assert list(build_dpo_rows([same])) == []
