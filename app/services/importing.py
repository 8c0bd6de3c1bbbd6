"""Importing items, all or nothing by default, from any format app.import_formats reads."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import IO, Any, TypeGuard

import orjson
from sqlalchemy.orm import Session

from app.errors import InvalidInput, Problem
from app.import_formats import lines as source_lines
from app.import_formats.rows import NUL_MESSAGE, ExternalVerdict, ReadRow, RowError, SourceRow, VerdictKind, holds_nul
from app.import_formats.verdicts import verdict_key, verdict_problems
from app.principal import Principal
from app.services import audit
from app.services.project_options import response_count_range
from app.services.projects import PAIRWISE_RESPONSES, cached_options, get_project
from app.services.seen_ids import SeenIds
from preference_store import external_verdicts as verdict_store
from preference_store import items as item_store
from preference_store import queue
from preference_store.engine import begin_write
from preference_store.external_verdicts import NewVerdict
from preference_store.items import NewItem, NewResponse
from preference_store.queue import PRIORITY_LIMIT

MAX_TEXT_CHARS = 200_000
"""The per-field limit: a prompt, a message or a response longer than this is refused (docs/formats.md)."""
MAX_EXTERNAL_ID_CHARS = 200
MAX_PROBLEMS_REPORTED = 200
ROLES = frozenset({"system", "user", "assistant"})
INSERT_BATCH = 1000
PROGRESS_EVERY = 500
PREVIEW_ITEMS = 20
PREVIEW_CHARS = 200


class OnError(StrEnum):
    """What a bad row does: refuse the whole import, or go to the rejects while the good rows go in."""

    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class PreviewItem:
    """What the upload page shows of one item an import would store."""

    external_id: str
    prompt_excerpt: str
    responses: int
    language: str | None
    category: str | None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row left out by `on_error=skip` (or found bad by a dry run), with why."""

    number: int
    problems: tuple[Problem, ...]
    record: Any

    def as_json(self) -> dict[str, Any]:
        """The rejects-file line: the row's number, its reasons and the record as the source had it."""
        reasons = [
            f"{problem.field}: {problem.message}" if problem.field else problem.message for problem in self.problems
        ]
        return {"line": self.number, "reasons": reasons, "record": self.record}


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: int
    unchanged: int
    rejected: int = 0
    verdicts: int = 0
    """External verdicts stored with the rows (new ones and re-imported ones alike)."""
    preview: tuple[PreviewItem, ...] = ()
    """The first PREVIEW_ITEMS good items (dry runs only)."""
    rejects: tuple[Rejected, ...] = ()
    """The first MAX_PROBLEMS_REPORTED bad rows (dry runs and `on_error=skip`)."""
    dry_run: bool = False


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
    dry_run: bool = False,
    with_verdicts: bool = True,
) -> ImportResult:
    """Validate every row and store the new items (and their external verdicts) in one transaction, or none at all.

    Rows are (row number, decoded native JSON value, a Problem or a RowError), or what
    app.import_formats reads. Items are written in batches of INSERT_BATCH as they are read,
    inside one transaction that is rolled back if any row is refused, so memory stays flat.
    An item whose external_id is already in the project with the same content is left as it
    is (its verdicts are upserted); with other content it is an error. With `on_error=skip`
    bad rows go to `reject` instead and the good ones are stored; `progress` hears how many
    rows were read. `dry_run` checks everything a real import checks (duplicates in the file
    and against the database included), writes nothing, and returns the bad rows in
    `rejects` instead of raising, with a preview of the first good items; with
    `on_error=fail` a real import would refuse the file when `rejected` is not 0.
    `with_verdicts=False` ignores the verdicts a source carries.
    """
    principal.require_staff()
    project = get_project(session, principal=principal, slug=slug)
    run = _Import(
        session,
        project_id=project.id,
        open_slots=project.overlap,
        response_counts=response_count_range(project.kind),
        sensitive_categories=frozenset(cached_options(project).sensitive_categories),
        collecting=dry_run or on_error is OnError.SKIP,
        with_verdicts=with_verdicts,
        reject=reject,
    )
    session.rollback()
    if not dry_run:
        begin_write(session)
        item_store.use_fast_compression(session)
    # Rows written by this import cannot clash with later ones (in-file duplicates are caught
    # apart), so an empty project needs no lookups, which PostgreSQL would plan on stale statistics.
    run.had_items = item_store.project_has_items(session, project_id=run.project_id)
    try:
        with ExitStack() as writing:
            if not dry_run:
                run.writer = writing.enter_context(
                    item_store.ItemWriter(session, project_id=run.project_id, open_slots=run.open_slots)
                )
            read = 0
            for read, row in enumerate(_source_rows(rows), start=1):
                if progress is not None and read % PROGRESS_EVERY == 0:
                    progress(read)
                run.add(row)
            run.flush()
            run.settle()
        if progress is not None:
            progress(read)
    except BaseException:
        session.rollback()
        raise
    if not run.problems and not run.created and not run.unchanged and not run.rejected:
        run.problems.append(Problem("no items found"))
        run.problem_count += 1
    if run.problems or dry_run:
        session.rollback()
    if run.problems:
        _reject(run.problems, run.problem_count)
    if not dry_run:
        audit.record(
            session,
            principal=principal,
            action="import.commit",
            project_id=project.id,
            target_type="project",
            target_id=project.slug,
            details={
                "created": run.created,
                "unchanged": run.unchanged,
                "rejected": run.rejected,
                "verdicts": run.verdicts,
                "on_error": on_error.value,
            },
        )
        session.commit()
    return ImportResult(
        created=run.created,
        unchanged=run.unchanged,
        rejected=run.rejected,
        verdicts=run.verdicts,
        preview=tuple(run.preview),
        rejects=tuple(run.rejects),
        dry_run=dry_run,
    )


