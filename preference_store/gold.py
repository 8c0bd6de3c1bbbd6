"""Gold answers: items with an expected answer, and annotators' accuracy on them.

A gold item leaves the overlap queue (its `item_queue.open_slots` is held at 0) and is
served instead through `next_gold_item`, to every member at most once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, delete, exists, func, select, update
from sqlalchemy.orm import Session

from preference_store.models import Assignment, AssignmentState, GoldAnswer, Item, ItemQueue, Judgment, ProjectMember

_G = cast(Table, GoldAnswer.__table__)
_A = cast(Table, Assignment.__table__)


@dataclass(frozen=True, slots=True)
class GoldRow:
    """One item's gold answer."""

    item_id: int
    project_id: int
    verdict: str
    accepted_verdicts: list[str]
    payload: dict[str, Any]
    explanation: str
    source: str
    created_by_id: int | None
    created_at: datetime
    updated_at: datetime


def _row(gold: GoldAnswer) -> GoldRow:
    return GoldRow(
        gold.item_id,
        gold.project_id,
        gold.verdict,
        list(gold.accepted_verdicts),
        dict(gold.payload),
        gold.explanation,
        gold.source,
        gold.created_by_id,
        gold.created_at,
        gold.updated_at,
    )


def get_gold(session: Session, *, item_id: int) -> GoldRow | None:
    """An item's gold answer, or None."""
    gold = session.get(GoldAnswer, item_id)
    return None if gold is None else _row(gold)


def gold_for_items(session: Session, *, item_ids: Sequence[int]) -> dict[int, GoldRow]:
    """The gold answers of these items, by item id (items without one are absent)."""
    if not item_ids:
        return {}
    rows = session.scalars(select(GoldAnswer).where(GoldAnswer.item_id.in_(list(item_ids))))
    return {gold.item_id: _row(gold) for gold in rows}


def list_gold(session: Session, *, project_id: int) -> list[tuple[str, GoldRow]]:
    """Every gold answer of a project with its item's external id, in item order."""
    rows = session.execute(
        select(Item.external_id, GoldAnswer)
        .join(Item, Item.id == GoldAnswer.item_id)
        .where(GoldAnswer.project_id == project_id)
        .order_by(GoldAnswer.item_id)
    )
    return [(external_id, _row(gold)) for external_id, gold in rows]


def count_gold(session: Session, *, project_id: int) -> int:
    """How many gold items the project has."""
    return int(session.scalar(select(func.count()).where(GoldAnswer.project_id == project_id)) or 0)


def upsert_gold(
    session: Session,
    *,
    item_id: int,
    project_id: int,
    verdict: str,
    accepted_verdicts: list[str],
    payload: dict[str, Any],
    explanation: str,
    source: str,
    created_by_id: int | None,
    now: datetime,
) -> bool:
    """Set an item's gold answer and take the item out of the overlap queue; True if it was new."""
    gold = session.get(GoldAnswer, item_id)
    created = gold is None
    if gold is None:
        gold = GoldAnswer(item_id=item_id, project_id=project_id, created_by_id=created_by_id, created_at=now)
        session.add(gold)
    gold.verdict = verdict
    gold.accepted_verdicts = list(accepted_verdicts)
    gold.payload = payload
    gold.explanation = explanation
    gold.source = source
    gold.updated_at = now
    session.flush()
    if created:
        session.execute(update(ItemQueue).where(ItemQueue.item_id == item_id).values(open_slots=0, is_reopened=False))
    return created


def delete_gold(session: Session, *, item_id: int, overlap: int) -> bool:
    """Remove an item's gold answer and give it back to the overlap queue; False if it had none."""
    if session.execute(delete(GoldAnswer).where(GoldAnswer.item_id == item_id)).rowcount != 1:  # type: ignore[attr-defined]
        return False
    taken = (
        select(func.count())
        .where(
            Assignment.item_id == item_id,
            Assignment.state.in_([AssignmentState.LEASED, AssignmentState.SUBMITTED]),
        )
        .scalar_subquery()
    )
    open_slots = case((taken >= overlap, 0), else_=overlap - taken)
    session.execute(
        update(ItemQueue)
        .where(ItemQueue.item_id == item_id)
        .values(open_slots=open_slots, is_reopened=open_slots > 0)
        .execution_options(synchronize_session=False)
    )
    return True


