"""The claim queue: leasing items to annotators and closing their assignments.

Claiming never scans a project. Each annotator claims items in increasing id order, so
the newest item they hold is a cursor: every item below it that they never held was
full when they passed it, and can only have become servable again through a lease that
expired or was skipped, or whose rank moved (priority), which sets
`item_queue.is_reopened`. A claim therefore looks at the few reopened items below the
cursor first, then walks the open-items index from the cursor.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    CursorResult,
    Integer,
    Table,
    bindparam,
    case,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from preference_store.gold import next_gold_item
from preference_store.models import Assignment, AssignmentState, GoldAnswer, ItemQueue, Judgment, Response

_A = cast(Table, Assignment.__table__)
_Q = cast(Table, ItemQueue.__table__)
_J = cast(Table, Judgment.__table__)

PRIORITY_LIMIT = 1000
"""Item priorities run from -PRIORITY_LIMIT to PRIORITY_LIMIT; higher is served first."""
_RANK_STEP = 2**40


def queue_rank(item_id: int, priority: int = 0) -> int:
    """An item's place in the serving order: by priority, then by import order."""
    return (PRIORITY_LIMIT - priority) * _RANK_STEP + item_id


def queue_language(language: object) -> str | None:
    """The routing key of a content language tag: its primary subtag ('th-TH' -> 'th')."""
    if not isinstance(language, str) or not language.strip():
        return None
    return language.strip().split("-")[0].split("_")[0].lower()[:16]


# Literal 0 as in the partial indexes' WHERE clauses, so PostgreSQL's generic plans can
# prove the index applies.
ZERO: ColumnElement[int] = literal_column("0", Integer)
# LIMIT 1 written out: a generic plan (a statement prepared and run many times) cannot see a
# bound limit, guesses a tenth of the table, and joins the claim's row by scanning it.
ONE: ColumnElement[int] = literal_column("1", Integer)
_LEASED = AssignmentState.LEASED.value

# The claim's parameters are named unlike any column ("in_project", not "project_id"):
# single_statement runs these searches in one statement with an UPDATE of item_queue, and
# SQLAlchemy adds a parameter named like a column of an updated table to its SET clause.
LIVE_LEASE = select(_A.c.id, _A.c.item_id, _A.c.shown_order, _A.c.leased_until).where(
    _A.c.annotator_id == bindparam("for_annotator"),
    _A.c.project_id == bindparam("in_project"),
    _A.c.state == _LEASED,
)
_CURSOR = func.coalesce(
    select(func.max(_A.c.queue_rank))
    .where(_A.c.annotator_id == bindparam("for_annotator"), _A.c.project_id == bindparam("in_project"))
    .scalar_subquery(),
    0,
)


def _not_held(queue_rows: Any) -> ColumnElement[bool]:
    """The caller never held the item: one probe of the assignment's unique index per row.

    A count compared with zero, not NOT EXISTS: PostgreSQL may turn NOT EXISTS into an
    anti-join, which reads every assignment the caller ever had in the project (for each
    row, on stale statistics) where the search looks at a few rows.
    """
    held = (
        select(func.count())
        .where(
            _A.c.annotator_id == bindparam("for_annotator"),
            _A.c.project_id == bindparam("in_project"),
            _A.c.item_id == queue_rows.c.item_id,
        )
        .scalar_subquery()
    )
    return held == ZERO


def _routed(queue_rows: Any) -> ColumnElement[bool]:
    """Items in one of the caller's languages, or in none at all."""
    return or_(queue_rows.c.language.is_(None), queue_rows.c.language.in_(bindparam("languages", expanding=True)))


@dataclass(frozen=True, slots=True)
class ClaimStatements:
    reopened: Any
    candidate: Any
    reopened_then_candidate: Any
    """Both probes in one statement (SQLite): the first row of either, reopened first."""
    reopened_skipping: Any
    candidate_skipping: Any
    reopened_waiting: Any
    candidate_waiting: Any


def _open_after_cursor(
    queue_rows: Any, routed: bool, *, held_only_if_reopened: bool = False
) -> tuple[ColumnElement[bool], ...]:
    # The caller can hold an open item after their cursor only if its rank moved up past the
    # cursor since, which flagged it reopened: `held_only_if_reopened` probes those rows
    # alone (the count's shortcut; a claim probes every row it would take).
    not_held = or_(~queue_rows.c.is_reopened, _not_held(queue_rows)) if held_only_if_reopened else _not_held(queue_rows)
    conditions = (
        queue_rows.c.project_id == bindparam("in_project"),
        queue_rows.c.open_slots > ZERO,
        queue_rows.c.rank > _CURSOR,
        not_held,
    )
    return (*conditions, _routed(queue_rows)) if routed else conditions