class _Import:
    """One import's running state: the pending batch, the ids seen so far and the counts."""

    def __init__(
        self,
        session: Session,
        *,
        project_id: int,
        open_slots: int,
        response_counts: tuple[int, int],
        sensitive_categories: frozenset[str],
        collecting: bool,
        with_verdicts: bool,
        reject: Callable[[Rejected], None] | None,
    ) -> None:
        self.session = session
        self.project_id = project_id
        self.open_slots = open_slots
        self.response_counts = response_counts
        self.sensitive_categories = sensitive_categories
        self.collecting = collecting
        self.with_verdicts = with_verdicts
        self.on_reject = reject
        self.problems: list[Problem] = []
        """The first MAX_PROBLEMS_REPORTED problems (`fail` mode); problem_count has them all."""
        self.problem_count = 0
        self.rejects: list[Rejected] = []
        self.preview: list[PreviewItem] = []
        self.created = self.unchanged = self.rejected = self.verdicts = 0
        self.seen = SeenIds()
        self.batch: list[tuple[int, NewItem, tuple[ExternalVerdict, ...], Any]] = []
        self.had_items = True
        self.writer: item_store.ItemWriter | None = None
        self.written_ids: list[int] = []
        """The ids of the batch the writer is storing, and the verdicts to store once it has."""
        self.written_verdicts: list[NewVerdict] = []

    def refuse(self, number: int, problems: list[Problem], record: Any) -> None:
        if self.collecting:
            self.rejected += 1
            rejected = Rejected(number, tuple(problems), record)
            if len(self.rejects) < MAX_PROBLEMS_REPORTED:
                self.rejects.append(rejected)
            if self.on_reject is not None:
                self.on_reject(rejected)
        else:
            self.problem_count += len(problems)
            self.problems.extend(problems[: MAX_PROBLEMS_REPORTED - len(self.problems)])

    def add(self, row: ReadRow) -> None:
        if isinstance(row, RowError):
            self.refuse(row.number, list(row.problems), row.record)
            return
        item, problems = validate_item(
            row.item, row=row.number, response_counts=self.response_counts, empty_replies=row.empty_replies
        )
        verdicts = row.verdicts if self.with_verdicts else ()
        key = 0
        if item is not None:
            for index, verdict in enumerate(verdicts):
                problems.extend(verdict_problems(verdict, responses=len(item.responses), row=row.number, index=index))
            key = hash(item.external_id)
            first_line = self.seen.first_line(key)
            if first_line is not None:
                problems.append(Problem(f"duplicate of line {first_line}", field="external_id", row=row.number))
        if item is None or problems:
            self.refuse(row.number, problems, row.record)
            return
        self.seen.add(key, row.number)
        if not item.is_sensitive and item.metadata.get("category") in self.sensitive_categories:
            item = replace(item, is_sensitive=True)
        self.batch.append((row.number, item, verdicts, row.record))
        if len(self.batch) >= INSERT_BATCH:
            self.flush()

    def flush(self) -> None:
        batch, self.batch = self.batch, []
        if not batch:
            return
        self.settle()
        existing = (
            item_store.existing_content_hashes(
                self.session, project_id=self.project_id, external_ids=[item.external_id for _, item, _, _ in batch]
            )
            if self.had_items
            else {}
        )
        new: list[tuple[NewItem, tuple[ExternalVerdict, ...]]] = []
        verdict_rows: list[NewVerdict] = []
        for number, item, verdicts, record in batch:
            stored = existing.get(item.external_id)
            if stored is None:
                new.append((item, verdicts))
            elif stored.content_hash == item.content_hash:
                self.unchanged += 1
                verdict_rows.extend(_new_verdicts(stored.id, verdicts))
            else:
                message = f"'{item.external_id}' is already in the project with different content"
                self.refuse(number, [Problem(message, field="external_id", row=number)], record)
                continue
            if len(self.preview) < PREVIEW_ITEMS:
                self.preview.append(_preview(item))
            self.verdicts += len(verdicts)
        self.created += len(new)
        if self.writer is None or self.problems:
            return
        item_ids = self.writer.write([item for item, _ in new])
        for item_id, (_, verdicts) in zip(item_ids, new, strict=True):
            verdict_rows.extend(_new_verdicts(item_id, verdicts))
        self.written_ids, self.written_verdicts = item_ids, verdict_rows

    def settle(self) -> None:
        """Wait for the batch being written, then store what had to follow it: its verdicts, and the
        cursors that passed its place in the queue moved back (so nobody misses the new items)."""
        if self.writer is None:
            return
        self.writer.wait()
        item_ids, verdict_rows = self.written_ids, self.written_verdicts
        self.written_ids, self.written_verdicts = [], []
        if item_ids:
            queue.reopen_passed(self.session, project_id=self.project_id, item_ids=item_ids)
        if verdict_rows:
            verdict_store.upsert_verdicts(self.session, project_id=self.project_id, verdicts=verdict_rows)


