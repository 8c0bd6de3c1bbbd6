"""The dataset card: valid Hugging Face front matter, the trainer call, counts only, same bytes every time."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from export.card import CardStats, render_card, size_category, write_card
from export.manifest import SourceProject
from export.writers import DataFile, ExportFormat, WrittenDataset

STATS = CardStats(
    kind="dpo",
    prefstack_version="0.1.0",
    split_rows={"test": 20, "train": 180},
    languages={"th": 120, "vi": 60, "unknown": 20},
    annotators=7,
    teams=2,
    agreement_mean=0.8125,
    agreement_median=1.0,
    parameters={"min_judgments": 2, "aggregation": "majority", "category": "gambling | ads"},
    sources=(SourceProject("moderation-th", 1, 3),),
    license="cc-by-4.0",
)
WRITTEN = WrittenDataset(
    directory=Path("."),
    fmt=ExportFormat.JSONL,
    files=(DataFile("train.jsonl", "train", 180), DataFile("test.jsonl", "test", 20)),
)


def _front_matter(card: str) -> dict[str, object]:
    head, separator, _ = card.removeprefix("---\n").partition("\n---\n")
    assert card.startswith("---\n")
    assert separator
    loaded = yaml.safe_load(head)
    assert isinstance(loaded, dict)
    return loaded


def test_front_matter_is_valid_hugging_face_yaml() -> None:
    front = _front_matter(render_card(STATS, WRITTEN))
    assert front == {
        "configs": [
            {
                "config_name": "default",
                "data_files": [
                    {"split": "train", "path": ["train.jsonl"]},
                    {"split": "test", "path": ["test.jsonl"]},
                ],
            }
        ],
        "language": ["th", "vi"],
        "license": "cc-by-4.0",
        "pretty_name": "prefstack dpo export",
        "size_categories": ["n<1K"],
        "tags": ["prefstack", "dpo", "trl"],
        "task_categories": ["text-generation"],
    }


def test_body_names_the_trainer_counts_filters_and_agreement() -> None:
    card = render_card(STATS, WRITTEN)
    assert "DPOTrainer(" in card
    assert "ref_model=ref_model" in card
    assert 'load_dataset("json"' in card
    assert "| train | 180 |" in card
    assert "| test | 20 |" in card
    assert "| **total** | 200 |" in card
    assert "| th | 120 |" in card
    assert "| min_judgments | 2 |" in card
    assert '| category | "gambling \\| ads" |' in card  # a pipe in a value never breaks the table
    assert "mean 0.812, median 1.000" in card
    assert "7 annotators in 2 teams" in card
    assert "| moderation-th | 1 to 3 |" in card
    assert "prefstack 0.1.0" in card


@pytest.mark.parametrize(
    ("kind", "trainer"), [("reward", "RewardTrainer("), ("kto", "KTOTrainer("), ("sft", "SFTTrainer(")]
)
def test_each_kind_names_its_trl_trainer(kind: str, trainer: str) -> None:
    card = render_card(CardStats(kind=kind, prefstack_version="0.1.0"), WRITTEN)
    assert trainer in card
    assert _front_matter(card)["tags"] == ["prefstack", kind, "trl"]


def test_rubric_card_names_no_trainer() -> None:
    card = render_card(CardStats(kind="rubric", prefstack_version="0.1.0"), WRITTEN)
    assert "Trainer(" not in card


def test_hf_card_loads_from_disk_and_has_no_data_files_config() -> None:
    written = WrittenDataset(Path("."), ExportFormat.HF, (DataFile("train/data-00000-of-00001.arrow", "train", 3),))
    card = render_card(STATS, written)
    assert "load_from_disk" in card
    assert "configs" not in _front_matter(card)


def test_card_holds_counts_only_no_personal_data() -> None:
    fields = set(CardStats.__dataclass_fields__)
    assert not {"annotator_names", "emails", "names", "annotator_ids"} & fields
    card = render_card(STATS, WRITTEN)
    assert "@" not in card


def test_card_is_deterministic_whatever_the_mapping_order(tmp_path: Path) -> None:
    shuffled = CardStats(
        **{
            **{name: getattr(STATS, name) for name in CardStats.__dataclass_fields__},
            "parameters": dict(reversed(list(STATS.parameters.items()))),
            "languages": dict(reversed(list(STATS.languages.items()))),
        }
    )
    first = write_card(tmp_path, STATS, WRITTEN).read_bytes()
    assert render_card(shuffled, WRITTEN).encode() == first
    assert not any(str(year) in first.decode() for year in range(2020, 2040))


@pytest.mark.parametrize(
    ("rows", "category"), [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (250_000, "100K<n<1M"), (10**8, "n>10M")]
)
def test_size_categories(rows: int, category: str) -> None:
    assert size_category(rows) == category
