"""OpenAI chat format: a `messages` list and the candidate completions.

Accepted rows:
- `{"messages": [..., user], "completions": [...]}` or `"choices": [...]`: each candidate is a string,
  an assistant message `{"role", "content"}`, a Chat Completions choice `{"message": {...}}` or a
  legacy choice `{"text": ...}`; a candidate's `model` (or the row's) names the model.
- `{"messages": [..., user, assistant]}`: the final assistant turn is the one response.
- OpenAI's preference fine-tuning rows `{"input": {"messages": [...]}, "preferred_output": [...],
  "non_preferred_output": [...]}`: two responses, the preference carried as a verdict.
"""

from __future__ import annotations

from typing import Any

from app.import_formats.rows import ExternalVerdict, RowError, SourceRow, content_id, json_type, row_error

NAME = "openai"
PREFERENCE_SOURCE = "openai-preference"
_CANDIDATE_KEYS = ("completions", "choices")
_KEPT_METADATA_KEY = "metadata"


def matches(record: dict[str, Any]) -> bool:
    if "responses" in record:
        return False
    return isinstance(record.get("messages"), list) or (
        isinstance(record.get("input"), dict) and "preferred_output" in record
    )


def convert(number: int, record: Any) -> SourceRow | RowError:
    """One chat row as a native item; problems name the row's own fields."""
    if not isinstance(record, dict):
        return row_error(number, record, (f"expected an object, got {json_type(record)}", "record"))
    if "preferred_output" in record:
        return _preference_row(number, record)
    problems: list[tuple[str, str | None]] = []
    messages = _messages(record.get("messages"), "messages", problems)
    candidates_key = next((key for key in _CANDIDATE_KEYS if key in record), None)
    responses: list[dict[str, Any]] = []
    if candidates_key is not None:
        raw = record[candidates_key]
        if not isinstance(raw, list) or not raw:
            problems.append(("must be a non-empty list of candidate completions", candidates_key))
        else:
            for index, candidate in enumerate(raw):
                response = _candidate(candidate, f"{candidates_key}[{index}]", record.get("model"), problems)
                if response is not None:
                    responses.append(response)
    elif messages and messages[-1].get("role") == "assistant":
        final = messages.pop()
        responses.append({"content": final["content"], "model": _model_name(record.get("model"))})
    else:
        problems.append(("give 'completions' or 'choices', or end 'messages' with the assistant's reply", "messages"))
    if problems:
        return row_error(number, record, *problems)
    return SourceRow(number, _item(record, messages, responses, prefix=NAME), record=record)


def _preference_row(number: int, record: dict[str, Any]) -> SourceRow | RowError:
    problems: list[tuple[str, str | None]] = []
    source_input = record.get("input")
    if not isinstance(source_input, dict):
        problems.append((f"expected an object with 'messages', got {json_type(source_input)}", "input"))
        source_input = {}
    messages = _messages(source_input.get("messages"), "input.messages", problems)
    responses = []
    for key in ("preferred_output", "non_preferred_output"):
        output = record.get(key)
        if not isinstance(output, list) or len(output) != 1:
            problems.append(("must be a list of one assistant message", key))
            continue
        response = _candidate(output[0], f"{key}[0]", record.get("model"), problems)
        if response is not None:
            responses.append(response)
    if problems:
        return row_error(number, record, *problems)
    verdict = ExternalVerdict(source=PREFERENCE_SOURCE, judge=PREFERENCE_SOURCE, kind="choice", payload={"choice": 0})
    return SourceRow(number, _item(record, messages, responses, prefix=NAME), (verdict,), record=record)


def _item(
    record: dict[str, Any], messages: list[dict[str, Any]], responses: list[dict[str, Any]], *, prefix: str
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "external_id": record.get("external_id", record.get("id"))
        or content_id(prefix, {"messages": messages, "responses": responses}),
        "messages": messages,
        "responses": responses,
    }
    if _KEPT_METADATA_KEY in record:
        item["metadata"] = record[_KEPT_METADATA_KEY]
    return item


def _messages(raw: Any, where: str, problems: list[tuple[str, str | None]]) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        problems.append(("must be a non-empty list of {role, content}", where))
        return []
    messages = []
    for index, message in enumerate(raw):
        if not isinstance(message, dict):
            problems.append((f"expected an object, got {json_type(message)}", f"{where}[{index}]"))
            continue
        role = "system" if message.get("role") == "developer" else message.get("role")
        content = _text_content(message.get("content"), f"{where}[{index}].content", problems)
        messages.append({"role": role, "content": content})
    return messages


def _candidate(
    candidate: Any, where: str, row_model: Any, problems: list[tuple[str, str | None]]
) -> dict[str, Any] | None:
    if isinstance(candidate, str):
        return {"content": candidate, "model": _model_name(row_model)}
    if not isinstance(candidate, dict):
        problems.append((f"expected a string or an object, got {json_type(candidate)}", where))
        return None
    message = candidate.get("message", candidate)
    if not isinstance(message, dict):
        problems.append((f"expected an object, got {json_type(message)}", f"{where}.message"))
        return None
    if "content" in message:
        if message.get("role", "assistant") != "assistant":
            problems.append(("a candidate must be an assistant message", f"{where}.role"))
            return None
        content = _text_content(message["content"], f"{where}.content", problems)
    elif "text" in candidate:
        content = _text_content(candidate["text"], f"{where}.text", problems)
    else:
        problems.append(("has no 'content', 'message' or 'text'", where))
        return None
    return {"content": content, "model": _model_name(candidate.get("model", row_model))}


def _text_content(content: Any, where: str, problems: list[tuple[str, str | None]]) -> Any:
    """A string as it is; a list of parts joined when every part is text (the Chat API's content parts)."""
    if not isinstance(content, list):
        return content
    texts = []
    for index, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            problems.append(("only text parts can be imported", f"{where}[{index}]"))
            return None
        texts.append(part["text"])
    return "".join(texts)


def _model_name(model: Any) -> Any:
    return "" if model is None else model
