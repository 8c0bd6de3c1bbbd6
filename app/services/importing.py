"""Importing items, all or nothing by default, from any format app.import_formats reads."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import IO, Any, TypeGuard

from sqlalchemy.orm import Session

from app.errors import InvalidInput, Problem
from app.import_formats import lines as source_lines
from app.import_formats.rows import ReadRow, RowError, SourceRow
from app.import_formats.verdicts import verdict_problems
from app.principal import Principal
from app.services.project_options import response_count_range
from app.services.projects import PAIRWISE_RESPONSES, cached_options, get_project
from preference_store import items as item_store
from preference_store import projects as project_store
from preference_store import queue
from preference_store.engine import begin_write
from preference_store.items import NewItem, NewResponse
from preference_store.queue import PRIORITY_LIMIT

MAX_TEXT_CHARS = 200_000
"""The per-field limit: a prompt, a message or a response longer than this is refused (docs/formats.md)."""
MAX_EXTERNAL_ID_CHARS = 200
MAX_PROBLEMS_REPORTED = 200
ROLES = frozenset({"system", "user", "assistant"})
INSERT_BATCH = 1000
PROGRESS_EVERY = 500


class OnError(StrEnum):
    """What a bad row does: refuse the whole import, or go to the rejects while the good rows go in."""

    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: int
    unchanged: int
    rejected: int = 0
    verdicts: int = 0
    """External verdicts read with the imported rows and checked (they are not stored yet)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row left out by `on_error=skip`, with why."""

    number: int
    problems: tuple[Problem, ...]
    record: Any

    def as_json(self) -> dict[str, Any]:
        """The rejects-file line: the row's number, its reasons and the record as the source had it."""
        reasons = [
            f"{problem.field}: {problem.message}" if problem.field else problem.message for problem in self.problems
        ]
        return {"line": self.number, "reasons": reasons, "record": self.record}


