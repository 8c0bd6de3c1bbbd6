"""Repeat assignments: an annotator's own judged items served again, stored apart from judgments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, exists, func, select, update
from sqlalchemy.orm import Session

from preference_store.models import Assignment, AssignmentState, GoldAnswer, Judgment, RepeatAssignment

_A = cast(Table, Assignment.__table__)
_J = cast(Table, Judgment.__table__)
_R = cast(Table, RepeatAssignment.__table__)
_G = cast(Table, GoldAnswer.__table__)
_LEASED = AssignmentState.LEASED.value


@dataclass(frozen=True, slots=True)
class RepeatRow:
    """A repeat assignment as the serving and answering code reads it."""

    id: int
    project_id: int
    item_id: int
    annotator_id: int
    public_id: int
    shown_order: list[int]
    state: AssignmentState
    leased_until: datetime
    payload: dict[str, Any] | None
    answer_public_id: int | None


@dataclass(frozen=True, slots=True)
class RepeatCandidate:
    """An earlier judgment that may be repeated: its id, item and the order it was shown in."""

    judgment_id: int
    item_id: int
    shown_order: list[int]


@dataclass(frozen=True, slots=True)
class AnsweredRepeat:
    """An answered repeat for the quality reports: whose, which item, the answer and its shown order."""

    annotator_id: int
    item_id: int
    verdict: str
    shown_order: list[int]


_COLUMNS = (
    _R.c.id,
    _R.c.project_id,
    _R.c.item_id,
    _R.c.annotator_id,
    _R.c.public_id,
    _R.c.shown_order,
    _R.c.state,
    _R.c.leased_until,
    _R.c.payload,
    _R.c.answer_public_id,
)


def _row(found: Any) -> RepeatRow:
    return RepeatRow(
        id=int(found.id),
        project_id=int(found.project_id),
        item_id=int(found.item_id),
        annotator_id=int(found.annotator_id),
        public_id=int(found.public_id),
        shown_order=list(found.shown_order),
        state=AssignmentState(found.state),
        leased_until=found.leased_until,
        payload=None if found.payload is None else dict(found.payload),
        answer_public_id=None if found.answer_public_id is None else int(found.answer_public_id),
    )


def held_repeat(session: Session, *, project_id: int, annotator_id: int) -> RepeatRow | None:
    """The repeat the annotator holds in the project (its lease may have run out), or None."""
    statement = select(*_COLUMNS).where(
        _R.c.annotator_id == annotator_id, _R.c.project_id == project_id, _R.c.state == _LEASED
    )
    found = session.connection().execute(statement).first()
    return None if found is None else _row(found)


def repeat_by_public_id(session: Session, *, annotator_id: int, public_id: int) -> RepeatRow | None:
    """The annotator's repeat that travels under `public_id`, or None."""
    statement = select(*_COLUMNS).where(_R.c.annotator_id == annotator_id, _R.c.public_id == public_id)
    found = session.connection().execute(statement).first()
    return None if found is None else _row(found)


def close_repeat(
    session: Session,
    *,
    repeat_id: int,
    state: AssignmentState,
    now: datetime,
    from_states: tuple[AssignmentState, ...] = (AssignmentState.LEASED,),
    skip_reason: str | None = None,
) -> bool:
    """Move a repeat from one of `from_states` to `state` (expired or skipped); False if it was not in one."""
    statement = (
        update(_R)
        .where(_R.c.id == repeat_id, _R.c.state.in_([s.value for s in from_states]))
        .values(state=state.value, closed_at=now, skip_reason=skip_reason)
    )
    return bool(session.connection().execute(statement).rowcount == 1)


def answer_repeat(
    session: Session,
    *,
    repeat_id: int,
    payload: dict[str, Any],
    verdict: str,
    time_spent_ms: int | None,
    answer_public_id: int,
    now: datetime,
) -> bool:
    """Store the answer of a held (or lapsed) repeat; False if it was answered or skipped already."""
    statement = (
        update(_R)
        .where(_R.c.id == repeat_id, _R.c.state.in_([_LEASED, AssignmentState.EXPIRED.value]))
        .values(
            state=AssignmentState.SUBMITTED.value,
            closed_at=now,
            payload=payload,
            verdict=verdict,
            time_spent_ms=time_spent_ms,
            answer_public_id=answer_public_id,
        )
    )
    return bool(session.connection().execute(statement).rowcount == 1)


def served_count(session: Session, *, project_id: int, annotator_id: int) -> tuple[int, bool]:
    """(items and repeats ever served to the annotator in the project, whether they hold a live assignment)."""
    served = select(
        select(func.count())
        .select_from(_A)
        .where(_A.c.annotator_id == annotator_id, _A.c.project_id == project_id)
        .scalar_subquery(),
        select(func.count())
        .select_from(_R)
        .where(_R.c.annotator_id == annotator_id, _R.c.project_id == project_id)
        .scalar_subquery(),
        exists().where(_A.c.annotator_id == annotator_id, _A.c.project_id == project_id, _A.c.state == _LEASED),
    )
    assignments, repeats, holding = session.connection().execute(served).one()
    return int(assignments or 0) + int(repeats or 0), bool(holding)