def _reopened_below_cursor(queue_rows: Any, routed: bool) -> tuple[ColumnElement[bool], ...]:
    # Only reopened items below the cursor: one above it is next in the walk anyway, and
    # claiming it first would move the cursor past open items the caller never saw.
    conditions = (
        queue_rows.c.project_id == bindparam("in_project"),
        queue_rows.c.is_reopened,
        queue_rows.c.open_slots > ZERO,
        queue_rows.c.rank < _CURSOR,
        _not_held(queue_rows),
    )
    return (*conditions, _routed(queue_rows)) if routed else conditions


@functools.cache
def claim_statements(routed: bool) -> ClaimStatements:
    """The claim's SELECTs, with or without language routing (compiled once each)."""
    reopened = select(_Q.c.item_id, _Q.c.rank).where(*_reopened_below_cursor(_Q, routed)).order_by(_Q.c.rank).limit(ONE)
    candidate = select(_Q.c.item_id, _Q.c.rank).where(*_open_after_cursor(_Q, routed)).order_by(_Q.c.rank).limit(ONE)
    first_open = aliased(_Q, name="first_open_q")
    first_open_probe = (
        select(first_open.c.rank)
        .where(*_open_after_cursor(first_open, routed))
        .order_by(first_open.c.rank)
        .limit(ONE)
        .scalar_subquery()
    )
    candidate_skipping = (
        select(_Q.c.item_id, _Q.c.rank, first_open_probe.label("first_open"))
        .where(*_open_after_cursor(_Q, routed))
        .order_by(_Q.c.rank)
        .limit(ONE)
        .with_for_update(skip_locked=True, of=_Q)
    )
    return ClaimStatements(
        reopened=reopened,
        candidate=candidate,
        reopened_then_candidate=_first_of(reopened, candidate),
        reopened_skipping=reopened.with_for_update(skip_locked=True, of=_Q),
        candidate_skipping=candidate_skipping,
        reopened_waiting=reopened.with_for_update(of=_Q),
        candidate_waiting=candidate.with_for_update(of=_Q),
    )


def _first_of(*probes: Any) -> Any:
    """One statement answering the first row of the first probe that has one (each ends in LIMIT 1)."""
    turns = [select(literal(turn).label("turn"), probe.subquery()) for turn, probe in enumerate(probes)]
    combined = union_all(*turns).subquery()
    return select(combined.c.item_id, combined.c.rank).order_by(combined.c.turn).limit(ONE)


