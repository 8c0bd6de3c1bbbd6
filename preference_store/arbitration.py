"""Arbitration cases: disputed items, the queue leads work through, and their final verdicts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, case, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from preference_store.models import (
    ArbitrationCase,
    ArbitrationReason,
    ArbitrationState,
    Assignment,
    AssignmentState,
    GoldAnswer,
    Item,
    ItemQueue,
    Judgment,
    Response,
)
from preference_store.queue import queue_language


@dataclass(frozen=True, slots=True)
class CaseRow:
    """One case with the item fields the queue and the case page show."""

    id: int
    project_id: int
    item_id: int
    external_id: str
    metadata: dict[str, Any]
    reason: ArbitrationReason
    state: ArbitrationState
    agreement: float | None
    judgments: int
    extended_by: int
    verdict: str | None
    payload: dict[str, Any] | None
    rationale: str | None
    opened_at: datetime
    resolved_by_id: int | None
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class CaseFilters:
    """Which cases the queue lists; None does not filter."""

    state: ArbitrationState | None = ArbitrationState.OPEN
    reason: ArbitrationReason | None = None
    language: str | None = None
    market: str | None = None
    category: str | None = None


@dataclass(frozen=True, slots=True)
class ItemVote:
    """One judgment of an item as the opening rule reads it."""

    annotator_id: int
    verdict: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AnnotatorRecord:
    """An annotator's record in a project: judgments, agreement with the majority, gold accuracy."""

    judgments: int
    compared: int
    """Judgments on items with at least two judgments."""
    agreeing: int
    """Of those, judgments whose verdict more than half of the item's judgments share."""
    gold_judged: int
    gold_correct: int


_COLUMNS = (
    ArbitrationCase.id,
    ArbitrationCase.project_id,
    ArbitrationCase.item_id,
    Item.external_id,
    Item.metadata_,
    ArbitrationCase.reason,
    ArbitrationCase.state,
    ArbitrationCase.agreement,
    ArbitrationCase.judgments,
    ArbitrationCase.extended_by,
    ArbitrationCase.verdict,
    ArbitrationCase.payload,
    ArbitrationCase.rationale,
    ArbitrationCase.opened_at,
    ArbitrationCase.resolved_by_id,
    ArbitrationCase.resolved_at,
)


def _cases() -> Any:
    return select(*_COLUMNS).join(Item, Item.id == ArbitrationCase.item_id)


def _case_row(row: Any) -> CaseRow:
    values = list(row)
    values[4] = dict(values[4] or {})
    values[11] = dict(values[11]) if values[11] is not None else None
    return CaseRow(*values)


# The submit hook's statements, built once: on the hot path, building and caching a
# statement per call costs more than running it.
_Q = cast(Table, ItemQueue.__table__)
_A = cast(Table, Assignment.__table__)
_J = cast(Table, Judgment.__table__)
_G = cast(Table, GoldAnswer.__table__)
_C = cast(Table, ArbitrationCase.__table__)
_LIVE_LEASE_ON_ITEM = exists().where(_A.c.item_id == bindparam("item_id"), _A.c.state == AssignmentState.LEASED.value)
_SLOTS_AND_LIVE_LEASE = select(_Q.c.open_slots, _LIVE_LEASE_ON_ITEM.label("leased")).where(
    _Q.c.item_id == bindparam("item_id")
)
_LOCK_QUEUE_ROW = select(_Q.c.item_id).where(_Q.c.item_id == bindparam("item_id")).with_for_update()
_ANY_LIVE_LEASE = select(_LIVE_LEASE_ON_ITEM)
_VOTES_WITH_GOLD_AND_CASE = (
    select(
        _J.c.annotator_id,
        _J.c.verdict,
        _J.c.payload,
        _G.c.verdict.label("gold_verdict"),
        _G.c.accepted_verdicts.label("gold_accepted"),
        select(_C.c.id)
        .where(_C.c.project_id == bindparam("project_id"), _C.c.item_id == bindparam("item_id"))
        .scalar_subquery()
        .label("case_id"),
    )
    .outerjoin(_G, _G.c.item_id == _J.c.item_id)
    .where(_J.c.project_id == bindparam("project_id"), _J.c.item_id == bindparam("item_id"))
    .order_by(_J.c.id)
)


