"""Reading judgments back (for exports, reports and their annotators) and revising them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from preference_store.models import Assignment, Item, Judgment, JudgmentRevision, Response


@dataclass(frozen=True, slots=True)
class ResponseText:
    position: int
    content: str
    model_name: str


@dataclass(frozen=True, slots=True)
class ItemJudgments:
    """An item with its responses and every judgment stored for it, oldest first."""

    item_id: int
    external_id: str
    messages: list[dict[str, Any]]
    metadata: dict[str, Any]
    responses: list[ResponseText]
    payloads: list[dict[str, Any]]
    annotator_ids: list[int]


def iter_judged_items(session: Session, *, project_id: int, batch_size: int = 500) -> Iterator[ItemJudgments]:
    """Stream the project's judged items in id order, a batch of items at a time."""
    after = 0
    while True:
        item_ids = list(
            session.scalars(
                select(Judgment.item_id)
                .where(Judgment.project_id == project_id, Judgment.item_id > after)
                .group_by(Judgment.item_id)
                .order_by(Judgment.item_id)
                .limit(batch_size)
            )
        )
        if not item_ids:
            return
        yield from _load_batch(session, item_ids)
        after = item_ids[-1]


def _load_batch(session: Session, item_ids: list[int]) -> Iterator[ItemJudgments]:
    responses: dict[int, list[ResponseText]] = defaultdict(list)
    for item_id, position, content, model_name in session.execute(
        select(Response.item_id, Response.position, Response.content, Response.model_name)
        .where(Response.item_id.in_(item_ids))
        .order_by(Response.item_id, Response.position)
    ):
        responses[item_id].append(ResponseText(position, content, model_name))
    judgments: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for item_id, annotator_id, payload in session.execute(
        select(Judgment.item_id, Judgment.annotator_id, Judgment.payload)
        .where(Judgment.item_id.in_(item_ids))
        .order_by(Judgment.item_id, Judgment.id)
    ):
        judgments[item_id].append((annotator_id, dict(payload)))
    for item_id, external_id, messages, metadata in session.execute(
        select(Item.id, Item.external_id, Item.messages, Item.metadata_).where(Item.id.in_(item_ids)).order_by(Item.id)
    ):
        votes = judgments[item_id]
        yield ItemJudgments(
            item_id=item_id,
            external_id=external_id,
            messages=list(messages),
            metadata=dict(metadata or {}),
            responses=responses[item_id],
            payloads=[payload for _, payload in votes],
            annotator_ids=[annotator_id for annotator_id, _ in votes],
        )


@dataclass(frozen=True, slots=True)
class JudgmentRow:
    """A stored judgment with what is needed to show it in the labels its annotator saw."""

    id: int
    project_id: int
    item_id: int
    external_id: str
    annotator_id: int
    assignment_id: int
    shown_order: list[int]
    payload: dict[str, Any]
    verdict: str
    time_spent_ms: int | None
    guidelines_version: int
    revision: int
    created_at: datetime
    revised_at: datetime | None


@dataclass(frozen=True, slots=True)
class RevisionRow:
    revision: int
    payload: dict[str, Any]
    verdict: str
    time_spent_ms: int | None
    guidelines_version: int
    made_at: datetime
    replaced_at: datetime


_JUDGMENT_COLUMNS = (
    Judgment.id,
    Judgment.project_id,
    Judgment.item_id,
    Item.external_id,
    Judgment.annotator_id,
    Judgment.assignment_id,
    Assignment.shown_order,
    Judgment.payload,
    Judgment.verdict,
    Judgment.time_spent_ms,
    Judgment.guidelines_version,
    Judgment.revision,
    Judgment.created_at,
    Judgment.revised_at,
)


def _judgments() -> Any:
    return (
        select(*_JUDGMENT_COLUMNS)
        .join(Assignment, Assignment.id == Judgment.assignment_id)
        .join(Item, Item.id == Judgment.item_id)
    )


def _judgment_row(row: Any) -> JudgmentRow:
    values = list(row)
    values[6] = list(values[6])
    values[7] = dict(values[7])
    return JudgmentRow(*values)


