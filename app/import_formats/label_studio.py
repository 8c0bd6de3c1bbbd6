"""Label Studio JSON exports of pairwise and ranker projects: tasks with their annotations.

A task's `data` holds the conversation (`prompt` or `messages`) and the responses: `answer1`,
`answer2` (the RLHF pairwise template; also `text1`, `text2`) or `items`, a list of
`{"id", "body"}` for a Ranker. Each annotation that was not cancelled becomes a verdict of
the annotator who made it: a Pairwise result `{"selected": "left" | "right"}` a choice, a
Ranker result `{"ranker": {"<list name>": [ids, best first]}}` a ranking.
"""

from __future__ import annotations

from typing import Any

from app.import_formats.rows import ExternalVerdict, RowError, SourceRow, is_text, json_type, row_error

NAME = "label-studio"
SOURCE = "label-studio"
_PAIR_KEYS = (("answer1", "answer2"), ("text1", "text2"))
_SIDES = {"left": 0, "right": 1}
_ITEM_TEXT_KEYS = ("body", "text", "content")
_METADATA_KEYS = ("language", "market", "category")

Problems = list[tuple[str, str | None]]


def matches(record: dict[str, Any]) -> bool:
    return isinstance(record.get("data"), dict) and ("annotations" in record or "id" in record)


def convert(number: int, record: Any) -> SourceRow | RowError:
    """One task as an item; its annotations as verdicts in the item's response positions."""
    if not isinstance(record, dict) or not isinstance(record.get("data"), dict):
        return row_error(number, record, ("expected a task object with 'data'", "data"))
    data: dict[str, Any] = record["data"]
    problems: Problems = []
    responses, item_ids = _responses(data, problems)
    item: dict[str, Any] = {"external_id": _external_id(record, data, problems), "responses": responses}
    if "messages" in data:
        item["messages"] = data["messages"]
    elif is_text(data.get("prompt")):
        item["prompt"] = data["prompt"]
    else:
        problems.append(("a task needs 'prompt' (a string) or 'messages'", "data.prompt"))
    given = data.get("metadata")
    metadata = {key: data[key] for key in _METADATA_KEYS if key in data}
    if isinstance(given, dict):
        metadata.update(given)
    if metadata:
        item["metadata"] = metadata
    verdicts = _verdicts(record.get("annotations", []), item_ids, problems)
    if problems:
        return row_error(number, record, *problems)
    return SourceRow(number, item, tuple(verdicts), record=record)


def _external_id(record: dict[str, Any], data: dict[str, Any], problems: Problems) -> Any:
    if "external_id" in data:
        return data["external_id"]
    if isinstance(record.get("id"), int | str) and not isinstance(record.get("id"), bool):
        return f"{SOURCE}-{record['id']}"
    problems.append(("a task needs 'id' or 'data.external_id'", "id"))
    return None


def _responses(data: dict[str, Any], problems: Problems) -> tuple[list[dict[str, Any]], list[str]]:
    if "items" in data:
        raw = data["items"]
        if not isinstance(raw, list) or not raw:
            problems.append(("must be a list of {id, body}", "data.items"))
            return [], []
        responses, ids = [], []
        for index, entry in enumerate(raw):
            where = f"data.items[{index}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str | int):
                problems.append(("expected an object with 'id' and 'body'", where))
                continue
            text_key = next((key for key in _ITEM_TEXT_KEYS if key in entry), "body")
            responses.append({"content": entry.get(text_key), "model": entry.get("model", "")})
            ids.append(str(entry["id"]))
        return responses, ids
    for left, right in _PAIR_KEYS:
        if left in data or right in data:
            return [{"content": data.get(left)}, {"content": data.get(right)}], ["left", "right"]
    problems.append(("a task needs 'answer1' and 'answer2' (pairwise) or 'items' (ranker)", "data"))
    return [], []


def _verdicts(annotations: Any, item_ids: list[str], problems: Problems) -> list[ExternalVerdict]:
    if not isinstance(annotations, list):
        problems.append((f"expected a list, got {json_type(annotations)}", "annotations"))
        return []
    verdicts = []
    for index, annotation in enumerate(annotations):
        where = f"annotations[{index}]"
        if not isinstance(annotation, dict):
            problems.append((f"expected an object, got {json_type(annotation)}", where))
            continue
        if annotation.get("was_cancelled"):
            continue
        judge = f"{SOURCE}:{_annotator(annotation.get('completed_by'))}"
        for result_index, result in enumerate(annotation.get("result") or []):
            verdict = _verdict(result, judge, item_ids, f"{where}.result[{result_index}]", problems)
            if verdict is not None:
                verdicts.append(verdict)
    return verdicts


def _verdict(result: Any, judge: str, item_ids: list[str], where: str, problems: Problems) -> ExternalVerdict | None:
    value = result.get("value") if isinstance(result, dict) else None
    if not isinstance(value, dict):
        problems.append(("expected a result object with a 'value'", where))
        return None
    if "selected" in value:
        if value["selected"] not in _SIDES or item_ids != ["left", "right"]:
            problems.append(("selected must be 'left' or 'right' on a pairwise task", f"{where}.value.selected"))
            return None
        return ExternalVerdict(SOURCE, judge, "choice", {"choice": _SIDES[value["selected"]]})
    if "ranker" in value:
        lists = value["ranker"]
        order = next(iter(lists.values()), None) if isinstance(lists, dict) and len(lists) == 1 else None
        position_of = {item_id: position for position, item_id in enumerate(item_ids)}
        if not isinstance(order, list) or sorted(map(str, order)) != sorted(item_ids):
            problems.append(("must rank every item of data.items exactly once", f"{where}.value.ranker"))
            return None
        return ExternalVerdict(SOURCE, judge, "ranking", {"ranking": [[position_of[str(key)]] for key in order]})
    return None  # other controls of the labeling config (comments, ratings) carry no preference


def _annotator(completed_by: Any) -> str:
    if isinstance(completed_by, dict):
        return str(completed_by.get("email") or completed_by.get("id") or "unknown")
    return "unknown" if completed_by is None else str(completed_by)
