"""Reading judgments back (for exports, reports and their annotators) and revising them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from preference_store.models import Assignment, Item, ItemQueue, Judgment, JudgmentRevision, Response, User
from preference_store.queue import queue_language


@dataclass(frozen=True, slots=True)
class ResponseText:
    position: int
    content: str
    model_name: str


@dataclass(frozen=True, slots=True)
class Vote:
    """Who made one judgment of an item, when, and under which guidelines."""

    annotator_id: int
    team_id: int | None
    guidelines_version: int
    judged_at: datetime
    verdict: str


@dataclass(frozen=True, slots=True)
class ItemJudgments:
    """An item with its responses and every (selected) judgment stored for it, oldest first.

    `payloads`, `annotator_ids` and `votes` run in parallel, one entry per judgment.
    """

    item_id: int
    external_id: str
    messages: list[dict[str, Any]]
    metadata: dict[str, Any]
    responses: list[ResponseText]
    payloads: list[dict[str, Any]]
    annotator_ids: list[int]
    votes: list[Vote] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class JudgmentFilter:
    """Which items and judgments an export reads; empty fields do not filter.

    Item filters (language, market, category) keep or drop whole items; judgment filters
    (date range, team, guidelines version) keep only matching judgments, and items with none.
    """

    languages: tuple[str, ...] = ()
    markets: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    judged_from: datetime | None = None
    judged_until: datetime | None = None
    team_ids: tuple[int, ...] = ()
    guidelines_versions: tuple[int, ...] = ()

    def judgment_conditions(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.judged_from is not None:
            conditions.append(Judgment.created_at >= self.judged_from)
        if self.judged_until is not None:
            conditions.append(Judgment.created_at < self.judged_until)
        if self.team_ids:
            conditions.append(User.team_id.in_(self.team_ids))
        if self.guidelines_versions:
            conditions.append(Judgment.guidelines_version.in_(self.guidelines_versions))
        return conditions

    def item_conditions(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.languages:
            conditions.append(ItemQueue.language.in_([queue_language(code) for code in self.languages]))
        for key, wanted in (("market", self.markets), ("category", self.categories)):
            if wanted:
                conditions.append(Item.metadata_[key].as_string().in_(wanted))
        return conditions


def iter_judged_items(
    session: Session, *, project_id: int, batch_size: int = 500, where: JudgmentFilter | None = None
) -> Iterator[ItemJudgments]:
    """Stream the project's judged items in id order, a batch of items at a time."""
    where = where or JudgmentFilter()
    judgment_conditions = where.judgment_conditions()
    item_conditions = where.item_conditions()
    after = 0
    while True:
        statement = (
            select(Judgment.item_id)
            .join(User, User.id == Judgment.annotator_id)
            .where(Judgment.project_id == project_id, Judgment.item_id > after, *judgment_conditions)
            .group_by(Judgment.item_id)
            .order_by(Judgment.item_id)
            .limit(batch_size)
        )
        if item_conditions:
            statement = (
                statement.join(Item, Item.id == Judgment.item_id)
                .join(ItemQueue, ItemQueue.item_id == Judgment.item_id)
                .where(*item_conditions)
            )
        item_ids = list(session.scalars(statement))
        if not item_ids:
            return
        yield from _load_batch(session, item_ids, judgment_conditions)
        after = item_ids[-1]


def _load_batch(
    session: Session, item_ids: list[int], judgment_conditions: list[ColumnElement[bool]]
) -> Iterator[ItemJudgments]:
    responses: dict[int, list[ResponseText]] = defaultdict(list)
    for item_id, position, content, model_name in session.execute(
        select(Response.item_id, Response.position, Response.content, Response.model_name)
        .where(Response.item_id.in_(item_ids))
        .order_by(Response.item_id, Response.position)
    ):
        responses[item_id].append(ResponseText(position, content, model_name))
    judgments: dict[int, list[tuple[dict[str, Any], Vote]]] = defaultdict(list)
    for item_id, payload, *vote in session.execute(
        select(
            Judgment.item_id,
            Judgment.payload,
            Judgment.annotator_id,
            User.team_id,
            Judgment.guidelines_version,
            Judgment.created_at,
            Judgment.verdict,
        )
        .join(User, User.id == Judgment.annotator_id)
        .where(Judgment.item_id.in_(item_ids), *judgment_conditions)
        .order_by(Judgment.item_id, Judgment.id)
    ):
        judgments[item_id].append((dict(payload), Vote(*vote)))
    for item_id, external_id, messages, metadata in session.execute(
        select(Item.id, Item.external_id, Item.messages, Item.metadata_).where(Item.id.in_(item_ids)).order_by(Item.id)
    ):
        found = judgments[item_id]
        yield ItemJudgments(
            item_id=item_id,
            external_id=external_id,
            messages=list(messages),
            metadata=dict(metadata or {}),
            responses=responses[item_id],
            payloads=[payload for payload, _ in found],
            annotator_ids=[vote.annotator_id for _, vote in found],
            votes=[vote for _, vote in found],
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