def parse_jsonl(stream: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """Yield (line number, decoded JSON, or a RowError for a line that is not JSON) for each non-blank line."""
    return source_lines.json_lines(stream)


def import_items(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    rows: Iterable[tuple[int, Any] | ReadRow],
    on_error: OnError = OnError.FAIL,
    reject: Callable[[Rejected], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Validate every row, then store the new items in one transaction, or none at all.

    Rows are (row number, decoded native JSON value, a Problem or a RowError), or what
    app.import_formats reads. An item whose external_id is already in the project with the
    same content is left as it is; with other content it is an error. With `on_error=skip`
    bad rows go to `reject` instead and the good ones are stored; `progress` hears how many
    rows were read.
    """
    principal.require_staff()
    project = get_project(session, principal=principal, slug=slug)
    response_counts = response_count_range(project.kind)
    sensitive_categories = set(cached_options(project).sensitive_categories)
    session.rollback()  # validate outside any transaction: writers wait only for the insert
    skipping = on_error is OnError.SKIP
    problems: list[Problem] = []
    rejected = 0
    items: list[tuple[int, NewItem]] = []
    seen: dict[str, int] = {}
    verdicts = 0

    def refuse(number: int, row_problems: list[Problem], record: Any) -> None:
        nonlocal rejected
        if skipping:
            rejected += 1
            if reject is not None:
                reject(Rejected(number, tuple(row_problems), record))
        else:
            problems.extend(row_problems)

    read = 0
    for read, row in enumerate(_source_rows(rows), start=1):
        if progress is not None and read % PROGRESS_EVERY == 0:
            progress(read)
        if isinstance(row, RowError):
            refuse(row.number, list(row.problems), row.record)
            continue
        item, item_problems = validate_item(row.item, row=row.number, response_counts=response_counts)
        if item is not None:
            for index, verdict in enumerate(row.verdicts):
                item_problems.extend(
                    verdict_problems(verdict, responses=len(item.responses), row=row.number, index=index)
                )
            if item.external_id in seen:
                item_problems.append(
                    Problem(f"duplicate of line {seen[item.external_id]}", field="external_id", row=row.number)
                )
        if item is None or item_problems:
            refuse(row.number, item_problems, row.record)
            continue
        seen[item.external_id] = row.number
        verdicts += len(row.verdicts)
        if not item.is_sensitive and item.metadata.get("category") in sensitive_categories:
            item = replace(item, is_sensitive=True)
        items.append((row.number, item))
    if progress is not None:
        progress(read)
    if not problems and not items and not rejected:
        problems.append(Problem("no items found"))
    if problems:
        _reject(problems)
    begin_write(session)
    project = get_project(session, principal=principal, slug=slug)
    existing = item_store.existing_content_hashes(
        session, project_id=project.id, external_ids=[item.external_id for _, item in items]
    )
    new_items = []
    unchanged = 0
    for row_number, item in items:
        stored_hash = existing.get(item.external_id)
        if stored_hash is None:
            new_items.append(item)
        elif stored_hash == item.content_hash:
            unchanged += 1
        else:
            refuse(
                row_number,
                [
                    Problem(
                        f"'{item.external_id}' is already in the project with different content",
                        field="external_id",
                        row=row_number,
                    )
                ],
                native_item(item),
            )
    if problems:
        session.rollback()
        _reject(problems)
    for start in range(0, len(new_items), INSERT_BATCH):
        batch = new_items[start : start + INSERT_BATCH]
        item_store.insert_items(session, project_id=project.id, items=batch, open_slots=project.overlap)
        inserted = project_store.item_ids_by_external_id(
            session, project_id=project.id, external_ids=[item.external_id for item in batch]
        )
        queue.reopen_passed(session, project_id=project.id, item_ids=list(inserted.values()))
    session.commit()
    return ImportResult(created=len(new_items), unchanged=unchanged, rejected=rejected, verdicts=verdicts)


def _source_rows(rows: Iterable[tuple[int, Any] | ReadRow]) -> Iterator[ReadRow]:
    for row in rows:
        if isinstance(row, SourceRow | RowError):
            yield row
        else:
            number, value = row
            if isinstance(value, RowError):
                yield value
            elif isinstance(value, Problem):
                yield RowError(number, (value,), record=None)
            else:
                yield SourceRow(number, value, record=value)


def native_item(item: NewItem) -> dict[str, Any]:
    """A validated item back in the native import shape."""
    return {
        "external_id": item.external_id,
        "messages": item.messages,
        "responses": [
            {"content": response.content, "model": response.model_name, "metadata": response.metadata}
            for response in item.responses
        ],
        "metadata": item.metadata,
        "priority": item.priority,
    }


def _reject(problems: list[Problem]) -> None:
    shown = problems[:MAX_PROBLEMS_REPORTED]
    more = f" (first {len(shown)} shown)" if len(problems) > len(shown) else ""
    raise InvalidInput(
        "invalid_import",
        f"{len(problems)} problem(s) found{more}; nothing was imported. First: {problems[0]}",
        field=problems[0].field,
        row=problems[0].row,
        problems=shown,
    )


def validate_item(
    value: Any, *, row: int, response_counts: tuple[int, int] = (PAIRWISE_RESPONSES, PAIRWISE_RESPONSES)
) -> tuple[NewItem | None, list[Problem]]:
    """Check one native-format item; returns the item (if it could be built) and its problems."""
    problems: list[Problem] = []

    def problem(field: str, message: str) -> None:
        problems.append(Problem(message, field=field, row=row))

    if not isinstance(value, dict):
        problem("item", f"expected a JSON object, got {_json_type(value)}")
        return None, problems
    known = {"external_id", "prompt", "messages", "responses", "metadata", "priority"}
    for key in sorted(set(value) - known):
        problem(key, "unknown field (expected external_id, prompt or messages, responses, metadata, priority)")
    priority = value.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > PRIORITY_LIMIT:
        problem("priority", f"must be a whole number from -{PRIORITY_LIMIT} to {PRIORITY_LIMIT}")
        priority = 0

    external_id = value.get("external_id")
    if isinstance(external_id, int) and not isinstance(external_id, bool):
        external_id = str(external_id)
    if not isinstance(external_id, str) or not external_id.strip():
        problem("external_id", "required, a non-empty string")
        external_id = None
    elif len(external_id) > MAX_EXTERNAL_ID_CHARS:
        problem("external_id", f"longer than {MAX_EXTERNAL_ID_CHARS} characters")

    messages = _validate_conversation(value, problem)
    responses = _validate_responses(value.get("responses"), problem, response_counts)
    metadata = value.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        problem("metadata", f"expected an object, got {_json_type(metadata)}")
        metadata = {}
    if not isinstance(metadata.get("sensitive", False), bool):
        problem("metadata.sensitive", "must be true or false")
    if "language" in metadata and not _is_text(metadata["language"]):
        problem("metadata.language", "must be a language tag such as 'th' or 'id-ID'")
    if problems or external_id is None or messages is None or responses is None:
        return None, problems
    return (
        NewItem(
            external_id=external_id.strip(),
            messages=messages,
            responses=responses,
            metadata=metadata,
            content_hash=_content_hash(messages, responses, metadata),
            priority=priority,
            is_sensitive=metadata.get("sensitive") is True
            or any(r.metadata.get("sensitive") is True for r in responses),
        ),
        problems,
    )


def _validate_conversation(value: dict[str, Any], problem: Any) -> list[dict[str, Any]] | None:
    has_prompt, has_messages = "prompt" in value, "messages" in value
    if has_prompt == has_messages:
        problem("prompt", "give exactly one of 'prompt' (a string) or 'messages' (a list)")
        return None
    if has_prompt:
        prompt = value["prompt"]
        if not _is_text(prompt):
            problem("prompt", "must be a non-empty string")
            return None
        if len(prompt) > MAX_TEXT_CHARS:
            problem("prompt", f"longer than {MAX_TEXT_CHARS} characters")
            return None
        return [{"role": "user", "content": prompt}]
    raw = value["messages"]
    if not isinstance(raw, list) or not raw:
        problem("messages", "must be a non-empty list of {role, content}")
        return None
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            problem(where, f"expected an object, got {_json_type(message)}")
            continue
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            problem(f"{where}.role", "must be one of system, user, assistant")
        if not _is_text(content):
            problem(f"{where}.content", "must be a non-empty string")
        elif len(content) > MAX_TEXT_CHARS:
            problem(f"{where}.content", f"longer than {MAX_TEXT_CHARS} characters")
        messages.append({"role": role, "content": content})
    if messages and messages[-1].get("role") != "user":
        problem("messages", "the conversation must end with a user turn (the responses answer it)")
    return messages


def _validate_responses(raw: Any, problem: Any, response_counts: tuple[int, int]) -> list[NewResponse] | None:
    if not isinstance(raw, list):
        problem("responses", "required, a list of {model, content}")
        return None
    fewest, most = response_counts
    if not fewest <= len(raw) <= most:
        expected = str(fewest) if fewest == most else f"{fewest} to {most}"
        problem("responses", f"expected {expected} responses, got {len(raw)}")
        return None
    responses: list[NewResponse] = []
    for index, response in enumerate(raw):
        where = f"responses[{index}]"
        if not isinstance(response, dict):
            problem(where, f"expected an object, got {_json_type(response)}")
            continue
        content = response.get("content")
        if not _is_text(content):
            problem(f"{where}.content", "must be a non-empty string")
            continue
        if len(content) > MAX_TEXT_CHARS:
            problem(f"{where}.content", f"longer than {MAX_TEXT_CHARS} characters")
            continue
        model = response.get("model", "")
        if model is None:
            model = ""
        if not isinstance(model, str):
            problem(f"{where}.model", "must be a string")
            continue
        metadata = response.get("metadata") or {}
        if not isinstance(metadata, dict):
            problem(f"{where}.metadata", "must be an object")
            continue
        extra = {key: val for key, val in response.items() if key not in ("content", "model", "metadata")}
        responses.append(NewResponse(content=content, model_name=model, metadata={**extra, **metadata}))
    return responses if len(responses) == len(raw) else None


def _content_hash(messages: list[dict[str, Any]], responses: list[NewResponse], metadata: dict[str, Any]) -> str:
    canonical = json.dumps(
        {
            "messages": messages,
            "responses": [[r.model_name, r.content, r.metadata] for r in responses],
            "metadata": metadata,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _is_text(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return names.get(type(value), type(value).__name__)
