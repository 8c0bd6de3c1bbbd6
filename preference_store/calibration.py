"""Calibration sessions: the sessions, their participants, items and blind answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, distinct, func, insert, select, update
from sqlalchemy.orm import Session

from preference_store.models import (
    CalibrationAnswer,
    CalibrationItem,
    CalibrationParticipant,
    CalibrationSession,
    CalibrationState,
    Item,
    Judgment,
    Project,
    Response,
    Team,
    User,
)


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: int
    project_id: int
    name: str
    notes: str
    created_by_name: str | None
    state: CalibrationState
    team_ids: list[int]
    after_days: int
    blind_alpha: float | None
    blind_alpha_low: float | None
    blind_alpha_high: float | None
    blind_percent_agreement: float | None
    agreed_share: float | None
    created_at: datetime
    revealed_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class SessionCounts:
    items: int
    participants: int
    answered: int


@dataclass(frozen=True, slots=True)
class ParticipantRow:
    user_id: int
    name: str
    team_name: str | None


@dataclass(frozen=True, slots=True)
class CalibrationItemRow:
    id: int
    item_id: int
    external_id: str
    position: int
    agreed_verdict: str | None
    agreed_payload: dict[str, Any] | None
    note: str
    is_gold: bool
    agreed_at: datetime | None


@dataclass(frozen=True, slots=True)
class AnswerRow:
    id: int
    calibration_item_id: int
    annotator_id: int
    annotator_name: str
    shown_order: list[int]
    payload: dict[str, Any] | None
    verdict: str | None
    time_spent_ms: int | None
    answered_at: datetime | None


@dataclass(frozen=True, slots=True)
class WaitingSession:
    """A blind session with items the participant has not answered yet."""

    project_slug: str
    project_name: str
    session_id: int
    name: str
    unanswered: int


@dataclass(frozen=True, slots=True)
class JudgmentVote:
    item_id: int
    annotator_id: int
    verdict: str
    created_at: datetime


_S = CalibrationSession
_A = CalibrationAnswer
_CI = CalibrationItem

_SESSION_COLUMNS: tuple[Any, ...] = (
    _S.id,
    _S.project_id,
    _S.name,
    _S.notes,
    User.name,
    _S.state,
    _S.team_ids,
    _S.after_days,
    _S.blind_alpha,
    _S.blind_alpha_low,
    _S.blind_alpha_high,
    _S.blind_percent_agreement,
    _S.agreed_share,
    _S.created_at,
    _S.revealed_at,
    _S.closed_at,
)


def _session_row(row: Any) -> SessionRow:
    return SessionRow(
        id=row[0],
        project_id=row[1],
        name=row[2],
        notes=row[3],
        created_by_name=row[4],
        state=CalibrationState(row[5]),
        team_ids=list(row[6] or []),
        after_days=row[7],
        blind_alpha=row[8],
        blind_alpha_low=row[9],
        blind_alpha_high=row[10],
        blind_percent_agreement=row[11],
        agreed_share=row[12],
        created_at=row[13],
        revealed_at=row[14],
        closed_at=row[15],
    )


def insert_session(
    session: Session,
    *,
    project_id: int,
    name: str,
    notes: str,
    created_by_id: int | None,
    team_ids: list[int],
    after_days: int,
    now: datetime,
) -> int:
    """Store a new blind session; returns its id."""
    return int(
        session.execute(
            insert(_S)
            .values(
                project_id=project_id,
                name=name,
                notes=notes,
                created_by_id=created_by_id,
                state=CalibrationState.BLIND,
                team_ids=team_ids,
                after_days=after_days,
                created_at=now,
            )
            .returning(_S.id)
        ).scalar_one()
    )


def get_session(session: Session, *, session_id: int) -> SessionRow | None:
    row = session.execute(
        select(*_SESSION_COLUMNS).outerjoin(User, User.id == _S.created_by_id).where(_S.id == session_id)
    ).first()
    return _session_row(row) if row is not None else None


def list_sessions(session: Session, *, project_id: int) -> list[tuple[SessionRow, SessionCounts]]:
    """The project's sessions, newest first, with their item, participant and answer counts."""
    items = select(func.count()).where(_CI.session_id == _S.id).correlate(_S).scalar_subquery()
    people = select(func.count()).where(CalibrationParticipant.session_id == _S.id).correlate(_S).scalar_subquery()
    answered = (
        select(func.count()).where(_A.session_id == _S.id, _A.verdict.is_not(None)).correlate(_S).scalar_subquery()
    )
    rows = session.execute(
        select(*_SESSION_COLUMNS, items, people, answered)
        .outerjoin(User, User.id == _S.created_by_id)
        .where(_S.project_id == project_id)
        .order_by(_S.id.desc())
    )
    return [(_session_row(row), SessionCounts(row[16], row[17], row[18])) for row in rows]