def count_since(session: Session, *, annotator_id: int, project_id: int | None, since: datetime) -> int:
    """How many judgments an annotator made since a moment (in one project, or in all)."""
    statement = (
        select(func.count())
        .select_from(Judgment)
        .where(Judgment.annotator_id == annotator_id, Judgment.created_at >= since)
    )
    if project_id is not None:
        statement = statement.where(Judgment.project_id == project_id)
    return int(session.scalar(statement) or 0)


def count_sensitive_since(session: Session, *, annotator_id: int, since: datetime) -> int:
    """How many items flagged sensitive an annotator judged since a moment, in any project."""
    statement = (
        select(func.count())
        .select_from(Judgment)
        .join(Item, Item.id == Judgment.item_id)
        .where(Judgment.annotator_id == annotator_id, Judgment.created_at >= since, Item.is_sensitive)
    )
    return int(session.scalar(statement) or 0)


def days_with_judgments(session: Session, *, annotator_id: int, since: datetime) -> set[str]:
    """The UTC days (YYYY-MM-DD) on which an annotator judged anything, since a moment."""
    dialect = session.get_bind().dialect.name
    day = (
        func.to_char(func.timezone("UTC", Judgment.created_at), "YYYY-MM-DD")
        if dialect == "postgresql"
        else func.substr(Judgment.created_at, 1, 10)
    )
    rows = session.scalars(
        select(day).where(Judgment.annotator_id == annotator_id, Judgment.created_at >= since).group_by(day)
    )
    return {str(value) for value in rows}


def recent_judgments(session: Session, *, annotator_id: int, project_id: int, limit: int) -> list[JudgmentRow]:
    """An annotator's latest judgments in a project, newest first."""
    if limit <= 0:
        return []
    rows = session.execute(
        _judgments()
        .where(Judgment.annotator_id == annotator_id, Judgment.project_id == project_id)
        .order_by(Judgment.created_at.desc(), Judgment.id.desc())
        .limit(limit)
    )
    return [_judgment_row(row) for row in rows]


def get_judgment(session: Session, *, judgment_id: int) -> JudgmentRow | None:
    row = session.execute(_judgments().where(Judgment.id == judgment_id)).first()
    return None if row is None else _judgment_row(row)


def judgments_of_item(session: Session, *, item_id: int) -> list[JudgmentRow]:
    """Every judgment of an item, oldest first."""
    rows = session.execute(_judgments().where(Judgment.item_id == item_id).order_by(Judgment.id))
    return [_judgment_row(row) for row in rows]


def revisions_of(session: Session, *, judgment_ids: list[int]) -> dict[int, list[RevisionRow]]:
    """Earlier versions of judgments, oldest first."""
    found: dict[int, list[RevisionRow]] = defaultdict(list)
    if not judgment_ids:
        return found
    rows = session.execute(
        select(
            JudgmentRevision.judgment_id,
            JudgmentRevision.revision,
            JudgmentRevision.payload,
            JudgmentRevision.verdict,
            JudgmentRevision.time_spent_ms,
            JudgmentRevision.guidelines_version,
            JudgmentRevision.made_at,
            JudgmentRevision.replaced_at,
        )
        .where(JudgmentRevision.judgment_id.in_(judgment_ids))
        .order_by(JudgmentRevision.judgment_id, JudgmentRevision.revision)
    )
    for judgment_id, *values in rows:
        found[judgment_id].append(RevisionRow(*values))
    return found


def revise(
    session: Session,
    *,
    current: JudgmentRow,
    payload: dict[str, Any],
    verdict: str,
    time_spent_ms: int | None,
    guidelines_version: int,
    now: datetime,
) -> bool:
    """Keep the current version as a revision and store the new one; False if it changed meanwhile."""
    changed = session.execute(
        update(Judgment)
        .where(Judgment.id == current.id, Judgment.revision == current.revision)
        .values(
            payload=payload,
            verdict=verdict,
            time_spent_ms=time_spent_ms,
            guidelines_version=guidelines_version,
            revision=current.revision + 1,
            revised_at=now,
        )
    )
    if getattr(changed, "rowcount", 0) != 1:
        return False
    session.execute(
        insert(JudgmentRevision).values(
            judgment_id=current.id,
            revision=current.revision,
            payload=current.payload,
            verdict=current.verdict,
            time_spent_ms=current.time_spent_ms,
            guidelines_version=current.guidelines_version,
            made_at=current.revised_at or current.created_at,
            replaced_at=now,
        )
    )
    return True
