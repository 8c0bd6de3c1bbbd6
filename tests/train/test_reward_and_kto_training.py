"""Reward (with margins) and KTO exports, end to end: judged through the API, written, loaded, trained by TRL."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

import datasets
import huggingface_hub.constants
import orjson
import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from transformers import LlamaForSequenceClassification, PreTrainedTokenizerFast
from trl import KTOConfig, KTOTrainer, RewardConfig, RewardTrainer

from app.principal import Principal
from app.services import exporting
from app.services.exporting import ExportRequest
from export.writers import ExportFormat
from preference_store.models import Role
from tests.conftest import People
from tests.train.tiny_model import tiny_config, tiny_llama, train_tokenizer

pytestmark = pytest.mark.train

SLUG = "rk-train"
LEAD = "rk-lead@example.org"
ANNOTATORS = ("rk-ann1@example.org", "rk-ann2@example.org", "rk-ann3@example.org")
STRENGTHS = ("much", "clearly", "slightly")

# (prompt, better answer, worse answer): every annotator prefers the better one, with their own strength.
ITEMS = [
    ("What is the capital of France?", "Paris.", "Lyon."),
    ("What is 2 + 2?", "4.", "5."),
    ("Say hello politely.", "Hello, nice to meet you.", "Hey."),
    ("What color is the sky on a clear day?", "Blue.", "Green."),
    ("Which planet is the largest?", "Jupiter.", "Mars."),
    ("How many legs does a spider have?", "Eight.", "Six."),
    ("Who wrote Hamlet?", "Shakespeare.", "Dickens."),
    ("Name the largest ocean.", "The Pacific.", "The Atlantic."),
]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Hub access: the variables for child processes, the flags the libraries read at import time."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)


def _judged_project(client: TestClient, people: People) -> None:
    people.make(LEAD, Role.LEAD)
    for email in ANNOTATORS:
        people.make(email, Role.ANNOTATOR)
    lead = people.headers(LEAD)
    body = {"slug": SLUG, "name": "Reward and KTO", "kind": "pairwise", "overlap": len(ANNOTATORS), "strength": True}
    assert client.post("/api/v1/projects", json=body, headers=lead).status_code == 201
    members = client.post(f"/api/v1/projects/{SLUG}/members", json={"emails": list(ANNOTATORS)}, headers=lead)
    assert members.status_code == 200, members.text
    items = [
        {
            "external_id": f"q{n}",
            "prompt": prompt,
            "responses": [{"model": "m0", "content": worse}, {"model": "m1", "content": better}],
        }
        for n, (prompt, better, worse) in enumerate(ITEMS)
    ]
    imported = client.post(f"/api/v1/projects/{SLUG}/items", content=orjson.dumps(items), headers=lead)
    assert imported.status_code == 200, imported.text
    better_of = {prompt: better for prompt, better, _ in ITEMS}
    for email, strength in zip(ANNOTATORS, STRENGTHS, strict=True):
        headers = people.headers(email)
        while (task := client.get(f"/api/v1/projects/{SLUG}/next", headers=headers)).status_code == 200:
            served = task.json()["item"]
            better = better_of[served["messages"][-1]["content"]]
            choice = next(r["label"] for r in served["responses"] if r["content"] == better)
            judged = client.post(
                f"/api/v1/assignments/{task.json()['assignment_id']}/judgment",
                json={"choice": choice, "strength": strength},
                headers=headers,
            )
            assert judged.status_code == 201, judged.text
        assert task.status_code == 204, task.text


def _export(session: Session, operator: Principal, out: Path, **request: Any) -> datasets.Dataset:
    summary = exporting.export_dataset(
        session, principal=operator, slug=SLUG, request=ExportRequest(**request), out=out, prefstack_version="test"
    )
    assert summary.split_rows["train"] > 0
    loaded = datasets.load_dataset(
        "parquet", data_files={"train": str(out / "train.parquet")}, cache_dir=str(out.parent / "cache")
    )
    assert isinstance(loaded, datasets.DatasetDict)
    return loaded["train"]


def _texts(rows: datasets.Dataset, columns: tuple[str, ...]) -> list[str]:
    return [message["content"] for row in rows for column in columns for message in row[column]]


def _common(tmp_path: Path, name: str) -> dict[str, Any]:
    return {
        "output_dir": str(tmp_path / name),
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "learning_rate": 1e-3,
        "use_cpu": True,
        "bf16": False,
        "fp16": False,
        "activation_checkpointing": False,
        "report_to": [],
        "logging_steps": 1,
        "save_strategy": "no",
        "max_length": 128,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        "seed": 0,
    }


def _check_two_steps(trainer: Any, training_loss: float) -> None:
    assert trainer.state.global_step == 2
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)
    assert math.isfinite(training_loss)


def _reward_model(tokenizer: PreTrainedTokenizerFast) -> LlamaForSequenceClassification:
    config = tiny_config(tokenizer, num_labels=1)
    torch.manual_seed(0)
    return LlamaForSequenceClassification(config)


@pytest.mark.usefixtures("offline")
def test_exported_reward_rows_with_margins_train_a_reward_model(
    client: TestClient, people: People, session: Session, operator: Principal, tmp_path: Path
) -> None:
    _judged_project(client, people)
    dataset = _export(session, operator, tmp_path / "reward", kind="reward", fmt=ExportFormat.PARQUET)
    assert dataset.column_names == ["prompt", "chosen", "rejected", "margin"]
    assert dataset.num_rows == len(ITEMS)
    # much 2.0, clearly 1.0, slightly 0.5: the mean over the three votes for the winner.
    assert dataset["margin"] == pytest.approx([3.5 / 3] * len(ITEMS))

    tokenizer = train_tokenizer(_texts(dataset, ("prompt", "chosen", "rejected")))
    model = _reward_model(tokenizer)
    args = RewardConfig(**_common(tmp_path, "reward-run"), center_rewards_coefficient=0.01)
    trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    # `Trainer.train_dataset` is typed as any torch or Hugging Face dataset, or None: here a `datasets.Dataset`.
    assert "margin" in cast(datasets.Dataset, trainer.train_dataset).column_names
    output = trainer.train()
    _check_two_steps(trainer, output.training_loss)


@pytest.mark.usefixtures("offline")
def test_exported_kto_rows_train_with_kto(
    client: TestClient, people: People, session: Session, operator: Principal, tmp_path: Path
) -> None:
    _judged_project(client, people)
    dataset = _export(session, operator, tmp_path / "kto", kind="kto", fmt=ExportFormat.PARQUET, seed=3)
    assert dataset.column_names == ["prompt", "completion", "label"]
    assert dataset.num_rows == 2 * len(ITEMS)
    assert sum(dataset["label"]) == len(ITEMS)
    labels = dataset["label"]
    assert any(labels[i] != labels[i + 1] for i in range(len(labels) - 1))  # shuffled, not True/False by item

    tokenizer = train_tokenizer(_texts(dataset, ("prompt", "completion")))
    model, ref_model = tiny_llama(tokenizer)
    args = KTOConfig(**_common(tmp_path, "kto-run"), desirable_weight=1.0, undesirable_weight=1.0)
    trainer = KTOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=dataset, processing_class=tokenizer)
    output = trainer.train()
    _check_two_steps(trainer, output.training_loss)
    trained, reference = model.state_dict(), ref_model.state_dict()
    assert any(not torch.equal(trained[name], reference[name]) for name in trained)