_OPEN_BETWEEN = (
    select(_Q.c.item_id)
    .where(
        _Q.c.project_id == bindparam("project_id"),
        _Q.c.open_slots > ZERO,
        _Q.c.rank >= bindparam("from_rank"),
        _Q.c.rank < bindparam("to_rank"),
    )
    .order_by(_Q.c.rank)
)
_MARK_REOPENED = (
    update(_Q).where(_Q.c.item_id == bindparam("target_item"), _Q.c.open_slots > ZERO).values(is_reopened=True)
)
TAKE_SLOT_VALUES: dict[str, Any] = {
    "open_slots": _Q.c.open_slots - 1,
    "is_reopened": case((_Q.c.open_slots == 1, False), else_=_Q.c.is_reopened),
}
"""An item queue row giving one open slot to a lease (a full item is no longer reopened)."""
_TAKE_SLOT = update(_Q).where(_Q.c.item_id == bindparam("target_item"), _Q.c.open_slots > ZERO).values(TAKE_SLOT_VALUES)
# Gold items stay out of the overlap queue: their leases take no slot, so give none back.
RETURN_SLOT = (
    update(_Q)
    .where(
        _Q.c.item_id == bindparam("target_item"),
        ~exists().where(cast(Table, GoldAnswer.__table__).c.item_id == _Q.c.item_id),
    )
    .values(open_slots=_Q.c.open_slots + 1, is_reopened=True)
)
_NEW_ASSIGNMENT = {
    "project_id": bindparam("in_project"),
    "item_id": bindparam("item_id"),
    "annotator_id": bindparam("for_annotator"),
    "shown_order": bindparam("shown_order"),
    "queue_rank": bindparam("queue_rank"),
    "state": _LEASED,
    "leased_until": bindparam("leased_until"),
    "created_at": bindparam("now"),
}
_INSERT_ASSIGNMENT = _A.insert().values(**_NEW_ASSIGNMENT)
_INSERT_ASSIGNMENT_UNLESS_LEASED = (
    postgresql.insert(_A).values(**_NEW_ASSIGNMENT).on_conflict_do_nothing().returning(_A.c.id)
)
# Ordered, so that concurrent reapers lock rows in the same order and never deadlock.
_EXPIRED_LEASES = (
    select(_A.c.id, _A.c.item_id)
    .where(
        _A.c.project_id == bindparam("project_id"),
        _A.c.state == _LEASED,
        _A.c.leased_until < bindparam("now"),
    )
    .order_by(_A.c.id)
)
_CLOSE_LEASE = (
    update(_A)
    .where(
        _A.c.id == bindparam("target_assignment"),
        _A.c.annotator_id == bindparam("target_annotator"),
        _A.c.state == _LEASED,
    )
    .values(state=bindparam("new_state"), closed_at=bindparam("closed"), skip_reason=bindparam("reason"))
)
_EXPIRE_ONE = (
    update(_A)
    .where(_A.c.id == bindparam("target_assignment"), _A.c.state == _LEASED)
    .values(state=AssignmentState.EXPIRED.value, closed_at=bindparam("closed"))
)
_ASSIGNMENT_BY_ID = select(
    _A.c.id, _A.c.project_id, _A.c.item_id, _A.c.annotator_id, _A.c.shown_order, _A.c.state
).where(_A.c.id == bindparam("assignment_id"))
_REVIVE_EXPIRED = (
    update(_A)
    .where(
        _A.c.id == bindparam("target_assignment"),
        _A.c.annotator_id == bindparam("target_annotator"),
        _A.c.state == AssignmentState.EXPIRED.value,
    )
    .values(state=AssignmentState.SUBMITTED.value, closed_at=bindparam("closed"))
)
_INSERT_JUDGMENT = _J.insert().values(
    assignment_id=bindparam("assignment_id"),
    project_id=bindparam("project_id"),
    item_id=bindparam("item_id"),
    annotator_id=bindparam("annotator_id"),
    payload=bindparam("payload"),
    time_spent_ms=bindparam("time_spent_ms"),
    guidelines_version=bindparam("guidelines_version"),
    verdict=bindparam("verdict"),
    left_position=bindparam("left_position"),
    created_at=bindparam("now"),
)
_JUDGMENT_FOR_ASSIGNMENT = select(_J.c.id, _J.c.payload).where(_J.c.assignment_id == bindparam("assignment_id"))


@dataclass(frozen=True, slots=True)
class Lease:
    """An assignment held by an annotator: which item, and the order its responses show in."""

    assignment_id: int
    item_id: int
    shown_order: list[int]
    leased_until: datetime
    passed_from: int | None = None
    """The rank of the first open item this claim passed over because another claim held its row."""
    queue_rank: int = 0


@dataclass(frozen=True, slots=True)
class AssignmentRow:
    """An assignment's identity and state, as read for a submission."""

    id: int
    project_id: int
    item_id: int
    annotator_id: int
    shown_order: list[int]
    state: AssignmentState


