"""The annotation loop's common case on PostgreSQL, one statement per call.

On PostgreSQL each statement is a round trip, and so are BEGIN and COMMIT: the general
path (`queue.claim_next`, then the item's content; `queue.close_lease`, then
`queue.insert_judgment`) costs five to seven of them per call. The statements here do the
common case in one, run outside a transaction (PostgreSQL makes one statement atomic):

- `claim_with_content`: the caller's live lease if they hold one, else the first free
  open item (reopened ones first), its slot taken and the assignment inserted, and the
  item's content with either.
- `close_and_store`: a live lease closed as submitted and its judgment inserted.

Anything off the common case comes back as `None` (or a `ClaimOutcome` saying why), and
the caller takes the general path, which handles it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Table,
    bindparam,
    exists,
    func,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from preference_store import queue
from preference_store.items import ITEM_CONTENT_COLUMNS, ItemContent, item_content_from_rows
from preference_store.models import Assignment, AssignmentState, GoldAnswer, Item, ItemQueue, Judgment, Response

_A = cast(Table, Assignment.__table__)
_J = cast(Table, Judgment.__table__)
_I = cast(Table, Item.__table__)
_R = cast(Table, Response.__table__)
_Q = cast(Table, ItemQueue.__table__)
_G = cast(Table, GoldAnswer.__table__)
_LEASED = AssignmentState.LEASED.value
_FIRST_REVISION = int(cast(Any, _J.c.revision.default).arg)


@contextmanager
def statements_that_commit(session: Session) -> Iterator[None]:
    """Run the block's statements each committing by itself (no BEGIN, no COMMIT round trip).

    Ends the session's transaction first, and hands the connection back after the block
    (rolled back if the block raised). A session bound to a connection (one the caller keeps
    in a transaction of its own, as the test suite does) keeps it: the statements then run
    inside that transaction, atomic all the same.
    """
    if session.in_transaction():
        session.commit()
    if isinstance(session.get_bind(), Engine):
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    try:
        yield
    except BaseException:
        session.rollback()
        raise
    session.commit()


@dataclass(frozen=True, slots=True)
class ClaimOutcome:
    """What `claim_with_content` did.

    `lease` and `content` are set when it served a lease (a new one or the one held).
    Otherwise `expired_lease` says the caller holds a lease that ran out, and neither says
    no free item was found: the general path takes over in both cases.
    """

    lease: queue.Lease | None = None
    content: ItemContent | None = None
    expired_lease: bool = False


def claim_with_content(
    session: Session,
    *,
    project_id: int,
    annotator_id: int,
    lease_seconds: int,
    now: datetime,
    languages: Sequence[str] | None,
    shown_order: list[int] | None,
) -> ClaimOutcome:
    """One statement: the held lease or a new one, with the item's content (PostgreSQL).

    Run it on a connection without a transaction (`statements_that_commit`): it commits by itself.
    `shown_order` is the response order of a new lease (None: PostgreSQL shuffles the item's
    positions, for kinds whose items differ in their number of responses). A new lease refused because a concurrent
    request of the caller leased first gives its slot back and reports nothing found.
    """
    params: dict[str, Any] = {
        "in_project": project_id,
        "for_annotator": annotator_id,
        "lease_ends": now + timedelta(seconds=lease_seconds),
        "now": now,
    }
    if shown_order is not None:
        params["new_order"] = shown_order
    if languages is not None:
        params["languages"] = list(languages)
    statement = _claim_statement(routed=languages is not None, shuffle_in_database=shown_order is None)
    rows = session.connection().execute(statement, params).all()
    if not rows:
        return ClaimOutcome()
    first = rows[0]
    if first.outcome == "refused":
        session.connection().execute(queue.RETURN_SLOT, {"target_item": first.item_id})
        return ClaimOutcome()
    if first.outcome == "live" and first.leased_until <= now:
        return ClaimOutcome(expired_lease=True)
    passed_from = first.first_open if first.first_open is not None and first.first_open < first.rank else None
    lease = queue.Lease(
        int(first.assignment_id),
        int(first.item_id),
        list(first.shown_order),
        first.leased_until,
        passed_from,
        int(first.rank or 0),
    )
    content = item_content_from_rows(rows) if first.id is not None else None
    return ClaimOutcome(lease=lease, content=content)


@functools.cache
def _claim_statement(*, routed: bool, shuffle_in_database: bool) -> Any:
    searches = queue.claim_statements(routed)
    live = queue.LIVE_LEASE.cte("live")
    no_live = ~exists(select(live.c.id))
    reopened = searches.reopened_skipping.where(no_live).cte("reopened")
    fresh = searches.candidate_skipping.where(no_live, ~exists(select(reopened.c.item_id))).cte("fresh")
    picked = union_all(
        select(reopened.c.item_id, reopened.c.rank, null().cast(BigInteger).label("first_open")),
        select(fresh.c.item_id, fresh.c.rank, fresh.c.first_open),
    ).cte("picked")
    taken = (
        update(_Q)
        .where(_Q.c.item_id == picked.c.item_id, _Q.c.open_slots > queue.ZERO)
        .values(queue.TAKE_SLOT_VALUES)
        .returning(_Q.c.item_id, picked.c.rank, picked.c.first_open)
        .cte("taken")
    )
    order: Any = (
        select(func.jsonb_agg(aggregate_order_by(_R.c.position, func.random())))
        .where(_R.c.item_id == taken.c.item_id)
        .scalar_subquery()
        if shuffle_in_database
        else bindparam("new_order", type_=_A.c.shown_order.type)
    )
    columns = ["project_id", "item_id", "annotator_id", "shown_order", "queue_rank", "state", "leased_until"]
    leased = (
        postgresql.insert(_A)
        .from_select(
            [*columns, "created_at"],
            select(
                bindparam("in_project", type_=Integer),
                taken.c.item_id,
                bindparam("for_annotator", type_=Integer),
                order,
                taken.c.rank,
                literal_column(f"'{_LEASED}'", String),
                bindparam("lease_ends", type_=_A.c.leased_until.type),
                bindparam("now", type_=_A.c.created_at.type),
            ),
        )
        .on_conflict_do_nothing()
        .returning(_A.c.id, _A.c.item_id, _A.c.shown_order, _A.c.leased_until, _A.c.queue_rank)
        .cte("leased")
    )
    no_rank = null().cast(BigInteger)
    outcome = union_all(
        select(
            literal_column("'live'", String).label("outcome"),
            live.c.id.label("assignment_id"),
            live.c.item_id,
            live.c.shown_order,
            live.c.leased_until,
            no_rank.label("rank"),
            no_rank.label("first_open"),
        ),
        select(
            literal_column("'leased'", String),
            leased.c.id,
            leased.c.item_id,
            leased.c.shown_order,
            leased.c.leased_until,
            leased.c.queue_rank,
            taken.c.first_open,
        ).join_from(leased, taken, leased.c.item_id == taken.c.item_id),
        select(
            literal_column("'refused'", String),
            null().cast(BigInteger),
            taken.c.item_id,
            null().cast(_A.c.shown_order.type),
            null().cast(_A.c.leased_until.type),
            taken.c.rank,
            no_rank,
        ).where(~exists(select(leased.c.id))),
    ).subquery("outcome")
    return (
        select(outcome, *ITEM_CONTENT_COLUMNS)
        .select_from(outcome.outerjoin(_I, _I.c.id == outcome.c.item_id).outerjoin(_R, _R.c.item_id == _I.c.id))
        .order_by(_R.c.position)
    )


@dataclass(frozen=True, slots=True)
class StoredInOne:
    """A judgment stored by `close_and_store`, with what the submit hooks read of its item.

    `open_slots` and `other_live_lease` are as the statement found them, before its own
    change (its lease still live, so not counted): `arbitration.after_judgment` takes them
    in place of its own read.
    """

    judgment_id: int
    open_slots: int | None
    """None when the item has no queue row (a gold item)."""
    other_live_lease: bool
    is_gold: bool


def close_and_store(
    session: Session,
    *,
    assignment_id: int,
    annotator_id: int,
    payload: dict[str, Any],
    verdict: str,
    time_spent_ms: int | None,
    guidelines_version: int,
    left_position: int | None,
    now: datetime,
) -> StoredInOne | None:
    """One statement: close the caller's live lease as submitted and store its judgment (PostgreSQL).

    Returns None when the lease was not live (judged already, expired, skipped): the
    general path then says which. Commits by itself in `statements_that_commit`, else
    with the caller's transaction.
    """
    params = {
        "target_assignment": assignment_id,
        "target_annotator": annotator_id,
        "payload": payload,
        "verdict": verdict,
        "time_spent_ms": time_spent_ms,
        "guidelines_version": guidelines_version,
        "left_position": left_position,
        "now": now,
    }
    row = session.connection().execute(_CLOSE_AND_STORE, params).first()
    if row is None:
        return None
    open_slots = None if row.open_slots is None else int(row.open_slots)
    return StoredInOne(int(row.id), open_slots, bool(row.other_live_lease), bool(row.is_gold))


def _close_and_store_statement() -> Any:
    closed = (
        update(_A)
        .where(
            _A.c.id == bindparam("target_assignment"),
            _A.c.annotator_id == bindparam("target_annotator"),
            _A.c.state == _LEASED,
        )
        .values(state=AssignmentState.SUBMITTED.value, closed_at=bindparam("now"), skip_reason=None)
        .returning(_A.c.id, _A.c.project_id, _A.c.item_id, _A.c.annotator_id)
        .cte("closed")
    )
    stored = (
        _J.insert()
        .from_select(
            [
                "assignment_id",
                "project_id",
                "item_id",
                "annotator_id",
                "payload",
                "time_spent_ms",
                "guidelines_version",
                "verdict",
                "left_position",
                "created_at",
                "revision",
            ],
            select(
                closed.c.id,
                closed.c.project_id,
                closed.c.item_id,
                closed.c.annotator_id,
                bindparam("payload", type_=_J.c.payload.type),
                bindparam("time_spent_ms", type_=Integer),
                bindparam("guidelines_version", type_=Integer),
                bindparam("verdict", type_=_J.c.verdict.type),
                bindparam("left_position", type_=Integer),
                bindparam("now", type_=_J.c.created_at.type),
                literal_column(str(_FIRST_REVISION), Integer),
            ),
        )
        .returning(_J.c.id, _J.c.item_id)
        .cte("stored")
    )
    other = _A.alias("other_assignment")
    other_live_lease = exists().where(
        other.c.item_id == stored.c.item_id,
        other.c.state == _LEASED,
        other.c.id != bindparam("target_assignment"),
    )
    is_gold = exists().where(_G.c.item_id == stored.c.item_id)
    return select(
        stored.c.id,
        _Q.c.open_slots,
        other_live_lease.label("other_live_lease"),
        is_gold.label("is_gold"),
    ).select_from(stored.outerjoin(_Q, _Q.c.item_id == stored.c.item_id))


_CLOSE_AND_STORE = _close_and_store_statement()