def item_is_complete(session: Session, *, item_id: int, seen: tuple[int | None, bool] | None = None) -> bool:
    """Whether every slot of the item is taken and no lease on it is live: its last judgment is in.

    One primary-key read, unless (PostgreSQL) the item is full and a lease on it looked live:
    that lease may be another last judgment being submitted at this moment, so the queue row
    is locked and the leases read again; of two such submissions the later waits, then sees
    the other committed. (Two cannot both see the other's commit, so no case opens twice.)
    `seen`: (open slots, another lease live) as the submission's own statement read them
    (`single_statement.close_and_store`), in place of the first read.
    """
    connection = session.connection()
    params = {"item_id": item_id}
    if seen is None:
        row = connection.execute(_SLOTS_AND_LIVE_LEASE, params).first()
        seen = (None, False) if row is None else (int(row.open_slots), bool(row.leased))
    open_slots, leased = seen
    if open_slots is None or open_slots > 0:
        return False
    if not leased:
        return True
    if connection.dialect.name != "postgresql":
        return False  # SQLite writes one transaction at a time: what it read stands
    connection.execute(_LOCK_QUEUE_ROW, params)
    return not connection.execute(_ANY_LIVE_LEASE, params).scalar()


def unsettled_votes(
    session: Session, *, project_id: int, item_id: int
) -> tuple[list[ItemVote], set[str] | None] | None:
    """A judged item's votes (oldest first) and accepted gold verdicts, or None if it has a case.

    One statement, for the submit hook; an item without judgments reads its case apart.
    """
    rows = session.connection().execute(_VOTES_WITH_GOLD_AND_CASE, {"project_id": project_id, "item_id": item_id}).all()
    if not rows:
        if case_id_for_item(session, project_id=project_id, item_id=item_id) is not None:
            return None
        return [], accepted_gold(session, item_id=item_id)
    first = rows[0]
    if first.case_id is not None:
        return None
    gold = (
        None
        if first.gold_verdict is None
        else {str(first.gold_verdict), *(str(key) for key in first.gold_accepted or [])}
    )
    return [ItemVote(int(row.annotator_id), str(row.verdict), dict(row.payload)) for row in rows], gold


def item_votes(session: Session, *, project_id: int, item_id: int) -> list[ItemVote]:
    """The item's judgments, oldest first."""
    rows = session.execute(
        select(Judgment.annotator_id, Judgment.verdict, Judgment.payload)
        .where(Judgment.project_id == project_id, Judgment.item_id == item_id)
        .order_by(Judgment.id)
    )
    return [ItemVote(int(annotator), str(verdict), dict(payload)) for annotator, verdict, payload in rows]


def accepted_gold(session: Session, *, item_id: int) -> set[str] | None:
    """The verdict keys the item's gold answer accepts, or None when the item has no gold."""
    row = session.execute(
        select(GoldAnswer.verdict, GoldAnswer.accepted_verdicts).where(GoldAnswer.item_id == item_id)
    ).first()
    return None if row is None else {str(row[0]), *(str(key) for key in row[1] or [])}


def gold_of_project(session: Session, *, project_id: int) -> dict[int, set[str]]:
    """Every gold item of the project with the verdict keys it accepts."""
    rows = session.execute(
        select(GoldAnswer.item_id, GoldAnswer.verdict, GoldAnswer.accepted_verdicts).where(
            GoldAnswer.project_id == project_id
        )
    )
    return {int(item_id): {str(verdict), *(str(key) for key in accepted or [])} for item_id, verdict, accepted in rows}


def gold_answer(session: Session, *, item_id: int) -> tuple[str, dict[str, Any], str] | None:
    """The item's gold answer as (verdict, payload, explanation), or None."""
    row = session.execute(
        select(GoldAnswer.verdict, GoldAnswer.payload, GoldAnswer.explanation).where(GoldAnswer.item_id == item_id)
    ).first()
    return None if row is None else (str(row[0]), dict(row[1] or {}), str(row[2] or ""))


def case_id_for_item(session: Session, *, project_id: int, item_id: int) -> int | None:
    """The id of the item's case, or None."""
    found = session.scalar(
        select(ArbitrationCase.id).where(ArbitrationCase.project_id == project_id, ArbitrationCase.item_id == item_id)
    )
    return None if found is None else int(found)


def response_positions(session: Session, *, item_id: int) -> list[int]:
    """The item's response positions, in order."""
    return [
        int(p)
        for p in session.scalars(
            select(Response.position).where(Response.item_id == item_id).order_by(Response.position)
        )
    ]


