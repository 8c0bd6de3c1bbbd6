"""The DPO export, end to end: judged in the app, written to disk, loaded by `datasets`, trained by TRL."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, cast

import datasets
import huggingface_hub.constants
import pytest
import torch
from sqlalchemy.orm import Session
from trl import DPOConfig, DPOTrainer
from trl.data_utils import is_conversational, maybe_apply_chat_template, maybe_extract_prompt

from app.principal import Principal
from app.services import accounts, annotation, exporting, importing, projects
from export.dpo import CONVERSATIONAL_PREFERENCE_SCHEMA
from export.writers import ExportFormat, write_rows
from preference_store.models import Role
from tests.conftest import People, native_item
from tests.train.tiny_model import BOS, EOS, message_texts, tiny_llama, train_tokenizer

pytestmark = pytest.mark.train

SLUG = "dpo-train"
ANNOTATORS = ("ann1@example.org", "ann2@example.org", "ann3@example.org")
COLUMNS = ["prompt", "chosen", "rejected"]

# (external_id, prompt or messages, answer a, answer b, one vote per annotator).
# Votes: "a"/"b" prefer that answer, "t" tie, "x" both bad.
ITEMS: list[tuple[str, str | list[dict[str, str]], str, str, str]] = [
    ("capital-fr", "What is the capital of France?", "Paris.", "Lyon.", "aaa"),
    ("sum", "What is 2 + 2?", "5.", "4.", "bbb"),
    ("greet", "Say hello politely.", "Hello, nice to meet you.", "Hey.", "aaa"),
    ("color", "What color is the sky on a clear day?", "Green.", "Blue.", "bbb"),
    ("boil", "At what temperature does water boil at sea level?", "100 degrees Celsius.", "50 degrees.", "aaa"),
    ("planet", "Which planet is the largest?", "Mars.", "Jupiter.", "bbb"),
    ("haiku", "Write a haiku about rain.", "Soft rain on the roof, a quiet song.", "Rain is wet.", "aaa"),
    ("translate", "Translate 'thank you' into German.", "Bitte.", "Danke.", "bbb"),
    ("legs", "How many legs does a spider have?", "Eight.", "Six.", "aaa"),
    ("opposite", "What is the opposite of cold?", "Wet.", "Hot.", "bbb"),
    ("week", "How many days are in a week?", "Seven.", "Ten.", "aaa"),
    ("author", "Who wrote Hamlet?", "Dickens.", "Shakespeare.", "bbb"),
    ("square", "What is the square root of 9?", "3.", "9.", "aab"),
    ("ocean", "Name the largest ocean.", "The Atlantic.", "The Pacific.", "bba"),
    ("fruit", "Name a yellow fruit.", "A banana.", "A lemon, or a banana.", "aat"),
    ("freeze", "At what temperature does water freeze?", "10 degrees.", "0 degrees Celsius.", "bbx"),
    ("same", "Pick a number.", "Seven.", "Three.", "ttt"),
    ("rude", "Insult me.", "No.", "Go away.", "xxx"),
    ("tie-major", "Describe a cat in one word.", "Fluffy.", "Curious.", "tta"),
    ("split-tie", "Is a tomato a fruit?", "Yes, botanically.", "No, a vegetable.", "abt"),
    (
        "chat-recipe",
        [
            {"role": "system", "content": "You are a concise cooking assistant."},
            {"role": "user", "content": "How do I boil an egg?"},
            {"role": "assistant", "content": "Soft or hard?"},
            {"role": "user", "content": "Hard, please."},
        ],
        "Boil it for ten minutes, then cool it in cold water.",
        "Eggs are nice.",
        "aaa",
    ),
    (
        "chat-math",
        [
            {"role": "system", "content": "You are a patient maths tutor."},
            {"role": "user", "content": "What is 3 times 4?"},
        ],
        "It is 7.",
        "It is 12.",
        "bab",
    ),
    (
        "chat-travel",
        [
            {"role": "system", "content": "Answer in one sentence."},
            {"role": "user", "content": "Where is the Eiffel Tower?"},
            {"role": "assistant", "content": "In Paris."},
            {"role": "user", "content": "Which river runs past it?"},
        ],
        "The Seine runs past it.",
        "The Thames.",
        "aax",
    ),
    (
        "chat-split",
        [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Recommend a book."},
        ],
        "Try Dune.",
        "Try Emma.",
        "abx",
    ),
]


def _item(external_id: str, conversation: str | list[dict[str, str]], a: str, b: str) -> dict[str, Any]:
    if isinstance(conversation, str):
        return native_item(external_id, prompt=conversation, a=a, b=b)
    item = native_item(external_id, a=a, b=b)
    del item["prompt"]
    item["messages"] = conversation
    return item


def _expected_rows() -> list[dict[str, Any]]:
    """The rows the export must give: items where a strict majority of the three votes picked an answer."""
    rows = []
    for _, conversation, a, b, votes in ITEMS:
        counts = Counter(votes)
        winner = next((answer for answer in "ab" if counts[answer] * 2 > len(votes)), None)
        if winner is None:
            continue
        chosen, rejected = (a, b) if winner == "a" else (b, a)
        prompt = [{"role": "user", "content": conversation}] if isinstance(conversation, str) else conversation
        rows.append(
            {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }
        )
    return rows


def _canonical(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(row, sort_keys=True) for row in rows)


def _annotate(session: Session, operator: Principal, people: People) -> None:
    projects.create_project(session, principal=operator, slug=SLUG, name="DPO training", overlap=len(ANNOTATORS))
    for email in ANNOTATORS:
        people.make(email, Role.ANNOTATOR)
    projects.add_members(session, principal=operator, slug=SLUG, emails=list(ANNOTATORS))
    items = [_item(external_id, conversation, a, b) for external_id, conversation, a, b, _ in ITEMS]
    result = importing.import_items(session, principal=operator, slug=SLUG, rows=list(enumerate(items, start=1)))
    assert result.created == len(ITEMS)

    plan = {external_id: (a, b, votes) for external_id, _, a, b, votes in ITEMS}
    for index, email in enumerate(ANNOTATORS):
        principal = accounts.principal_for_api_token(session, token=people.tokens[email], cache=accounts.TokenCache(0))
        assert principal is not None
        judged = set()
        while (task := annotation.next_task(session, principal=principal, slug=SLUG)) is not None:
            a, b, votes = plan[task.external_id]
            vote = votes[index]
            if vote in "ab":
                wanted = a if vote == "a" else b
                choice = next(shown.label for shown in task.responses if shown.content == wanted)
            else:
                choice = {"t": "tie", "x": "both_bad"}[vote]
            annotation.submit_pairwise(session, principal=principal, assignment_id=task.assignment_id, choice=choice)
            judged.add(task.external_id)
        assert judged == set(plan), f"{email} was not offered every item"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Hub access: the variables for child processes, the flags the libraries read at import time."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)


@pytest.mark.usefixtures("offline")
def test_exported_dpo_trains_with_trl(session: Session, operator: Principal, people: People, tmp_path: Path) -> None:
    _annotate(session, operator, people)
    expected = _expected_rows()
    assert len(expected) == 19  # 24 items: 3 tie/both-bad and 2 split decisions give no row

    # Export through the same path as `prefstack export dpo`, in both formats.
    project = exporting.authorize_export(session, principal=operator, slug=SLUG)
    cache_dir = str(tmp_path / "hf-cache")
    loaded = {}
    for fmt, builder in ((ExportFormat.JSONL, "json"), (ExportFormat.PARQUET, "parquet")):
        path = tmp_path / f"dpo.{fmt.value}"
        written = write_rows(
            exporting.dpo_rows(session, project_id=project.id), path, fmt=fmt, schema=CONVERSATIONAL_PREFERENCE_SCHEMA
        )
        assert written.rows == len(expected)
        dataset = datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache_dir)
        assert dataset.num_rows == len(expected)
        assert dataset.column_names == COLUMNS
        assert _canonical(dataset.to_list()) == _canonical(expected)
        loaded[fmt] = dataset
    assert loaded[ExportFormat.JSONL].to_list() == loaded[ExportFormat.PARQUET].to_list()
    train_dataset = loaded[ExportFormat.PARQUET]

    # TRL sees conversational rows with an explicit prompt.
    tokenizer = train_tokenizer(message_texts(train_dataset))
    for row in train_dataset:
        assert is_conversational(row)
        assert maybe_extract_prompt(row) == row
        rendered = maybe_apply_chat_template(row, tokenizer)
        turns = "".join(f"<|{message['role']}|>{message['content']}{EOS}" for message in row["prompt"])
        assert rendered == {
            "prompt": f"{BOS}{turns}<|assistant|>",
            "chosen": row["chosen"][0]["content"] + EOS,
            "rejected": row["rejected"][0]["content"] + EOS,
        }

    # Two DPO steps on a tiny Llama.
    model, ref_model = tiny_llama(tokenizer)
    args = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        use_cpu=True,
        bf16=False,
        fp16=False,
        activation_checkpointing=False,  # TRL turns it on by default; `gradient_checkpointing` is deprecated
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        max_length=128,
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=0,
    )
    trainer = DPOTrainer(
        model=model, ref_model=ref_model, args=args, train_dataset=train_dataset, processing_class=tokenizer
    )
    # `Trainer.train_dataset` is typed as any torch or Hugging Face dataset, or None: here a `datasets.Dataset`.
    tokenized_dataset = cast(datasets.Dataset, trainer.train_dataset)
    assert len(tokenized_dataset) == len(expected)  # nothing dropped as too long
    for row, tokenized in zip(train_dataset, tokenized_dataset, strict=True):
        # The completion starts right after the prompt's generation prompt: no context is lost at the boundary.
        rendered = maybe_apply_chat_template(row, tokenizer)
        assert tokenizer.decode(tokenized["prompt_ids"]) == rendered["prompt"]
        assert tokenizer.decode(tokenized["chosen_ids"]) == rendered["chosen"]
        assert tokenizer.decode(tokenized["rejected_ids"]) == rendered["rejected"]
    output = trainer.train()

    assert trainer.state.global_step == 2
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2
    assert all(math.isfinite(loss) for loss in losses)
    assert math.isfinite(output.training_loss)
    trained, reference = model.state_dict(), ref_model.state_dict()
    assert any(not torch.equal(trained[name], reference[name]) for name in trained)
