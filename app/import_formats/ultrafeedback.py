"""UltraFeedback-style rows: an instruction, several completions with model names and per-aspect ratings.

`{"instruction": "...", "completions": [{"model": "...", "response": "...", "annotations":
{"helpfulness": {"Rating": "4", "Rationale": "..."}, ...}, "overall_score": 7.5}, ...]}`.
The completions become the responses; the ratings (and `overall_score` / `fine-grained_score`)
become one scores verdict whose judge is the row's `annotator` (UltraFeedback's was GPT-4), and
when every completion has an overall score, the preference it implies (a choice for two
completions, a ranking for more) becomes a second verdict by `<annotator>/overall`.
"""

from __future__ import annotations

import math
from typing import Any

from app.import_formats.rows import ExternalVerdict, RowError, SourceRow, content_id, is_text, json_type, row_error

NAME = "ultrafeedback"
SOURCE = "ultrafeedback"
DEFAULT_JUDGE = "gpt-4"
OVERALL_JUDGE_SUFFIX = "/overall"
"""The overall choice (or ranking) is stored under `<judge>/overall`: one verdict per item, source and judge."""
_OVERALL_KEYS = ("overall_score", "fine-grained_score")
_NOT_RATED = frozenset({"N/A", "n/a", ""})
_ROW_METADATA_KEYS = ("source",)


def matches(record: dict[str, Any]) -> bool:
    return "instruction" in record and "completions" in record


def convert(number: int, record: Any) -> SourceRow | RowError:
    """One row as an item with a response per completion and the ratings as one verdict."""
    if not isinstance(record, dict):
        return row_error(number, record, (f"expected an object, got {json_type(record)}", "record"))
    problems: list[tuple[str, str | None]] = []
    instruction = record.get("instruction")
    if not is_text(instruction):
        problems.append(("must be a non-empty string", "instruction"))
    completions = record.get("completions")
    if not isinstance(completions, list) or not completions:
        problems.append(("must be a non-empty list of {model, response, annotations}", "completions"))
        completions = []
    responses: list[dict[str, Any]] = []
    scores: dict[str, dict[str, float | None]] = {}
    for index, completion in enumerate(completions):
        where = f"completions[{index}]"
        if not isinstance(completion, dict):
            problems.append((f"expected an object, got {json_type(completion)}", where))
            continue
        model = completion.get("model", "")
        if not isinstance(model, str):
            problems.append(("must be a string", f"{where}.model"))
        responses.append({"content": completion.get("response"), "model": model})
        ratings = _ratings(completion, where, problems)
        if ratings:
            scores[str(index)] = ratings
    if problems:
        return row_error(number, record, *problems)
    metadata = {key: record[key] for key in _ROW_METADATA_KEYS if is_text(record.get(key))}
    item: dict[str, Any] = {
        "external_id": record.get("external_id", record.get("id"))
        or content_id(SOURCE, {"instruction": instruction, "responses": responses}),
        "prompt": instruction,
        "responses": responses,
    }
    if metadata:
        item["metadata"] = metadata
    judge = record.get("annotator") if is_text(record.get("annotator")) else DEFAULT_JUDGE
    verdicts: tuple[ExternalVerdict, ...] = ()
    if scores:
        verdicts = (ExternalVerdict(source=SOURCE, judge=str(judge), kind="scores", payload={"scores": scores}),)
        overall = _overall_verdict(scores, len(responses), f"{judge}{OVERALL_JUDGE_SUFFIX}")
        if overall is not None:
            verdicts += (overall,)
    return SourceRow(number, item, verdicts, record=record)


def _overall_verdict(scores: dict[str, dict[str, float | None]], responses: int, judge: str) -> ExternalVerdict | None:
    """The preference overall scores imply: a choice for two responses, a ranking for more; None if one is missing."""
    for key in _OVERALL_KEYS:
        overall = [
            score for position in range(responses) if (score := scores.get(str(position), {}).get(key)) is not None
        ]
        if responses < 2 or len(overall) != responses:
            continue
        if responses == 2:
            first, second = overall
            choice: int | str = "tie" if first == second else (0 if first > second else 1)
            return ExternalVerdict(SOURCE, judge, "choice", {"choice": choice})
        groups: dict[float, list[int]] = {}
        for position, score in enumerate(overall):
            groups.setdefault(score, []).append(position)
        return ExternalVerdict(
            SOURCE, judge, "ranking", {"ranking": [groups[score] for score in sorted(groups, reverse=True)]}
        )
    return None


def _ratings(completion: dict[str, Any], where: str, problems: list[tuple[str, str | None]]) -> dict[str, float | None]:
    ratings: dict[str, float | None] = {}
    annotations = completion.get("annotations", {})
    if not isinstance(annotations, dict):
        problems.append((f"expected an object of aspects, got {json_type(annotations)}", f"{where}.annotations"))
        return ratings
    for aspect, raw in annotations.items():
        # some releases wrap each aspect's annotation in a list of one
        annotation = raw[0] if isinstance(raw, list) and len(raw) == 1 else raw
        rating = annotation.get("Rating") if isinstance(annotation, dict) else annotation
        try:
            ratings[aspect] = _number(rating)
        except ValueError:
            problems.append(("Rating must be a number or 'N/A'", f"{where}.annotations.{aspect}"))
    for key in _OVERALL_KEYS:
        if key in completion:
            try:
                ratings[key] = _number(completion[key])
            except ValueError:
                problems.append(("must be a number", f"{where}.{key}"))
    return ratings


def _number(value: Any) -> float | None:
    """A rating as a float, None when not rated; ValueError when it is not a rating at all."""
    if value is None or (isinstance(value, str) and value.strip() in _NOT_RATED):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number
