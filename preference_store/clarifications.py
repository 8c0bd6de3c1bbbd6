"""Policy clarifications: annotators' questions about the guidelines and the leads' answers."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Select, func, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from preference_store.models import Clarification, ClarificationState, Item, User


@dataclass(frozen=True, slots=True)
class ClarificationRow:
    """A clarification with the names the pages show (item external id, asker, answerer)."""

    id: int
    project_id: int
    item_id: int | None
    item_external_id: str | None
    asked_by_id: int | None
    asked_by_name: str | None
    question: str
    asked_at: datetime
    guidelines_version: int
    answer: str | None
    answered_by_name: str | None
    answered_at: datetime | None
    state: ClarificationState
    absorbed_in_version: int | None


@dataclass(frozen=True, slots=True)
class ClarificationQuery:
    """Which clarifications of a project to list; None means any."""

    states: tuple[ClarificationState, ...] = ()
    asked_by_id: int | None = None
    text: str | None = None
    """Part of the question or the answer, case-insensitive (wildcards are taken literally)."""
    guidelines_version: int | None = None
    """The version the question was asked under, or the one that absorbed it."""
    oldest_first: bool = False
    before_id: int | None = None
    """Newest first only: rows older than this id (the next page)."""
    limit: int = 50


_C = Clarification
_Asker = aliased(User)
_Answerer = aliased(User)


_COLUMNS: tuple[Any, ...] = (
    _C.id,
    _C.project_id,
    _C.item_id,
    Item.external_id,
    _C.asked_by_id,
    _Asker.name,
    _C.question,
    _C.asked_at,
    _C.guidelines_version,
    _C.answer,
    _Answerer.name,
    _C.answered_at,
    _C.state,
    _C.absorbed_in_version,
)


def _selection() -> Select[Any]:
    return (
        select(*_COLUMNS)
        .select_from(_C)
        .outerjoin(Item, Item.id == _C.item_id)
        .outerjoin(_Asker, _Asker.id == _C.asked_by_id)
        .outerjoin(_Answerer, _Answerer.id == _C.answered_by_id)
    )


def _row(row: Any) -> ClarificationRow:
    return ClarificationRow(
        id=row[0],
        project_id=row[1],
        item_id=row[2],
        item_external_id=row[3],
        asked_by_id=row[4],
        asked_by_name=row[5],
        question=row[6],
        asked_at=row[7],
        guidelines_version=row[8],
        answer=row[9],
        answered_by_name=row[10],
        answered_at=row[11],
        state=ClarificationState(row[12]),
        absorbed_in_version=row[13],
    )


def insert_clarification(
    session: Session,
    *,
    project_id: int,
    item_id: int | None,
    asked_by_id: int | None,
    question: str,
    guidelines_version: int,
) -> int:
    """Store a new open question; returns its id."""
    return int(
        session.execute(
            insert(_C)
            .values(
                project_id=project_id,
                item_id=item_id,
                asked_by_id=asked_by_id,
                question=question,
                guidelines_version=guidelines_version,
                state=ClarificationState.OPEN,
            )
            .returning(_C.id)
        ).scalar_one()
    )


def lock_asker(session: Session, *, user_id: int) -> None:
    """Serialize one user's questions (PostgreSQL row lock; SQLite writers are serialized already)."""
    session.execute(select(User.id).where(User.id == user_id).with_for_update())


def recent_same_question(
    session: Session,
    *,
    project_id: int,
    asked_by_id: int | None,
    item_id: int | None,
    question: str,
    since: datetime,
) -> int | None:
    """The id of the same question by the same asker on the same item asked at or after `since`."""
    asker = _C.asked_by_id.is_(None) if asked_by_id is None else _C.asked_by_id == asked_by_id
    item = _C.item_id.is_(None) if item_id is None else _C.item_id == item_id
    found = session.execute(
        select(_C.id)
        .where(_C.project_id == project_id, asker, item, _C.question == question, _C.asked_at >= since)
        .order_by(_C.id.desc())
        .limit(1)
    ).scalar()
    return None if found is None else int(found)


def get_clarification(session: Session, *, clarification_id: int) -> ClarificationRow | None:
    """One clarification by id, or None."""
    row = session.execute(_selection().where(_C.id == clarification_id)).first()
    return None if row is None else _row(row)


def list_clarifications(session: Session, *, project_id: int, query: ClarificationQuery) -> list[ClarificationRow]:
    """A project's clarifications matching `query`, newest first unless `oldest_first`."""
    statement = _selection().where(_C.project_id == project_id)
    if query.states:
        statement = statement.where(_C.state.in_(query.states))
    if query.asked_by_id is not None:
        statement = statement.where(_C.asked_by_id == query.asked_by_id)
    if query.guidelines_version is not None:
        statement = statement.where(
            or_(
                _C.guidelines_version == query.guidelines_version,
                _C.absorbed_in_version == query.guidelines_version,
            )
        )
    if query.text:
        statement = statement.where(
            or_(_C.question.icontains(query.text, autoescape=True), _C.answer.icontains(query.text, autoescape=True))
        )
    if query.oldest_first:
        statement = statement.order_by(_C.id)
    else:
        if query.before_id is not None:
            statement = statement.where(_C.id < query.before_id)
        statement = statement.order_by(_C.id.desc())
    return [_row(row) for row in session.execute(statement.limit(query.limit))]


def count_by_state(session: Session, *, project_id: int, state: ClarificationState) -> int:
    """How many of a project's clarifications are in `state`."""
    return int(
        session.execute(
            select(func.count()).select_from(_C).where(_C.project_id == project_id, _C.state == state)
        ).scalar_one()
    )


def set_answer(
    session: Session, *, clarification_id: int, answer: str, answered_by_id: int | None, at: datetime
) -> None:
    """Record (or replace) the answer; the clarification becomes answered."""
    session.execute(
        update(_C)
        .where(_C.id == clarification_id)
        .values(answer=answer, answered_by_id=answered_by_id, answered_at=at, state=ClarificationState.ANSWERED)
    )


def set_dismissed(session: Session, *, clarification_id: int, dismissed_by_id: int | None, at: datetime) -> bool:
    """Dismiss an open question; False when it was no longer open."""
    result = cast(
        CursorResult[Any],
        session.execute(
            update(_C)
            .where(_C.id == clarification_id, _C.state == ClarificationState.OPEN)
            .values(state=ClarificationState.DISMISSED, answered_by_id=dismissed_by_id, answered_at=at)
        ),
    )
    return result.rowcount == 1


def states_of(
    session: Session, *, project_id: int, clarification_ids: Collection[int]
) -> dict[int, tuple[ClarificationState, int]]:
    """State and asked-under version of those ids that belong to the project."""
    rows = session.execute(
        select(_C.id, _C.state, _C.guidelines_version).where(
            _C.project_id == project_id, _C.id.in_(list(clarification_ids))
        )
    )
    return {int(row[0]): (ClarificationState(row[1]), int(row[2])) for row in rows}


def set_absorbed(session: Session, *, project_id: int, clarification_ids: Collection[int], version: int) -> int:
    """Link clarifications to the guidelines version that absorbed them; returns how many changed."""
    result = cast(
        CursorResult[Any],
        session.execute(
            update(_C)
            .where(_C.project_id == project_id, _C.id.in_(list(clarification_ids)))
            .values(absorbed_in_version=version)
        ),
    )
    return int(result.rowcount)