def claim_next(
    session: Session,
    *,
    project_id: int,
    annotator_id: int,
    response_count: int | None = None,
    lease_seconds: int,
    now: datetime,
    reap_expired: bool = True,
    languages: Sequence[str] | None = None,
    allow_new: bool = True,
    rng: random.Random | None = None,
    gold_turn: Callable[[int], bool] | None = None,
) -> Lease | None:
    """Lease the caller's next item, or return the live lease they already hold.

    Returns None when nothing is left for this annotator (or, with `allow_new` False,
    when they hold no live lease). `response_count` fixes how many responses each item
    has; when None it is read from the item. `reap_expired` also returns the slots of the
    project's expired leases first. `languages`, when given, routes: only items in one of
    them (or in no language) are served. `gold_turn`, given how many items the caller was
    ever served in the project, says whether this claim serves a gold item they never held
    (one more query); gold leases take no overlap slot and keep the cursor where it is.
    """
    params: dict[str, Any] = {"in_project": project_id, "for_annotator": annotator_id}
    live = None if _seen_without_lease(session, project_id, annotator_id) else _run(session, LIVE_LEASE, params).first()
    if live is not None:
        if live.leased_until > now:
            return Lease(live.id, live.item_id, list(live.shown_order), live.leased_until)
        _expire(session, assignment_id=live.id, item_id=live.item_id, now=now)
    if not allow_new:
        return None

    if reap_expired:
        expire_stale_leases(session, project_id=project_id, now=now)
    lock_rows = session.get_bind().dialect.name == "postgresql"
    gold_item: int | None = None
    if gold_turn is not None:
        served, gold_item = next_gold_item(session, project_id=project_id, annotator_id=annotator_id)
        if gold_item is not None and gold_turn(served):
            gold = _lease_gold(session, params, gold_item, response_count, lease_seconds, now, rng, lock_rows=lock_rows)
            if gold is not None:
                return gold
    statements = claim_statements(languages is not None)
    if languages is not None:
        params["languages"] = list(languages)
    # SQLite runs one writer at a time; PostgreSQL needs row locks.
    for _attempt in range(8):
        found, passed_from = _find_candidate(session, params, statements, lock_rows=lock_rows)
        if found is None:
            # Nothing else left: the gold items the caller has not seen are served after all.
            if gold_item is not None:
                return _lease_gold(
                    session, params, gold_item, response_count, lease_seconds, now, rng, lock_rows=lock_rows
                )
            return None
        item_id, rank = found
        if _run(session, _TAKE_SLOT, {"target_item": item_id}).rowcount != 1:
            continue
        order = shuffled_order(response_count if response_count is not None else _response_count(session, item_id), rng)
        leased_until = now + timedelta(seconds=lease_seconds)
        values = {
            **params,
            "item_id": item_id,
            "queue_rank": rank,
            "shown_order": order,
            "leased_until": leased_until,
            "now": now,
        }
        values.pop("languages", None)
        if lock_rows:
            # A concurrent request of the same annotator may have leased first (the live-lease
            # index refuses a second): then serve that lease and give this slot back.
            assignment_id = _run(session, _INSERT_ASSIGNMENT_UNLESS_LEASED, values).scalar()
            if assignment_id is None:
                raced = _run(session, LIVE_LEASE, params).first()
                if raced is None:
                    raise RuntimeError("assignment refused but no live lease found")
                _run(session, RETURN_SLOT, {"target_item": item_id})
                return Lease(raced.id, raced.item_id, list(raced.shown_order), raced.leased_until)
        else:
            result = _run(session, _INSERT_ASSIGNMENT, values)
            assignment_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
            if assignment_id is None:
                raise RuntimeError("assignment insert returned no key")
        return Lease(int(assignment_id), item_id, order, leased_until, passed_from, rank)
    return None


def shuffled_order(count: int, rng: random.Random | None = None) -> list[int]:
    """A new lease's response order: positions 0..count-1, shuffled."""
    order = list(range(count))
    (rng or _RNG).shuffle(order)
    return order


def _lease_gold(
    session: Session,
    params: dict[str, Any],
    item_id: int,
    response_count: int | None,
    lease_seconds: int,
    now: datetime,
    rng: random.Random | None,
    *,
    lock_rows: bool,
) -> Lease | None:
    """Lease a gold item: no slot taken, queue rank 0 so the caller's cursor does not move."""
    order = shuffled_order(response_count if response_count is not None else _response_count(session, item_id), rng)
    leased_until = now + timedelta(seconds=lease_seconds)
    values = {
        "in_project": params["in_project"],
        "for_annotator": params["for_annotator"],
        "item_id": item_id,
        "queue_rank": 0,
        "shown_order": order,
        "leased_until": leased_until,
        "now": now,
    }
    if lock_rows:
        assignment_id = _run(session, _INSERT_ASSIGNMENT_UNLESS_LEASED, values).scalar()
        if assignment_id is None:
            raced = _run(session, LIVE_LEASE, params).first()
            if raced is None:
                return None
            return Lease(raced.id, raced.item_id, list(raced.shown_order), raced.leased_until)
    else:
        result = _run(session, _INSERT_ASSIGNMENT, values)
        assignment_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
        if assignment_id is None:
            raise RuntimeError("assignment insert returned no key")
    return Lease(int(assignment_id), item_id, order, leased_until, None, 0)