# The claim's one extra query in a project that mixes gold in: how many items the caller
# was served (the schedule's counter) and the first gold item they never held.
_GOLD_PROBE = select(
    select(func.count())
    .select_from(_A)
    .where(_A.c.annotator_id == bindparam("annotator_id"), _A.c.project_id == bindparam("project_id"))
    .scalar_subquery()
    .label("served"),
    select(_G.c.item_id)
    .where(
        _G.c.project_id == bindparam("project_id"),
        ~exists().where(
            _A.c.annotator_id == bindparam("annotator_id"),
            _A.c.project_id == bindparam("project_id"),
            _A.c.item_id == _G.c.item_id,
        ),
    )
    .order_by(_G.c.item_id)
    .limit(1)
    .scalar_subquery()
    .label("gold_item"),
)


def next_gold_item(session: Session, *, project_id: int, annotator_id: int) -> tuple[int, int | None]:
    """(items ever served to the annotator in the project, the first gold item they never held)."""
    row = session.connection().execute(_GOLD_PROBE, {"project_id": project_id, "annotator_id": annotator_id}).one()
    return int(row.served or 0), None if row.gold_item is None else int(row.gold_item)


def is_gold_item(session: Session, *, item_id: int) -> bool:
    """Whether the item has a gold answer."""
    return session.get(GoldAnswer, item_id) is not None


def recent_gold_results(
    session: Session, *, project_id: int, annotator_id: int, limit: int | None, since: datetime | None = None
) -> list[tuple[str, str, list[str]]]:
    """The annotator's latest gold judgments in the project, newest first: (verdict, gold verdict, accepted)."""
    statement = (
        select(Judgment.verdict, GoldAnswer.verdict, GoldAnswer.accepted_verdicts)
        .join(GoldAnswer, GoldAnswer.item_id == Judgment.item_id)
        .where(Judgment.project_id == project_id, Judgment.annotator_id == annotator_id)
        .order_by(Judgment.created_at.desc(), Judgment.id.desc())
    )
    if since is not None:
        statement = statement.where(Judgment.created_at > since)
    if limit is not None:
        statement = statement.limit(limit)
    return [(verdict, gold, list(accepted or [])) for verdict, gold, accepted in session.execute(statement)]


def gold_answers_of_project(session: Session, *, project_id: int) -> dict[int, tuple[str, list[str]]]:
    """Every gold answer of a project as {item id: (verdict, accepted verdicts)} (for quality reports)."""
    rows = session.execute(
        select(GoldAnswer.item_id, GoldAnswer.verdict, GoldAnswer.accepted_verdicts).where(
            GoldAnswer.project_id == project_id
        )
    )
    return {int(item_id): (verdict, list(accepted or [])) for item_id, verdict, accepted in rows}


@dataclass(frozen=True, slots=True)
class MemberPause:
    paused_at: datetime
    reason: str


def member_pause(session: Session, *, project_id: int, user_id: int) -> MemberPause | None:
    """When and why the member is paused in the project, or None."""
    row = session.execute(
        select(ProjectMember.paused_at, ProjectMember.pause_reason).where(
            ProjectMember.project_id == project_id, ProjectMember.user_id == user_id
        )
    ).first()
    if row is None or row.paused_at is None:
        return None
    return MemberPause(row.paused_at, row.pause_reason or "")


def resumed_at(session: Session, *, project_id: int, user_id: int) -> datetime | None:
    """When a lead last lifted the member's pause, or None."""
    return session.scalar(
        select(ProjectMember.resumed_at).where(ProjectMember.project_id == project_id, ProjectMember.user_id == user_id)
    )


def set_pause(session: Session, *, project_id: int, user_id: int, paused_at: datetime, reason: str) -> bool:
    """Pause a member; False if they are not a member."""
    result = session.execute(
        update(ProjectMember)
        .where(ProjectMember.project_id == project_id, ProjectMember.user_id == user_id)
        .values(paused_at=paused_at, pause_reason=reason)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def resume(session: Session, *, project_id: int, user_id: int, now: datetime) -> bool:
    """Lift a member's pause; False if they were not paused."""
    result = session.execute(
        update(ProjectMember)
        .where(
            ProjectMember.project_id == project_id,
            ProjectMember.user_id == user_id,
            ProjectMember.paused_at.is_not(None),
        )
        .values(paused_at=None, pause_reason=None, resumed_at=now)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