def active_user_ids(session: Session, *, user_ids: Sequence[int] = (), team_ids: Sequence[int] = ()) -> list[int]:
    """Active users among `user_ids` and the members of `team_ids`, by id."""
    if not user_ids and not team_ids:
        return []
    condition = User.id.in_(list(user_ids)) | User.team_id.in_(list(team_ids))
    return list(session.scalars(select(User.id).where(condition, User.is_active.is_(True)).order_by(User.id)))


def existing_team_ids(session: Session, *, team_ids: Sequence[int]) -> set[int]:
    return set(session.scalars(select(Team.id).where(Team.id.in_(list(team_ids)))))


def add_participants(session: Session, *, session_id: int, user_ids: Sequence[int]) -> None:
    if user_ids:
        session.execute(
            insert(CalibrationParticipant), [{"session_id": session_id, "user_id": one} for one in user_ids]
        )


def participants(session: Session, *, session_id: int) -> list[ParticipantRow]:
    rows = session.execute(
        select(User.id, User.name, Team.name)
        .join(CalibrationParticipant, CalibrationParticipant.user_id == User.id)
        .outerjoin(Team, Team.id == User.team_id)
        .where(CalibrationParticipant.session_id == session_id)
        .order_by(User.name, User.id)
    )
    return [ParticipantRow(row[0], row[1], row[2]) for row in rows]


def is_participant(session: Session, *, session_id: int, user_id: int) -> bool:
    found = session.execute(
        select(CalibrationParticipant.user_id).where(
            CalibrationParticipant.session_id == session_id, CalibrationParticipant.user_id == user_id
        )
    ).first()
    return found is not None


def item_ids_in_session(session: Session, *, session_id: int) -> set[int]:
    return set(session.scalars(select(_CI.item_id).where(_CI.session_id == session_id)))


def insert_items(session: Session, *, session_id: int, item_ids: Sequence[int], first_position: int) -> list[int]:
    """Add items to a session in the given order; returns their calibration item ids, in that order."""
    rows = [
        {"session_id": session_id, "item_id": item_id, "position": first_position + offset, "note": ""}
        for offset, item_id in enumerate(item_ids)
    ]
    returned = session.scalars(insert(_CI).returning(_CI.id, sort_by_parameter_order=True), rows)
    return [int(one) for one in returned]


def insert_answer_slots(session: Session, *, slots: Sequence[dict[str, Any]]) -> None:
    """Unanswered answer rows: session_id, calibration_item_id, annotator_id and shown_order each."""
    if slots:
        session.execute(insert(_A), list(slots))


def session_items(session: Session, *, session_id: int) -> list[CalibrationItemRow]:
    rows = session.execute(
        select(
            _CI.id,
            _CI.item_id,
            Item.external_id,
            _CI.position,
            _CI.agreed_verdict,
            _CI.agreed_payload,
            _CI.note,
            _CI.is_gold,
            _CI.agreed_at,
        )
        .join(Item, Item.id == _CI.item_id)
        .where(_CI.session_id == session_id)
        .order_by(_CI.position)
    )
    return [CalibrationItemRow(*row) for row in rows]


def answers(session: Session, *, session_id: int, annotator_id: int | None = None) -> list[AnswerRow]:
    """The session's answer rows (one annotator's only, when given), by item then annotator."""
    statement = (
        select(
            _A.id,
            _A.calibration_item_id,
            _A.annotator_id,
            User.name,
            _A.shown_order,
            _A.payload,
            _A.verdict,
            _A.time_spent_ms,
            _A.answered_at,
        )
        .join(User, User.id == _A.annotator_id)
        .where(_A.session_id == session_id)
        .order_by(_A.calibration_item_id, User.name, _A.annotator_id)
    )
    if annotator_id is not None:
        statement = statement.where(_A.annotator_id == annotator_id)
    return [
        AnswerRow(row[0], row[1], row[2], row[3], list(row[4]), row[5], row[6], row[7], row[8])
        for row in session.execute(statement)
    ]


def set_answer(
    session: Session,
    *,
    answer_id: int,
    payload: dict[str, Any],
    verdict: str,
    time_spent_ms: int | None,
    now: datetime,
) -> None:
    session.execute(
        update(_A)
        .where(_A.id == answer_id)
        .values(payload=payload, verdict=verdict, time_spent_ms=time_spent_ms, answered_at=now)
    )


def locked_state(session: Session, *, session_id: int, shared: bool) -> CalibrationState | None:
    """The session's state, its row locked to the end of the transaction (shared: others may share it).

    Answers and added items hold the shared lock while they write; the reveal takes the
    exclusive one before it reads the answers, so no answer lands after its figures.
    """
    value = session.scalar(select(_S.state).where(_S.id == session_id).with_for_update(read=shared))
    return None if value is None else CalibrationState(value)


