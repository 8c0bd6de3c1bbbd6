"""Every builder's rows pass TRL's own data checks, in both formats."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import datasets
import pytest
from trl.data_utils import is_conversational, maybe_apply_chat_template, maybe_extract_prompt

from export.dpo import DpoOptions, build_dpo_rows
from export.formats import RowFormat
from export.kto import KtoOptions, build_kto_rows, seeded_shuffle
from export.reward import RewardOptions, build_reward_rows
from export.rubric import RubricOptions, build_rubric_rows
from export.sft import SftOptions, build_sft_rows
from preference_store.judgments import ItemJudgments
from tests.export.records import item, pairwise, ranked, scored, vote
from tests.train.tiny_model import train_tokenizer

pytestmark = pytest.mark.train

ITEMS = [
    pairwise("p1", "110", strengths="mcs"),
    pairwise("p2", "x"),
    item("rw", ["a", "b"], [vote("0", rewrite={"position": 0, "content": "a, improved"})]),
    ranked("r", [[[2], [0], [1]], [[2], [1], [0]]]),
    scored("s", [{"0": {"h": 5}, "1": {"h": 1}}], choice="A", preferred_position=0),
]
SCALES = {"h": (1, 5)}
Builder = Callable[[RowFormat], Iterator[dict[str, Any]]]
BUILDERS: dict[str, Builder] = {
    "dpo": lambda fmt: build_dpo_rows(ITEMS, DpoOptions(row_format=fmt, rubric_scales=SCALES, provenance=True)),
    "reward": lambda fmt: build_reward_rows(ITEMS, RewardOptions(row_format=fmt, rubric_scales=SCALES)),
    "kto": lambda fmt: iter(
        seeded_shuffle(build_kto_rows(ITEMS, KtoOptions(row_format=fmt, rubric_scales=SCALES, desirable_at=0.5)), 1)
    ),
    "sft": lambda fmt: build_sft_rows(ITEMS, SftOptions(row_format=fmt, from_pairwise=True)),
    "rubric": lambda fmt: build_rubric_rows(ITEMS, RubricOptions(scales=SCALES, row_format=fmt)),
}


def _texts(items: Iterable[ItemJudgments]) -> Iterator[str]:
    for source in items:
        yield from (message["content"] for message in source.messages)
        yield from (response.content for response in source.responses)


TOKENIZER = train_tokenizer(_texts(ITEMS))


@pytest.mark.parametrize("kind", sorted(BUILDERS))
@pytest.mark.parametrize("fmt", list(RowFormat))
def test_rows_pass_trl_checks(kind: str, fmt: RowFormat) -> None:
    rows = list(BUILDERS[kind](fmt))
    assert rows
    for row in rows:
        assert is_conversational(row) is (fmt is RowFormat.CONVERSATIONAL)
        assert maybe_extract_prompt(row) == row
        trl_columns = {"prompt": row["prompt"], "completion": row["completion"]} if kind == "rubric" else row
        rendered = maybe_apply_chat_template(trl_columns, TOKENIZER)
        texts = {
            key: rendered[key] for key in ("prompt", "chosen", "rejected", "completion", "text") if key in rendered
        }
        assert all(isinstance(text, str) and text.strip() for text in texts.values()), texts
        if "chosen" in texts:
            assert texts["chosen"] != texts["rejected"]
    loaded = datasets.Dataset.from_list(rows)
    assert loaded.num_rows == len(rows)
    assert loaded.to_list() == rows