def _new_verdicts(item_id: int, verdicts: Iterable[ExternalVerdict]) -> Iterator[NewVerdict]:
    for verdict in verdicts:
        yield NewVerdict(
            item_id=item_id,
            source=verdict.source,
            judge=verdict.judge,
            kind=verdict.kind,
            payload=verdict.payload,
            verdict=verdict_key(verdict.kind, verdict.payload),
        )


def _preview(item: NewItem) -> PreviewItem:
    prompt = next((m["content"] for m in reversed(item.messages) if m.get("role") == "user"), "")
    excerpt = prompt if len(prompt) <= PREVIEW_CHARS else prompt[: PREVIEW_CHARS - 1].rstrip() + "\u2026"
    language, category = item.metadata.get("language"), item.metadata.get("category")
    return PreviewItem(
        external_id=item.external_id,
        prompt_excerpt=excerpt,
        responses=len(item.responses),
        language=language if isinstance(language, str) else None,
        category=category if isinstance(category, str) else None,
    )


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


def _reject(problems: list[Problem], total: int | None = None) -> None:
    shown = problems[:MAX_PROBLEMS_REPORTED]
    total = len(problems) if total is None else total
    more = f" (first {len(shown)} shown)" if total > len(shown) else ""
    raise InvalidInput(
        "invalid_import",
        f"{total} problem(s) found{more}; nothing was imported. First: {problems[0]}",
        field=problems[0].field,
        row=problems[0].row,
        problems=shown,
    )