_SEEN_WITHOUT_LEASE = "prefstack_seen_without_lease"


def _seen_without_lease(session: Session, project_id: int, annotator_id: int) -> bool:
    """Whether release_lapsed found no lease of the annotator in this very transaction.

    Then the claim need not read it again: on SQLite nobody else wrote since (one writer);
    on PostgreSQL a lease a concurrent request of the annotator made meanwhile is caught by
    the insert (ON CONFLICT), as it would be after a second read.
    """
    seen = session.info.pop(_SEEN_WITHOUT_LEASE, None)
    return seen is not None and seen[0] is session.get_transaction() and seen[1:] == (project_id, annotator_id)


def _run(session: Session, statement: Any, params: dict[str, Any]) -> CursorResult[Any]:
    # Core statements on the session's connection: the ORM's execute path costs more
    # than the statement itself on this hot path.
    return session.connection().execute(statement, params)


_Candidate = tuple[int, int]
"""An item to claim: (item id, queue rank)."""


def _find_candidate(
    session: Session, params: dict[str, Any], statements: ClaimStatements, *, lock_rows: bool
) -> tuple[_Candidate | None, int | None]:
    """The item to claim, and the rank of the first open item passed over because its row was held."""
    if not lock_rows:
        row = _run(session, statements.reopened_then_candidate, params).first()
        return (None if row is None else (int(row.item_id), int(row.rank))), None
    # PostgreSQL: skip rows other claims hold, so claimers spread out instead of queueing on
    # the lowest open item. The same statement reads, without locking, the first open item
    # the cursor walk would have found; when the claim passed it, the caller flags the gap
    # reopened once committed (open_items_between, mark_reopened), so no cursor strands it.
    row = _run(session, statements.reopened_skipping, params).first()
    if row is not None:
        return (int(row.item_id), int(row.rank)), None
    row = _run(session, statements.candidate_skipping, params).first()
    if row is not None:
        passed = row.first_open if row.first_open is not None and row.first_open < row.rank else None
        return (int(row.item_id), int(row.rank)), passed
    # Every candidate is held by a claim in flight: wait for one rather than answer
    # "nothing left". When PostgreSQL's re-check drops the awaited row, LIMIT 1 comes back
    # empty, so look again while any candidate exists.
    for _attempt in range(_CURSOR_RETRIES):
        for statement in (statements.reopened_waiting, statements.candidate_waiting):
            found = _first_locked(session, statement, params)
            if found is not None:
                return found, None
        if _first_candidate(session, params, statements.reopened, statements.candidate) is None:
            return None, None
    return None, None


def _first_locked(session: Session, statement: Any, params: dict[str, Any]) -> _Candidate | None:
    """The first row of a waiting FOR UPDATE search, holding no lock when it finds none.

    PostgreSQL keeps the lock of a row that its re-check then drops from the result; a claim
    holding it while waiting for the next row could deadlock with another doing the same.
    """
    savepoint = session.begin_nested()
    row = _run(session, statement, params).first()
    if row is None:
        savepoint.rollback()
        return None
    savepoint.commit()
    return int(row.item_id), int(row.rank)
    return None, None


def open_items_between(session: Session, *, project_id: int, from_rank: int, to_rank: int) -> list[int]:
    """Open items of the project with ranks in [from_rank, to_rank), read without locking."""
    rows = _run(session, _OPEN_BETWEEN, {"project_id": project_id, "from_rank": from_rank, "to_rank": to_rank})
    return [int(row.item_id) for row in rows]


def mark_reopened(session: Session, *, item_id: int) -> None:
    """Flag an item reopened if it still has open slots, so cursors past it still see it."""
    _run(session, _MARK_REOPENED, {"target_item": item_id})


def add_slots(session: Session, *, item_id: int, count: int) -> bool:
    """Let `count` more annotators judge an item (adaptive overlap); flagged reopened, as cursors passed it."""
    statement = update(_Q).where(_Q.c.item_id == item_id).values(open_slots=_Q.c.open_slots + count, is_reopened=True)
    return bool(_run(session, statement, {}).rowcount == 1)


