"""Rubric rows: one per scored response, with per-criterion aggregates, for regression reward models."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from export.aggregate import rubric_scores
from export.formats import RowFormat, completion_row, item_kind, provenance, response_text
from preference_store.judgments import ItemJudgments


@dataclass(frozen=True, slots=True)
class RubricOptions:
    """Args:
    min_judgments: judgments that scored a response for it to give a row.
    scales: `(min, max)` per Likert criterion, for the 0..1 `overall`.
    row_format: conversational (default) or standard.
    provenance: add external_id, source, annotators, votes, agreement columns.
    """

    min_judgments: int = 1
    scales: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    row_format: RowFormat = RowFormat.CONVERSATIONAL
    provenance: bool = False


def build_rubric_rows(
    items: Iterable[ItemJudgments], options: RubricOptions | None = None, *, skips: Counter[str] | None = None
) -> Iterator[dict[str, Any]]:
    """One row per scored response: `prompt`, `completion`, `scores`, `overall`, `n_judgments`.

    `scores` maps each criterion to its aggregate: the mean (Likert), the share of True
    (binary) or the majority label (categorical). Items of other kinds are skipped.

    Args:
        items: judged items in a stable order.
        options: scales, threshold and format.
        skips: refused items and rows are counted here by reason.

    Returns:
        An iterator of rubric rows, responses in position order.

    Example:
        >>> next(build_rubric_rows(items, RubricOptions(scales={"helpful": (1, 5)})))["overall"]
        0.75
    """
    options = options or RubricOptions()
    skips = Counter() if skips is None else skips
    for item in items:
        if item_kind(item) != "rubric":
            skips["not_rubric"] += 1
            continue
        scores = rubric_scores(item.payloads, [response.position for response in item.responses], options.scales)
        for position, score in scores.items():
            if score.judgments < max(options.min_judgments, 1):
                skips["too_few_judgments"] += 1
                continue
            row = completion_row(item.messages, response_text(item, position), options.row_format, skips)
            if row is None:
                continue
            row["scores"] = {name: aggregate.value for name, aggregate in score.criteria.items()}
            row["overall"] = score.overall
            row["n_judgments"] = score.judgments
            if options.provenance:
                row |= provenance(item, source="rubric", agreement=None)
            yield row