def open_case(
    session: Session,
    *,
    project_id: int,
    item_id: int,
    reason: ArbitrationReason,
    agreement: float | None,
    judgments: int,
    extended_by: int,
    opened_by_id: int | None,
    now: datetime,
) -> int | None:
    """Open a case for the item; None when it already has one (one case per item)."""
    savepoint = session.begin_nested()
    case_row = ArbitrationCase(
        project_id=project_id,
        item_id=item_id,
        reason=reason,
        state=ArbitrationState.OPEN,
        agreement=agreement,
        judgments=judgments,
        extended_by=extended_by,
        opened_by_id=opened_by_id,
        opened_at=now,
    )
    session.add(case_row)
    try:
        session.flush()
    except IntegrityError:
        savepoint.rollback()
        return None
    savepoint.commit()
    return int(case_row.id)


def iter_complete_unarbitrated(session: Session, *, project_id: int) -> Iterator[tuple[int, list[ItemVote]]]:
    """Stream the project's complete items without a case, each with its judgments (for a scan)."""
    live = exists().where(Assignment.item_id == Judgment.item_id, Assignment.state == AssignmentState.LEASED.value)
    cased = exists().where(ArbitrationCase.item_id == Judgment.item_id, ArbitrationCase.project_id == project_id)
    statement = (
        select(Judgment.item_id, Judgment.annotator_id, Judgment.verdict, Judgment.payload)
        .join(ItemQueue, ItemQueue.item_id == Judgment.item_id)
        .where(Judgment.project_id == project_id, ItemQueue.open_slots == 0, ~live, ~cased)
        .order_by(Judgment.item_id, Judgment.id)
        .execution_options(yield_per=2000)
    )
    current: int | None = None
    votes: list[ItemVote] = []
    for item_id, annotator_id, verdict, payload in session.execute(statement):
        if item_id != current:
            if current is not None:
                yield current, votes
            current, votes = int(item_id), []
        votes.append(ItemVote(int(annotator_id), str(verdict), dict(payload)))
    if current is not None:
        yield current, votes


def _filtered(statement: Any, *, project_id: int, filters: CaseFilters) -> Any:
    statement = statement.where(ArbitrationCase.project_id == project_id)
    if filters.state is not None:
        statement = statement.where(ArbitrationCase.state == filters.state)
    if filters.reason is not None:
        statement = statement.where(ArbitrationCase.reason == filters.reason)
    if filters.language:
        statement = statement.join(ItemQueue, ItemQueue.item_id == ArbitrationCase.item_id).where(
            ItemQueue.language == queue_language(filters.language)
        )
    for key, wanted in (("market", filters.market), ("category", filters.category)):
        if wanted:
            statement = statement.where(Item.metadata_[key].as_string() == wanted)
    return statement


def list_cases(
    session: Session,
    *,
    project_id: int,
    filters: CaseFilters,
    after: tuple[datetime, int] | None = None,
    limit: int,
) -> list[CaseRow]:
    """Cases matching the filters, oldest opened first, after a keyset `(opened_at, id)`."""
    statement = _filtered(_cases(), project_id=project_id, filters=filters)
    if after is not None:
        opened, case_id = after
        statement = statement.where(
            or_(
                ArbitrationCase.opened_at > opened,
                and_(ArbitrationCase.opened_at == opened, ArbitrationCase.id > case_id),
            )
        )
    rows = session.execute(statement.order_by(ArbitrationCase.opened_at, ArbitrationCase.id).limit(limit))
    return [_case_row(row) for row in rows]


def count_by_state(session: Session, *, project_id: int) -> dict[str, int]:
    """How many cases the project has in each state."""
    rows = session.execute(
        select(ArbitrationCase.state, func.count())
        .where(ArbitrationCase.project_id == project_id)
        .group_by(ArbitrationCase.state)
    )
    found = {state.value: 0 for state in ArbitrationState}
    for state, count in rows:
        found[ArbitrationState(state).value] = int(count)
    return found


def get_case(session: Session, *, project_id: int, case_id: int) -> CaseRow | None:
    row = session.execute(
        _cases().where(ArbitrationCase.id == case_id, ArbitrationCase.project_id == project_id)
    ).first()
    return None if row is None else _case_row(row)


def neighbours(
    session: Session, *, project_id: int, opened_at: datetime, case_id: int
) -> tuple[int | None, int | None]:
    """The open cases just before and just after a case in the queue's order, as ids."""
    base = select(ArbitrationCase.id).where(
        ArbitrationCase.project_id == project_id, ArbitrationCase.state == ArbitrationState.OPEN
    )
    later = or_(
        ArbitrationCase.opened_at > opened_at,
        and_(ArbitrationCase.opened_at == opened_at, ArbitrationCase.id > case_id),
    )
    earlier = or_(
        ArbitrationCase.opened_at < opened_at,
        and_(ArbitrationCase.opened_at == opened_at, ArbitrationCase.id < case_id),
    )
    previous = session.scalar(
        base.where(earlier).order_by(ArbitrationCase.opened_at.desc(), ArbitrationCase.id.desc()).limit(1)
    )
    following = session.scalar(base.where(later).order_by(ArbitrationCase.opened_at, ArbitrationCase.id).limit(1))
    return previous, following