def _candidates(project_id: int, annotator_id: int, repeat_after: int) -> Any:
    """The annotator's judgments older than their latest `repeat_after`, of items neither gold nor repeated."""
    conditions = [
        _J.c.annotator_id == annotator_id,
        _J.c.project_id == project_id,
        ~exists().where(_G.c.item_id == _J.c.item_id),
        ~exists().where(_R.c.annotator_id == annotator_id, _R.c.project_id == project_id, _R.c.item_id == _J.c.item_id),
    ]
    if repeat_after > 0:
        newest = (
            select(_J.c.id)
            .where(_J.c.annotator_id == annotator_id, _J.c.project_id == project_id)
            .order_by(_J.c.id.desc())
            .offset(repeat_after - 1)
            .limit(1)
            .scalar_subquery()
        )
        conditions.append(_J.c.id < newest)
    return conditions


def count_candidates(session: Session, *, project_id: int, annotator_id: int, repeat_after: int) -> int:
    """How many of the annotator's judgments could be repeated now."""
    statement = select(func.count()).select_from(_J).where(*_candidates(project_id, annotator_id, repeat_after))
    return int(session.connection().execute(statement).scalar() or 0)


def candidate_at(
    session: Session, *, project_id: int, annotator_id: int, repeat_after: int, index: int
) -> RepeatCandidate | None:
    """The `index`-th repeatable judgment of the annotator (oldest first), with its shown order."""
    statement = (
        select(_J.c.id, _J.c.item_id, _A.c.shown_order)
        .join(_A, _A.c.id == _J.c.assignment_id)
        .where(*_candidates(project_id, annotator_id, repeat_after))
        .order_by(_J.c.id)
        .offset(index)
        .limit(1)
    )
    found = session.connection().execute(statement).first()
    return None if found is None else RepeatCandidate(int(found.id), int(found.item_id), list(found.shown_order))


def borrowed_assignment_id(session: Session, *, annotator_id: int) -> int | None:
    """The newest assignment id of another annotator that none of this annotator's repeats travels under."""
    statement = (
        select(_A.c.id)
        .where(
            _A.c.annotator_id != annotator_id,
            ~exists().where(_R.c.annotator_id == annotator_id, _R.c.public_id == _A.c.id),
        )
        .order_by(_A.c.id.desc())
        .limit(1)
    )
    found = session.connection().execute(statement).scalar()
    return None if found is None else int(found)


def borrowed_judgment_id(session: Session, *, annotator_id: int) -> int | None:
    """The newest judgment id of another annotator (what a repeat's answer is reported under)."""
    statement = select(_J.c.id).where(_J.c.annotator_id != annotator_id).order_by(_J.c.id.desc()).limit(1)
    found = session.connection().execute(statement).scalar()
    return None if found is None else int(found)


def insert_repeat(
    session: Session,
    *,
    project_id: int,
    annotator_id: int,
    candidate: RepeatCandidate,
    public_id: int,
    shown_order: list[int],
    leased_until: datetime,
    now: datetime,
) -> RepeatRow:
    """Lease a repeat of `candidate` to the annotator."""
    values = {
        "project_id": project_id,
        "item_id": candidate.item_id,
        "annotator_id": annotator_id,
        "judgment_id": candidate.judgment_id,
        "public_id": public_id,
        "shown_order": shown_order,
        "state": _LEASED,
        "leased_until": leased_until,
        "created_at": now,
    }
    result = session.connection().execute(_R.insert().values(**values))
    key = result.inserted_primary_key
    if not key or key[0] is None:
        raise RuntimeError("repeat insert returned no key")
    return RepeatRow(
        int(key[0]),
        project_id,
        candidate.item_id,
        annotator_id,
        public_id,
        shown_order,
        AssignmentState.LEASED,
        leased_until,
        None,
        None,
    )


def answered_since(session: Session, *, project_id: int, annotator_id: int, since: datetime) -> int:
    """How many repeats the annotator answered in the project since `since`."""
    statement = (
        select(func.count())
        .select_from(_R)
        .where(
            _R.c.annotator_id == annotator_id,
            _R.c.project_id == project_id,
            _R.c.state == AssignmentState.SUBMITTED.value,
            _R.c.closed_at >= since,
        )
    )
    return int(session.connection().execute(statement).scalar() or 0)


def answered_repeats(session: Session, *, project_id: int) -> list[AnsweredRepeat]:
    """Every answered repeat of the project (for self-consistency in the quality reports)."""
    statement = select(_R.c.annotator_id, _R.c.item_id, _R.c.verdict, _R.c.shown_order).where(
        _R.c.project_id == project_id, _R.c.state == AssignmentState.SUBMITTED.value
    )
    return [
        AnsweredRepeat(int(row.annotator_id), int(row.item_id), str(row.verdict), list(row.shown_order))
        for row in session.connection().execute(statement)
    ]
