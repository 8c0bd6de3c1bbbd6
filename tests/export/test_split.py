"""Grouped splits: no prompt in two splits, deterministic for a seed."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from export.dpo import build_dpo_rows
from export.formats import RowFormat
from export.pairs import PairOptions
from export.split import SplitSpec, group_key, split_of, split_rows
from tests.export.records import assistant, pairwise, user


def test_group_key_is_the_normalised_first_user_turn() -> None:
    system = {"role": "system", "content": "Be kind."}
    first = {"prompt": [system, *user("  What IS\tthe  capital?"), *assistant("Paris"), *user("And Spain?")]}
    assert group_key(first) == "what is the capital?"
    assert group_key({"prompt": "what is the capital?"}) == "what is the capital?"
    assert group_key({"messages": [*user("What is the capital?"), *assistant("Paris")]}) == "what is the capital?"


def test_many_items_sharing_prompts_never_leak_across_splits() -> None:
    prompts = [f"Question {n}" for n in range(40)]
    items = []
    for n in range(800):
        base = prompts[n % 40]
        shown = base.upper() if n % 3 == 0 else f"  {base} "
        conversation = user(shown) if n % 2 else [*user(shown), *assistant("ok"), *user(f"follow-up {n}")]
        items.append(pairwise(f"i{n}", "0", prompt=conversation))
    spec = SplitSpec(test=0.2, validation=0.1, seed=11)
    splits_of_group: dict[str, set[str]] = defaultdict(set)
    counts: Counter[str] = Counter()
    for name, row in split_rows(build_dpo_rows(items), spec):
        splits_of_group[group_key(row)].add(name)
        counts[name] += 1
    assert len(splits_of_group) == 40
    assert all(len(names) == 1 for names in splits_of_group.values())
    assert set(counts) == {"train", "test", "validation"}
    assert sum(counts.values()) == 800


def test_split_is_deterministic_for_a_seed_and_independent_of_the_rest() -> None:
    spec = SplitSpec(test=0.5, seed=1)
    rows = [{"prompt": f"p{n}"} for n in range(200)]
    first = [split_of(row, spec) for row in rows]
    assert first == [split_of(row, spec) for row in rows]
    assert [split_of(row, spec) for row in rows[100:]] == first[100:]
    assert first != [split_of(row, SplitSpec(test=0.5, seed=2)) for row in rows]
    assert 60 < first.count("test") < 140


def test_standard_and_conversational_rows_of_one_prompt_share_a_split() -> None:
    items = [pairwise(f"i{n}", "0", prompt=f"prompt {n}") for n in range(50)]
    spec = SplitSpec(test=0.3, seed=5)
    conversational = [split_of(row, spec) for row in build_dpo_rows(items)]
    standard = [split_of(row, spec) for row in build_dpo_rows(items, PairOptions(row_format=RowFormat.STANDARD))]
    assert conversational == standard


def test_fractions_must_leave_room_for_train() -> None:
    with pytest.raises(ValueError, match="train"):
        SplitSpec(test=0.6, validation=0.4)
    assert SplitSpec(test=0.1).names() == ["train", "test"]
    assert SplitSpec(test=0.1, validation=0.1).names() == ["train", "test", "validation"]