def first_open(session: Session, *, project_id: int) -> int | None:
    """The oldest open case of the project."""
    return session.scalar(
        select(ArbitrationCase.id)
        .where(ArbitrationCase.project_id == project_id, ArbitrationCase.state == ArbitrationState.OPEN)
        .order_by(ArbitrationCase.opened_at, ArbitrationCase.id)
        .limit(1)
    )


def resolve(
    session: Session,
    *,
    case_id: int,
    verdict: str,
    payload: dict[str, Any],
    rationale: str,
    resolved_by_id: int,
    now: datetime,
) -> bool:
    """Record the final verdict of an open (or already resolved) case; False if it is dismissed or gone."""
    result = session.execute(
        update(ArbitrationCase)
        .where(
            ArbitrationCase.id == case_id,
            ArbitrationCase.state.in_([ArbitrationState.OPEN, ArbitrationState.RESOLVED]),
        )
        .values(
            state=ArbitrationState.RESOLVED,
            verdict=verdict,
            payload=payload,
            rationale=rationale,
            resolved_by_id=resolved_by_id,
            resolved_at=now,
        )
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def dismiss(session: Session, *, case_id: int, rationale: str | None, resolved_by_id: int, now: datetime) -> bool:
    """Close an open case without a verdict; False if it was not open."""
    result = session.execute(
        update(ArbitrationCase)
        .where(ArbitrationCase.id == case_id, ArbitrationCase.state == ArbitrationState.OPEN)
        .values(state=ArbitrationState.DISMISSED, rationale=rationale, resolved_by_id=resolved_by_id, resolved_at=now)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def annotator_records(session: Session, *, project_id: int, annotator_ids: Sequence[int]) -> dict[int, AnnotatorRecord]:
    """Each annotator's judgments in the project, agreement with each item's majority, and gold accuracy.

    One grouped query: the verdict counts of every item the annotators judged, joined back
    to their judgments.
    """
    if not annotator_ids:
        return {}
    theirs = aliased(Judgment, name="theirs")
    items = (
        select(theirs.item_id)
        .where(theirs.project_id == project_id, theirs.annotator_id.in_(annotator_ids))
        .distinct()
        .subquery()
    )
    counts = (
        select(Judgment.item_id, Judgment.verdict, func.count().label("n"))
        .where(Judgment.project_id == project_id, Judgment.item_id.in_(select(items.c.item_id)))
        .group_by(Judgment.item_id, Judgment.verdict)
        .subquery()
    )
    totals = select(counts.c.item_id, func.sum(counts.c.n).label("total")).group_by(counts.c.item_id).subquery()
    mine = aliased(Judgment, name="mine")
    gold = aliased(GoldAnswer, name="gold")
    compared = totals.c.total > 1
    statement = (
        select(
            mine.annotator_id,
            func.count(),
            func.sum(case((compared, 1), else_=0)),
            func.sum(case((and_(compared, counts.c.n * 2 > totals.c.total), 1), else_=0)),
        )
        .join(counts, and_(counts.c.item_id == mine.item_id, counts.c.verdict == mine.verdict))
        .join(totals, totals.c.item_id == mine.item_id)
        .where(mine.project_id == project_id, mine.annotator_id.in_(annotator_ids))
        .group_by(mine.annotator_id)
    )
    graded: dict[int, list[int]] = {}
    gold_rows = session.execute(
        select(mine.annotator_id, mine.verdict, gold.verdict, gold.accepted_verdicts)
        .join(gold, gold.item_id == mine.item_id)
        .where(mine.project_id == project_id, mine.annotator_id.in_(annotator_ids))
    )
    for annotator_id, verdict, expected, accepted in gold_rows:
        tally = graded.setdefault(int(annotator_id), [0, 0])
        tally[0] += 1
        tally[1] += verdict == expected or verdict in (accepted or [])
    found = {}
    for annotator_id, judged, compared_count, agreeing in session.execute(statement):
        gold_judged, gold_correct = graded.get(int(annotator_id), [0, 0])
        found[int(annotator_id)] = AnnotatorRecord(
            int(judged), int(compared_count or 0), int(agreeing or 0), gold_judged, gold_correct
        )
    return found