def set_priority(session: Session, *, project_id: int, item_ids: Sequence[int], priority: int) -> int:
    """Move items in the serving order; flagged reopened, so cursors already past them still serve them."""
    statement = (
        update(_Q)
        .where(_Q.c.project_id == project_id, _Q.c.item_id.in_(bindparam("ids", expanding=True)))
        .values(
            # Typed: an untyped literal takes item_id's INTEGER, and PostgreSQL refuses a rank that large.
            rank=literal((PRIORITY_LIMIT - priority) * _RANK_STEP, BigInteger) + _Q.c.item_id,
            is_reopened=_Q.c.open_slots > ZERO,
        )
    )
    return int(_run(session, statement, {"ids": list(item_ids)}).rowcount)


def reopen_passed(session: Session, *, project_id: int, item_ids: Sequence[int]) -> int:
    """Flag new items ranked below some annotator's cursor (imported with a priority) reopened, so they are served."""
    furthest = _run(session, select(func.max(_A.c.queue_rank)).where(_A.c.project_id == project_id), {}).scalar()
    if furthest is None:  # nobody has claimed anything yet: no cursor to be behind
        return 0
    statement = (
        update(_Q)
        .where(
            _Q.c.project_id == project_id,
            _Q.c.item_id.in_(bindparam("ids", expanding=True)),
            _Q.c.open_slots > ZERO,
            _Q.c.rank < bindparam("furthest"),
        )
        .values(is_reopened=True)
    )
    return int(_run(session, statement, {"ids": list(item_ids), "furthest": furthest}).rowcount)


def count_servable(
    session: Session, *, project_id: int, annotator_id: int, languages: Sequence[str] | None, limit: int
) -> int:
    """How many items the annotator could still be served, counted up to `limit`.

    Counted as a claim searches (reopened items below the caller's cursor, then open items
    after it): at most `limit` rows of each, however many items the project has and however
    many the caller already judged.
    """
    params: dict[str, Any] = {"in_project": project_id, "for_annotator": annotator_id}
    if languages is not None:
        params["languages"] = list(languages)
    counted = int(_run(session, servable_count_statement(languages is not None, limit), params).scalar() or 0)
    return min(counted, limit)


@functools.cache
def servable_count_statement(routed: bool, limit: int) -> Any:
    """`count_servable`'s statement (parameters `in_project`, `for_annotator`, `languages` if routed)."""
    # The limit written out, as the claim's: a generic plan cannot see a bound one.
    written_limit = literal_column(str(int(limit)), Integer)

    def counted(conditions: tuple[ColumnElement[bool], ...]) -> Any:
        found = select(_Q.c.item_id).where(*conditions).order_by(_Q.c.rank).limit(written_limit).subquery()
        return select(func.count()).select_from(found).scalar_subquery()

    after_cursor = _open_after_cursor(_Q, routed, held_only_if_reopened=True)
    return select(counted(_reopened_below_cursor(_Q, routed)) + counted(after_cursor))


def _first_candidate(session: Session, params: dict[str, Any], reopened: Any, fresh: Any) -> _Candidate | None:
    row = _run(session, reopened, params).first()
    if row is None:
        row = _run(session, fresh, params).first()
    return None if row is None else (int(row.item_id), int(row.rank))


def _response_count(session: Session, item_id: int) -> int:
    return len(session.execute(select(Response.position).where(Response.item_id == item_id)).all())


def _expire(session: Session, *, assignment_id: int, item_id: int, now: datetime) -> bool:
    if _run(session, _EXPIRE_ONE, {"target_assignment": assignment_id, "closed": now}).rowcount != 1:
        return False
    _run(session, RETURN_SLOT, {"target_item": item_id})
    return True


def release_lapsed(session: Session, *, project_id: int, annotator_id: int, now: datetime) -> bool:
    """Return the slot of the caller's own lease in the project if it ran out; True if it did.

    Commit before claim_next: a PostgreSQL claim may wait for a row another claim holds,
    which must never happen while holding rows itself (deadlock). When the caller holds no
    lease at all, a claim_next later in the same transaction does not read it again.
    """
    live = _run(session, LIVE_LEASE, {"in_project": project_id, "for_annotator": annotator_id}).first()
    if live is None:
        session.info[_SEEN_WITHOUT_LEASE] = (session.get_transaction(), project_id, annotator_id)
        return False
    if live.leased_until > now:
        return False
    return _expire(session, assignment_id=live.id, item_id=live.item_id, now=now)