def change_state(
    session: Session,
    *,
    session_id: int,
    from_state: CalibrationState,
    to_state: CalibrationState,
    values: dict[str, Any],
) -> bool:
    """Move a session from one state to the next (with other column values); False if it was not in `from_state`."""
    result = cast(
        CursorResult[Any],
        session.execute(update(_S).where(_S.id == session_id, _S.state == from_state).values(state=to_state, **values)),
    )
    return result.rowcount == 1


def set_agreed(
    session: Session,
    *,
    calibration_item_id: int,
    verdict: str,
    payload: dict[str, Any],
    note: str,
    now: datetime,
) -> None:
    session.execute(
        update(_CI)
        .where(_CI.id == calibration_item_id)
        .values(agreed_verdict=verdict, agreed_payload=payload, note=note, agreed_at=now)
    )


def set_gold(session: Session, *, calibration_item_id: int) -> None:
    session.execute(update(_CI).where(_CI.id == calibration_item_id).values(is_gold=True))


def random_disagreement_items(
    session: Session, *, project_id: int, count: int, exclude_item_ids: Sequence[int] = ()
) -> list[int]:
    """Up to `count` random items of the project whose judgments carry more than one verdict."""
    statement = (
        select(Judgment.item_id)
        .where(Judgment.project_id == project_id)
        .group_by(Judgment.item_id)
        .having(func.count(distinct(Judgment.verdict)) > 1)
    )
    if exclude_item_ids:
        statement = statement.where(Judgment.item_id.not_in(list(exclude_item_ids)))
    return list(session.scalars(statement.order_by(func.random()).limit(count)))


def waiting_sessions(session: Session, *, user_id: int) -> list[WaitingSession]:
    """Blind sessions where the user still has unanswered items, oldest first."""
    rows = session.execute(
        select(Project.slug, Project.name, _S.id, _S.name, func.count(_A.id))
        .select_from(_A)
        .join(_S, _S.id == _A.session_id)
        .join(Project, Project.id == _S.project_id)
        .where(_A.annotator_id == user_id, _A.verdict.is_(None), _S.state == CalibrationState.BLIND)
        .group_by(Project.slug, Project.name, _S.id, _S.name)
        .order_by(_S.id)
    )
    return [WaitingSession(row[0], row[1], row[2], row[3], row[4]) for row in rows]


def votes_around(
    session: Session, *, project_id: int, annotator_ids: Sequence[int], since: datetime, until: datetime
) -> tuple[list[JudgmentVote], list[JudgmentVote]]:
    """The annotators' judgments made in [since, until), and every judgment of the items they touched."""
    own = [
        JudgmentVote(*row)
        for row in session.execute(
            select(Judgment.item_id, Judgment.annotator_id, Judgment.verdict, Judgment.created_at).where(
                Judgment.annotator_id.in_(list(annotator_ids)),
                Judgment.project_id == project_id,
                Judgment.created_at >= since,
                Judgment.created_at < until,
            )
        )
    ]
    item_ids = sorted({vote.item_id for vote in own})
    everyone: list[JudgmentVote] = []
    for start in range(0, len(item_ids), 500):
        everyone.extend(
            JudgmentVote(*row)
            for row in session.execute(
                select(Judgment.item_id, Judgment.annotator_id, Judgment.verdict, Judgment.created_at).where(
                    Judgment.project_id == project_id, Judgment.item_id.in_(item_ids[start : start + 500])
                )
            )
        )
    return own, everyone


def team_ids_by_name(session: Session, *, names: Sequence[str]) -> dict[str, int]:
    if not names:
        return {}
    return {row[0]: row[1] for row in session.execute(select(Team.name, Team.id).where(Team.name.in_(list(names))))}


def team_names(session: Session, *, team_ids: Sequence[int]) -> list[str]:
    if not team_ids:
        return []
    return list(session.scalars(select(Team.name).where(Team.id.in_(list(team_ids))).order_by(Team.name)))


def all_team_names(session: Session) -> list[str]:
    return list(session.scalars(select(Team.name).order_by(Team.name)))


def user_ids_by_email(session: Session, *, emails: Sequence[str]) -> dict[str, int]:
    if not emails:
        return {}
    rows = session.execute(select(func.lower(User.email), User.id).where(func.lower(User.email).in_(list(emails))))
    return {row[0]: row[1] for row in rows}


def response_positions(session: Session, *, item_ids: Sequence[int]) -> dict[int, list[int]]:
    """Each item's response positions, in order."""
    found: dict[int, list[int]] = {}
    rows = session.execute(
        select(Response.item_id, Response.position)
        .where(Response.item_id.in_(list(item_ids)))
        .order_by(Response.item_id, Response.position)
    )
    for item_id, position in rows:
        found.setdefault(item_id, []).append(position)
    return found