def validate_item(
    value: Any,
    *,
    row: int,
    response_counts: tuple[int, int] = (PAIRWISE_RESPONSES, PAIRWISE_RESPONSES),
    empty_replies: bool = False,
) -> tuple[NewItem | None, list[Problem]]:
    """Check one native-format item; returns the item (if it could be built) and its problems.

    `empty_replies` accepts a response with content "" marked `{"empty_reply": true}` in its
    metadata (HH-RLHF's reader only: the labeller preferred saying nothing).
    """
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
    elif "\x00" in external_id:
        problem("external_id", NUL_MESSAGE)

    messages = _validate_conversation(value, problem)
    responses = _validate_responses(value.get("responses"), problem, response_counts, empty_replies=empty_replies)
    metadata = value.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        problem("metadata", f"expected an object, got {_json_type(metadata)}")
        metadata = {}
    elif holds_nul(metadata):
        problem("metadata", NUL_MESSAGE)
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
        if "\x00" in prompt:
            problem("prompt", NUL_MESSAGE)
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
        elif "\x00" in content:
            problem(f"{where}.content", NUL_MESSAGE)
        messages.append({"role": role, "content": content})
    if messages and messages[-1].get("role") != "user":
        problem("messages", "the conversation must end with a user turn (the responses answer it)")
    return messages


def _validate_responses(
    raw: Any, problem: Any, response_counts: tuple[int, int], *, empty_replies: bool = False
) -> list[NewResponse] | None:
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
        if not isinstance(content, str) or not (content.strip() or (empty_replies and _is_empty_reply(response))):
            problem(f"{where}.content", "must be a non-empty string")
            continue
        if len(content) > MAX_TEXT_CHARS:
            problem(f"{where}.content", f"longer than {MAX_TEXT_CHARS} characters")
            continue
        if "\x00" in content:
            problem(f"{where}.content", NUL_MESSAGE)
            continue
        model = response.get("model", "")
        if model is None:
            model = ""
        if not isinstance(model, str):
            problem(f"{where}.model", "must be a string")
            continue
        if "\x00" in model:
            problem(f"{where}.model", NUL_MESSAGE)
            continue
        metadata = response.get("metadata") or {}
        if not isinstance(metadata, dict):
            problem(f"{where}.metadata", "must be an object")
            continue
        extra = {key: val for key, val in response.items() if key not in ("content", "model", "metadata")}
        if holds_nul(extra) or holds_nul(metadata):
            problem(f"{where}.metadata", NUL_MESSAGE)
            continue
        responses.append(NewResponse(content=content, model_name=model, metadata={**extra, **metadata}))
    return responses if len(responses) == len(raw) else None