def lapsed_leases(session: Session, *, project_id: int, now: datetime) -> list[tuple[int, int]]:
    """The project's leases that ran out before `now`, as (assignment id, item id), oldest first."""
    return [
        (int(row.id), int(row.item_id))
        for row in _run(session, _EXPIRED_LEASES, {"project_id": project_id, "now": now})
    ]


def expire_lease(session: Session, *, assignment_id: int, item_id: int, now: datetime) -> bool:
    """Close a lease that ran out and return its item's slot; False if it was no longer live."""
    return _expire(session, assignment_id=assignment_id, item_id=item_id, now=now)


def expire_stale_leases(session: Session, *, project_id: int, now: datetime) -> int:
    """Return the slots of every lease in the project that ran out before `now`."""
    stale = _run(session, _EXPIRED_LEASES, {"project_id": project_id, "now": now}).all()
    for row in stale:
        _expire(session, assignment_id=row.id, item_id=row.item_id, now=now)
    return len(stale)


def get_assignment(session: Session, *, assignment_id: int) -> AssignmentRow | None:
    """Read one assignment, or None."""
    row = _run(session, _ASSIGNMENT_BY_ID, {"assignment_id": assignment_id}).first()
    if row is None:
        return None
    return AssignmentRow(
        row.id, row.project_id, row.item_id, row.annotator_id, list(row.shown_order), AssignmentState(row.state)
    )


def close_lease(
    session: Session, *, assignment_id: int, annotator_id: int, state: AssignmentState, now: datetime
) -> bool:
    """Move a live lease to `state` (submitted or skipped); False if it was not live."""
    params = {
        "target_assignment": assignment_id,
        "target_annotator": annotator_id,
        "new_state": state.value,
        "closed": now,
        "reason": None,
    }
    return bool(_run(session, _CLOSE_LEASE, params).rowcount == 1)


def skip_lease(session: Session, *, assignment: AssignmentRow, reason: str, now: datetime) -> bool:
    """Close a live lease as skipped and give its slot back; False if it was not live.

    The assignment row stays, so the item is never served to this annotator again.
    """
    params = {
        "target_assignment": assignment.id,
        "target_annotator": assignment.annotator_id,
        "new_state": AssignmentState.SKIPPED.value,
        "closed": now,
        "reason": reason,
    }
    if _run(session, _CLOSE_LEASE, params).rowcount != 1:
        return False
    _run(session, RETURN_SLOT, {"target_item": assignment.item_id})
    return True


def revive_expired_for_submission(
    session: Session, *, assignment_id: int, annotator_id: int, item_id: int, now: datetime
) -> bool:
    """Accept late work on an expired lease if its item still has an open slot."""
    if _run(session, _TAKE_SLOT, {"target_item": item_id}).rowcount != 1:
        return False
    revived = _run(
        session, _REVIVE_EXPIRED, {"target_assignment": assignment_id, "target_annotator": annotator_id, "closed": now}
    ).rowcount
    if revived != 1:
        _run(session, RETURN_SLOT, {"target_item": item_id})
        return False
    return True


def insert_judgment(
    session: Session,
    *,
    assignment: AssignmentRow,
    payload: dict[str, Any],
    verdict: str,
    time_spent_ms: int | None,
    guidelines_version: int,
    now: datetime,
) -> int:
    """Store the judgment of a closed assignment and return its id."""
    result = _run(
        session,
        _INSERT_JUDGMENT,
        {
            "assignment_id": assignment.id,
            "project_id": assignment.project_id,
            "item_id": assignment.item_id,
            "annotator_id": assignment.annotator_id,
            "payload": payload,
            "time_spent_ms": time_spent_ms,
            "guidelines_version": guidelines_version,
            "verdict": verdict,
            "left_position": assignment.shown_order[0] if assignment.shown_order else None,
            "now": now,
        },
    )
    key = result.inserted_primary_key
    if not key or key[0] is None:
        raise RuntimeError("judgment insert returned no key")
    return int(key[0])


def judgment_for_assignment(session: Session, *, assignment_id: int) -> tuple[int, dict[str, Any]] | None:
    """The judgment already stored for an assignment, as (id, payload)."""
    row = _run(session, _JUDGMENT_FOR_ASSIGNMENT, {"assignment_id": assignment_id}).first()
    return None if row is None else (int(row.id), dict(row.payload))


_RNG = random.SystemRandom()
_CURSOR_RETRIES = 50
