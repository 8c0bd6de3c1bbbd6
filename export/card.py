"""The dataset card (`README.md`, Hugging Face card format) written with every export.

The card is rendered from counts only (`CardStats`): it never names an annotator or a
team. It holds no date, keys are sorted and floats rounded, so the same export gives the
same card byte for byte.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from export.manifest import SourceProject
from export.writers import ExportFormat, WrittenDataset, split_sort_key

CARD_NAME = "README.md"


@dataclass(frozen=True, slots=True)
class CardStats:
    """What the card says about an export: counts and parameters, no personal data.

    `languages` counts rows per language code (`unknown` for items without one),
    `annotators` and `teams` count distinct contributors, `agreement_*` summarise the
    share of annotators agreeing with each exported decision (None when not computed).
    """

    kind: str
    prefstack_version: str
    split_rows: Mapping[str, int] = field(default_factory=dict)
    languages: Mapping[str, int] = field(default_factory=dict)
    annotators: int = 0
    teams: int = 0
    agreement_mean: float | None = None
    agreement_median: float | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    sources: Sequence[SourceProject] = ()
    license: str = "other"


@dataclass(frozen=True, slots=True)
class _Kind:
    title: str
    summary: str
    task: str
    trainer: str | None
    config: str | None
    needs_ref_model: bool = False


_KINDS = {
    "dpo": _Kind(
        "Direct preference optimisation",
        "Preference pairs with an explicit prompt: `prompt`, `chosen`, `rejected`.",
        "text-generation",
        "DPOTrainer",
        "DPOConfig",
        needs_ref_model=True,
    ),
    "reward": _Kind(
        "Reward modelling",
        "Preference pairs with an explicit prompt (`prompt`, `chosen`, `rejected`) and an optional "
        "`margin` the reward loss subtracts.",
        "text-classification",
        "RewardTrainer",
        "RewardConfig",
    ),
    "kto": _Kind(
        "Kahneman-Tversky optimisation",
        "Unpaired completions with a desirability label: `prompt`, `completion`, `label`, "
        "already shuffled with a seed (KTO reads rows in file order).",
        "text-generation",
        "KTOTrainer",
        "KTOConfig",
        needs_ref_model=True,
    ),
    "sft": _Kind(
        "Supervised fine-tuning",
        "Conversations to imitate (`messages`), from annotators' rewrites and top-ranked responses.",
        "text-generation",
        "SFTTrainer",
        "SFTConfig",
    ),
    "rubric": _Kind(
        "Rubric scores",
        "One row per response with its aggregate score per criterion, for regression reward models "
        "and analysis. No TRL trainer reads it as it is.",
        "text-classification",
        None,
        None,
    ),
}

_SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
)


def size_category(rows: int) -> str:
    """The Hugging Face `size_categories` bucket of a row count."""
    for bound, name in _SIZE_CATEGORIES:
        if rows < bound:
            return name
    return "n>10M"


def render_card(stats: CardStats, written: WrittenDataset) -> str:
    """The dataset card: YAML front matter, then what the export is and how it was made.

    Args:
        stats: counts and parameters the exporter collected.
        written: the files of the export, for the `configs` front matter and the loading code.

    Returns:
        The card's Markdown text.

    Example:
        >>> text = render_card(CardStats(kind="dpo", prefstack_version="0.1.0", split_rows={"train": 9}), written)
        >>> text.splitlines()[0]
        '---'
    """
    kind = _KINDS.get(stats.kind, _Kind(stats.kind, f"`{stats.kind}` rows.", "text-generation", None, None))
    files = _files_per_split(written)
    total = sum(stats.split_rows.values())
    front: dict[str, Any] = {
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": name, "path": paths} for name, paths in files.items()],
            }
        ],
        "language": sorted(code for code in stats.languages if _is_language_code(code)),
        "license": stats.license,
        "pretty_name": f"prefstack {stats.kind} export",
        "size_categories": [size_category(total)],
        "tags": ["prefstack", stats.kind, "trl"],
        "task_categories": [kind.task],
    }
    if written.fmt is ExportFormat.HF:
        del front["configs"]  # a save_to_disk directory is read with load_from_disk, not data_files
    lines = ["---", *_yaml(front), "---", ""]
    lines += [f"# prefstack {stats.kind} export", ""]
    lines += [f"## Kind: {kind.title}", "", kind.summary, ""]
    lines += ["```python", *_usage(kind, written.fmt, files), "```", ""]
    lines += ["## Splits", "", "| split | rows |", "| --- | ---: |"]
    lines += [f"| {name} | {rows} |" for name, rows in sorted(stats.split_rows.items(), key=_split_key)]
    lines += [f"| **total** | {total} |", ""]
    lines += ["## Languages", ""]
    if stats.languages:
        lines += ["| language | rows |", "| --- | ---: |"]
        lines += [
            f"| {_cell(code)} | {count} |"
            for code, count in sorted(stats.languages.items(), key=lambda entry: (-entry[1], entry[0]))
        ]
    else:
        lines += ["No language recorded."]
    lines += ["", "## Filters and aggregation", ""]
    if stats.parameters:
        lines += ["| parameter | value |", "| --- | --- |"]
        lines += [f"| {_cell(key)} | {_cell(_json(stats.parameters[key]))} |" for key in sorted(stats.parameters)]
    else:
        lines += ["Defaults only."]
    lines += ["", "## Agreement", ""]
    if stats.agreement_mean is None and stats.agreement_median is None:
        lines += ["Not computed for this export."]
    else:
        lines += [
            "Share of annotators agreeing with each exported decision: "
            f"mean {_share(stats.agreement_mean)}, median {_share(stats.agreement_median)}."
        ]
    lines += ["", "## Annotators", ""]
    lines += [
        f"{stats.annotators} annotators in {stats.teams} teams contributed the judgments behind these rows. "
        "Their names and e-mail addresses are not part of this dataset."
    ]
    lines += ["", "## Source projects", ""]
    if stats.sources:
        lines += ["| project | guidelines versions |", "| --- | --- |"]
        lines += [
            f"| {_cell(source.slug)} | {_versions(source)} |"
            for source in sorted(stats.sources, key=lambda source: source.slug)
        ]
    else:
        lines += ["None recorded."]
    lines += ["", "## Licence", "", f"`{_cell(stats.license)}`", ""]
    lines += [
        "## Provenance",
        "",
        f"Exported by prefstack {_cell(stats.prefstack_version)}. `export.json` holds the exact parameters, "
        "the SHA-256 of every file and a content hash over the data files, so the export can be verified "
        "and reproduced.",
        "",
    ]
    return "\n".join(lines)


def write_card(directory: Path, stats: CardStats, written: WrittenDataset) -> Path:
    """Write the card as `README.md` in the export directory atomically; returns its path."""
    path = directory / CARD_NAME
    partial = directory / f".{CARD_NAME}.partial"
    try:
        partial.write_text(render_card(stats, written), encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _files_per_split(written: WrittenDataset) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {}
    for entry in written.files:
        if entry.split is not None and entry.rows is not None:
            files.setdefault(entry.split, []).append(entry.path)
    return {name: files[name] for name in sorted(files, key=split_sort_key)}


def _usage(kind: _Kind, fmt: ExportFormat, files: Mapping[str, list[str]]) -> list[str]:
    if fmt is ExportFormat.HF:
        lines = ["from datasets import load_from_disk", "", 'dataset = load_from_disk("path/to/this/directory")']
    else:
        builder = "json" if fmt is ExportFormat.JSONL else "parquet"
        data_files = ", ".join(f"{_json(name)}: {_json(paths)}" for name, paths in files.items())
        lines = [
            "from datasets import load_dataset",
            "",
            f'dataset = load_dataset("{builder}", data_dir="path/to/this/directory", data_files={{{data_files}}})',
        ]
    if kind.trainer is None or kind.config is None:
        return lines
    reference = "ref_model=ref_model, " if kind.needs_ref_model else ""
    return [
        *lines,
        "",
        f"from trl import {kind.config}, {kind.trainer}",
        "",
        f"trainer = {kind.trainer}(",
        f'    model=model, {reference}args={kind.config}(output_dir="out"),',
        '    train_dataset=dataset["train"], processing_class=tokenizer,',
        ")",
        "trainer.train()",
    ]


def _yaml(value: Mapping[str, Any], indent: str = "") -> list[str]:
    """Block YAML for nested dicts, lists and scalars; every string double-quoted (JSON-escaped)."""
    lines: list[str] = []
    for key, item in value.items():
        if isinstance(item, Mapping):
            lines += [f"{indent}{key}:", *_yaml(item, indent + "  ")]
        elif isinstance(item, list):
            if not item:
                lines.append(f"{indent}{key}: []")
            else:
                lines.append(f"{indent}{key}:")
                lines += _yaml_list(item, indent)
        else:
            lines.append(f"{indent}{key}: {_json(item)}")
    return lines


def _yaml_list(items: Iterable[Any], indent: str) -> list[str]:
    lines: list[str] = []
    for item in items:
        if isinstance(item, Mapping):
            body = _yaml(item, indent + "  ")
            lines += [f"{indent}- {body[0].lstrip()}", *body[1:]]
        elif isinstance(item, list):
            body = _yaml_list(item, indent + "  ")
            lines += [f"{indent}- {body[0].lstrip()}", *body[1:]] if body else [f"{indent}- []"]
        else:
            lines.append(f"{indent}- {_json(item)}")
    return lines


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _versions(source: SourceProject) -> str:
    first, last = source.first_guidelines_version, source.last_guidelines_version
    if first is None and last is None:
        return "n/a"
    return str(first) if first == last else f"{first} to {last}"


def _split_key(entry: tuple[str, int]) -> tuple[int, str]:
    return split_sort_key(entry[0])


def _is_language_code(code: str) -> bool:
    return code != "unknown" and code.replace("-", "").isalpha() and 2 <= len(code) <= 8