def _content_hash(messages: list[dict[str, Any]], responses: list[NewResponse], metadata: dict[str, Any]) -> str:
    canonical_value = {
        "messages": messages,
        "responses": [[r.model_name, r.content, r.metadata] for r in responses],
        "metadata": metadata,
    }
    # orjson writes the same bytes as this json.dumps call except for floats (1e-07 vs 1e-7, NaN),
    # so values with a float keep the slower path and stored hashes stay comparable.
    if not _has_float([metadata, *(r.metadata for r in responses)]):
        try:
            return hashlib.sha256(orjson.dumps(canonical_value, option=orjson.OPT_SORT_KEYS)).hexdigest()
        except TypeError:  # integers over 64 bits, lone surrogates
            pass
    canonical = json.dumps(canonical_value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _has_float(value: Any) -> bool:
    pending = [value]
    while pending:
        current = pending.pop()
        kind = type(current)
        if kind is float:
            return True
        if kind is dict:
            pending.extend(current.values())
        elif kind is list:
            pending.extend(current)
    return False


def _is_empty_reply(response: dict[str, Any]) -> bool:
    metadata = response.get("metadata")
    return response.get("content") == "" and isinstance(metadata, dict) and metadata.get("empty_reply") is True


def _is_text(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return names.get(type(value), type(value).__name__)


VERDICT_FIELDS = frozenset({"external_id", "judge", "source", "choice", "scores", "ranking"})
VERDICT_KINDS: tuple[VerdictKind, ...] = ("choice", "scores", "ranking")


@dataclass(frozen=True, slots=True)
class VerdictImportResult:
    stored: int
    """Verdicts written (a verdict an item already had from the same source and judge is replaced)."""
    items: int


def import_verdicts(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    rows: Iterable[tuple[int, Any]],
    default_source: str,
) -> VerdictImportResult:
    """Store external verdicts for items already in the project, all of them or none.

    Each row is `{external_id, judge, source?, choice | scores | ranking}` (docs/formats.md):
    positions are the item's response positions; a choice may also name a response's model.
    Written in batches inside one transaction, rolled back if any row is wrong.
    """
    principal.require_staff()
    project = get_project(session, principal=principal, slug=slug)
    project_id = project.id
    session.rollback()
    begin_write(session)
    problems: list[Problem] = []
    seen = SeenIds()
    batch: list[tuple[int, str, ExternalVerdict]] = []
    stored = 0
    items: set[int] = set()

    def flush() -> None:
        nonlocal stored
        found = item_store.response_models(
            session, project_id=project_id, external_ids={external_id for _, external_id, _ in batch}
        )
        new: list[NewVerdict] = []
        for number, external_id, verdict in batch:
            item = found.get(external_id)
            if item is None:
                problems.append(Problem(f"no item '{external_id}' in the project", field="external_id", row=number))
                continue
            checked = _by_position(verdict, item.models, number, problems)
            if checked is None:
                continue
            new.extend(_new_verdicts(item.id, [checked]))
            items.add(item.id)
        batch.clear()
        if not problems:
            stored += verdict_store.upsert_verdicts(session, project_id=project_id, verdicts=new)

    try:
        for number, value in rows:
            parsed = _verdict_line(number, value, default_source, problems)
            if parsed is None:
                continue
            external_id, verdict = parsed
            key = hash((external_id, verdict.source, verdict.judge))
            first_line = seen.first_line(key)
            if first_line is not None:
                problems.append(
                    Problem(
                        f"a second verdict of '{verdict.judge}' ({verdict.source}) for '{external_id}'"
                        f" (the first is on line {first_line})",
                        field="judge",
                        row=number,
                    )
                )
                continue
            seen.add(key, number)
            batch.append((number, external_id, verdict))
            if len(batch) >= INSERT_BATCH:
                flush()
        if batch:
            flush()
    except BaseException:
        session.rollback()
        raise
    if not problems and not len(seen):
        problems.append(Problem("no verdicts found"))
    if problems:
        session.rollback()
        _reject(problems)
    session.commit()
    return VerdictImportResult(stored=stored, items=len(items))


def _verdict_line(
    number: int, value: Any, default_source: str, problems: list[Problem]
) -> tuple[str, ExternalVerdict] | None:
    if isinstance(value, RowError):
        problems.extend(value.problems)
        return None
    if isinstance(value, Problem):
        problems.append(value)
        return None
    if not isinstance(value, dict):
        problems.append(Problem(f"expected a JSON object, got {_json_type(value)}", field="verdict", row=number))
        return None
    found = len(problems)
    for key in sorted(set(value) - VERDICT_FIELDS):
        problems.append(
            Problem(
                "unknown field (expected external_id, judge, source, choice, scores or ranking)", field=key, row=number
            )
        )
    external_id = value.get("external_id")
    if isinstance(external_id, int) and not isinstance(external_id, bool):
        external_id = str(external_id)
    if not _is_text(external_id):
        problems.append(Problem("required, a non-empty string", field="external_id", row=number))
    source = value.get("source", default_source)
    if not _is_text(source):
        problems.append(Problem("must be a non-empty string", field="source", row=number))
    if not _is_text(value.get("judge")):
        problems.append(Problem("required, the model, judge or labeller name", field="judge", row=number))
    kinds = [kind for kind in VERDICT_KINDS if kind in value]
    if len(kinds) != 1:
        problems.append(Problem("give exactly one of choice, scores or ranking", field="choice", row=number))
    if len(problems) > found:
        return None
    kind = kinds[0]
    verdict = ExternalVerdict(
        source=str(source).strip(),
        judge=str(value["judge"]).strip(),
        kind=kind,
        payload={kind: value[kind]},
    )
    return str(external_id).strip(), verdict


def _by_position(
    verdict: ExternalVerdict, models: tuple[str, ...], number: int, problems: list[Problem]
) -> ExternalVerdict | None:
    """The verdict with a choice given as a model name turned into that response's position, checked."""
    choice = verdict.payload.get("choice")
    if verdict.kind == "choice" and isinstance(choice, str) and choice != "tie":
        positions = [position for position, model in enumerate(models) if model == choice]
        if len(positions) != 1:
            how = "no response" if not positions else "more than one response"
            problems.append(Problem(f"{how} of this item is by model '{choice}'", field="choice", row=number))
            return None
        verdict = replace(verdict, payload={"choice": positions[0]})
    found = verdict_problems(verdict, responses=len(models), row=number)
    problems.extend(found)
    return None if found else verdict
