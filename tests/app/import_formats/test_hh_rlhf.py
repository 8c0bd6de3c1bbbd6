"""HH-RLHF transcripts split where chosen and rejected really diverge."""

from __future__ import annotations

import gzip
import json
from typing import Any

from app.import_formats import RowError, SourceRow
from app.import_formats.hh_rlhf import convert, split_transcripts
from tests.app.import_formats.shared_data import (
    HH_RLHF_EMPTY_CHOSEN_LINES,
    HH_RLHF_FILE,
    HH_RLHF_ROWS,
    shared_data_file,
)

H, A = "\n\nHuman:", "\n\nAssistant:"


def _rebuilt(item: dict[str, Any], reply: str) -> str:
    """The transcript the item stands for, rebuilt from its messages and one reply."""
    markers = {"user": H, "assistant": A}
    turns = "".join(f"{markers[m['role']]} {m['content']}" for m in item["messages"])
    return f"{turns}{A} {reply}"


def test_simple_pair_shares_the_conversation_and_keeps_the_chosen_reply_first() -> None:
    chosen = f"{H} Hi{A} Hello.{H} How do I bake bread?{A} Knead, rest, bake."
    rejected = f"{H} Hi{A} Hello.{H} How do I bake bread?{A} No idea."
    row = convert(1, {"chosen": chosen, "rejected": rejected})
    assert isinstance(row, SourceRow)
    assert row.item["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "How do I bake bread?"},
    ]
    assert [r["content"] for r in row.item["responses"]] == ["Knead, rest, bake.", "No idea."]
    assert [(v.source, v.kind, v.payload) for v in row.verdicts] == [("hh-rlhf", "choice", {"choice": 0})]
    assert row.item["external_id"].startswith("hh-rlhf-")
    assert _rebuilt(row.item, row.item["responses"][0]["content"]) == chosen


def test_reply_containing_human_text_is_not_split_at_its_own_marker() -> None:
    chosen = f"{H} Rob a house?{A} Human: I can help.  Human: great{A} more"
    rejected = f"{H} Rob a house?{A} No."
    split = split_transcripts(chosen, rejected)
    assert not isinstance(split, str)
    assert split.prefix == f"{H} Rob a house?{A}"
    assert split.chosen == " Human: I can help.  Human: great\n\nAssistant: more"
    assert split.prefix + split.chosen == chosen and split.prefix + split.rejected == rejected


def test_two_assistant_turns_in_a_row_split_after_the_last_human_turn() -> None:
    chosen = f"{H} A serial please{A} Here:{A} logging in now"
    rejected = f"{H} A serial please{A} Here:{A} no, sorry"
    split = split_transcripts(chosen, rejected)
    assert not isinstance(split, str)
    assert split.prefix == f"{H} A serial please{A}"
    assert (split.chosen, split.rejected) == (f" Here:{A} logging in now", f" Here:{A} no, sorry")


def test_divergence_inside_a_word_backs_off_to_the_turn_start() -> None:
    split = split_transcripts(f"{H} q{A} Sure thing", f"{H} q{A} Surely not")
    assert not isinstance(split, str)
    assert (split.prefix, split.chosen, split.rejected) == (f"{H} q{A}", " Sure thing", " Surely not")


def test_empty_final_reply_becomes_an_empty_response_marked_as_such() -> None:
    row = convert(7, {"chosen": f"{H} list bad words{A} ", "rejected": f"{H} list bad words{A} Ok"})
    assert isinstance(row, SourceRow) and row.empty_replies
    assert row.item["responses"] == [{"content": "", "metadata": {"empty_reply": True}}, {"content": "Ok"}]
    assert row.verdicts[0].payload == {"choice": 0}


def test_both_final_replies_empty_is_refused() -> None:
    row = convert(7, {"chosen": f"{H} q{A} ", "rejected": f"{H} q{A}"})
    assert isinstance(row, RowError)
    assert [str(p) for p in row.problems] == ["line 7: chosen: both final replies are empty"]


def test_identical_transcripts_and_wrong_types_are_refused() -> None:
    same = convert(1, {"chosen": f"{H} q{A} a", "rejected": f"{H} q{A} a"})
    assert isinstance(same, RowError) and same.problems[0].message == "chosen and rejected are the same transcript"
    typed = convert(2, {"chosen": 3, "rejected": None})
    assert isinstance(typed, RowError)
    assert [(p.field, p.message) for p in typed.problems] == [
        ("chosen", "must be a transcript string, got int"),
        ("rejected", "must be a transcript string, got NoneType"),
    ]
    no_human = convert(3, {"chosen": f"{A} a", "rejected": f"{A} b"})
    assert isinstance(no_human, RowError) and "no assistant turn that follows a human turn" in str(no_human.problems[0])


def test_the_same_pair_always_gets_the_same_external_id() -> None:
    record = {"chosen": f"{H} q{A} a", "rejected": f"{H} q{A} b"}
    first, second = convert(1, record), convert(9, dict(record))
    assert isinstance(first, SourceRow) and isinstance(second, SourceRow)
    assert first.item["external_id"] == second.item["external_id"]


def test_every_row_of_the_real_test_split_splits_exactly() -> None:
    with gzip.open(shared_data_file(HH_RLHF_FILE), "rt", encoding="utf-8") as stream:
        records = [json.loads(line) for line in stream]
    assert len(records) == HH_RLHF_ROWS
    empty = []
    for number, record in enumerate(records, start=1):
        split = split_transcripts(record["chosen"], record["rejected"])
        assert not isinstance(split, str), (number, split)
        assert split.prefix + split.chosen == record["chosen"], number
        assert split.prefix + split.rejected == record["rejected"], number
        assert split.chosen != split.rejected, number
        before = split.prefix[: -len(A)]
        assert split.prefix.endswith(A) and before.rfind(H) > before.rfind(A), number  # ends with a user turn
        row = convert(number, record)
        assert isinstance(row, SourceRow), number
        assert row.item["messages"][-1]["role"] == "user", number
        chosen, rejected = (response["content"] for response in row.item["responses"])
        if not chosen:
            empty.append(number)
            assert row.item["responses"][0]["metadata"] == {"empty_reply": True}, number
            assert not split.chosen.strip() and rejected.strip(), number
            continue
        assert chosen.strip() and rejected.strip() and chosen != rejected, number
        assert _rebuilt(row.item, chosen) == record["chosen"], number
        assert _rebuilt(row.item, rejected) == record["rejected"], number
    assert tuple(empty) == HH_RLHF_EMPTY_CHOSEN_LINES
