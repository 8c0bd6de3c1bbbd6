"""The claim queue: overlap, one item per annotator, leases that expire."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.principal import Principal
from app.services import importing, projects
from preference_store import queue
from preference_store.base import utcnow
from preference_store.models import AssignmentState, ItemQueue, Role
from tests.conftest import People, native_item


def _setup(session: Session, operator: Principal, people: People, *, items: int, overlap: int) -> tuple[int, list[int]]:
    project = projects.create_project(session, principal=operator, slug="queue-test", name="Q", overlap=overlap)
    importing.import_items(
        session,
        principal=operator,
        slug="queue-test",
        rows=[(n, native_item(f"item-{n}")) for n in range(1, items + 1)],
    )
    annotators = []
    for n in range(4):
        email = people.make(f"queue{n}@example.org", Role.ANNOTATOR)
        annotators.append(
            int(session.execute(text("SELECT id FROM app_user WHERE email = :e"), {"e": email}).scalar_one())
        )
    return project.id, annotators


def _claim_and_submit(session: Session, project_id: int, annotator_id: int) -> int | None:
    now = utcnow()
    lease = queue.claim_next(session, project_id=project_id, annotator_id=annotator_id, lease_seconds=60, now=now)
    if lease is None:
        return None
    assert queue.close_lease(
        session, assignment_id=lease.assignment_id, annotator_id=annotator_id, state=AssignmentState.SUBMITTED, now=now
    )
    session.commit()
    return lease.item_id


def test_each_item_is_served_to_overlap_distinct_annotators(
    session: Session, operator: Principal, people: People
) -> None:
    project_id, annotators = _setup(session, operator, people, items=5, overlap=2)
    served: dict[int, list[int]] = {}
    for annotator in annotators:
        while (item_id := _claim_and_submit(session, project_id, annotator)) is not None:
            served.setdefault(item_id, []).append(annotator)
    assert len(served) == 5
    assert all(len(who) == 2 and len(set(who)) == 2 for who in served.values())
    slots = session.scalars(select(ItemQueue.open_slots).where(ItemQueue.project_id == project_id)).all()
    assert set(slots) == {0}


def test_claim_again_returns_the_live_lease(session: Session, operator: Principal, people: People) -> None:
    project_id, annotators = _setup(session, operator, people, items=3, overlap=1)
    now = utcnow()
    first = queue.claim_next(session, project_id=project_id, annotator_id=annotators[0], lease_seconds=60, now=now)
    again = queue.claim_next(session, project_id=project_id, annotator_id=annotators[0], lease_seconds=60, now=now)
    assert first is not None and again is not None
    assert again.assignment_id == first.assignment_id
    assert sorted(first.shown_order) == [0, 1]


def test_expired_lease_returns_the_item_to_others(session: Session, operator: Principal, people: People) -> None:
    project_id, annotators = _setup(session, operator, people, items=2, overlap=1)
    start = utcnow()
    abandoned = queue.claim_next(
        session, project_id=project_id, annotator_id=annotators[0], lease_seconds=60, now=start
    )
    assert abandoned is not None
    later = start + timedelta(seconds=61)
    # The second annotator walked past item 1 while it was leased, then item 2 is taken too.
    second = queue.claim_next(session, project_id=project_id, annotator_id=annotators[1], lease_seconds=600, now=start)
    assert second is not None and second.item_id != abandoned.item_id
    queue.close_lease(
        session,
        assignment_id=second.assignment_id,
        annotator_id=annotators[1],
        state=AssignmentState.SUBMITTED,
        now=start,
    )
    reclaimed = queue.claim_next(
        session, project_id=project_id, annotator_id=annotators[1], lease_seconds=60, now=later
    )
    assert reclaimed is not None
    assert reclaimed.item_id == abandoned.item_id
    states = session.execute(
        text("SELECT state FROM assignment WHERE id = :i"), {"i": abandoned.assignment_id}
    ).scalar()
    assert states == AssignmentState.EXPIRED.value


def test_nothing_left_returns_none(session: Session, operator: Principal, people: People) -> None:
    project_id, annotators = _setup(session, operator, people, items=1, overlap=1)
    assert _claim_and_submit(session, project_id, annotators[0]) is not None
    assert _claim_and_submit(session, project_id, annotators[1]) is None
    assert _claim_and_submit(session, project_id, annotators[0]) is None


def _plan(session: Session, statement: Any) -> str:
    bind = session.get_bind()
    compiled = statement.compile(bind, compile_kwargs={"literal_binds": True})
    if bind.dialect.name == "sqlite":
        rows = session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
        return " ".join(str(row[-1]) for row in rows)
    # Tiny tables favour sequential scans; forbidding them shows whether the index fits.
    session.execute(text("SET LOCAL enable_seqscan = off"))
    return " ".join(str(row[0]) for row in session.execute(text(f"EXPLAIN {compiled}")))


@pytest.mark.parametrize("routed", [False, True], ids=["all-languages", "routed"])
@pytest.mark.parametrize(
    ("statement_name", "index"),
    [
        ("candidate", "ix_item_queue_open"),
        ("reopened", "ix_item_queue_reopened"),
        ("reopened_then_candidate", "ix_item_queue_open"),
    ],
)
def test_claim_queries_use_their_partial_index_after_analyze(
    session: Session, operator: Principal, people: People, statement_name: str, index: str, routed: bool
) -> None:
    project_id, annotators = _setup(session, operator, people, items=40, overlap=1)
    for _ in range(30):
        _claim_and_submit(session, project_id, annotators[0])
    session.execute(text("ANALYZE"))
    params: dict[str, Any] = {"in_project": project_id, "for_annotator": annotators[1]}
    if routed:
        params["languages"] = ["th", "en"]
    statement = getattr(queue.claim_statements(routed), statement_name).params(**params)
    plan = _plan(session, statement)
    assert index in plan, plan
    if statement_name == "reopened_then_candidate":
        assert "ix_item_queue_reopened" in plan, plan  # each half keeps its own index
    if statement_name == "candidate" and session.get_bind().dialect.name == "sqlite":
        assert "rank>?" in plan, plan  # the cursor bounds the walk; nothing below it is read
        assert "ix_assignment_cursor" in plan, plan  # and is found without reading the caller's history


def _servable(session: Session, project_id: int, annotator_id: int, limit: int = 100) -> int:
    return queue.count_servable(session, project_id=project_id, annotator_id=annotator_id, languages=None, limit=limit)


def test_the_servable_count_is_what_the_caller_can_still_claim(
    session: Session, operator: Principal, people: People
) -> None:
    project_id, (first, second, third, fourth) = _setup(session, operator, people, items=12, overlap=2)
    start = utcnow()
    for _ in range(4):
        _claim_and_submit(session, project_id, first)  # items 1-4, one slot left on each
    for annotator in (second, third, fourth):
        # Items 1-3 leased; the first two leases lapse, which reopens those items.
        seconds = 600 if annotator == fourth else 1
        lease = queue.claim_next(
            session, project_id=project_id, annotator_id=annotator, lease_seconds=seconds, now=start
        )
        assert lease is not None
    _claim_and_submit(session, project_id, first)  # item 5: the cursor passes the full items 1-3
    assert queue.expire_stale_leases(session, project_id=project_id, now=start + timedelta(seconds=2)) == 2
    session.commit()
    # First: the reopened items 1 and 2 are theirs already, so 6-12. Second: after item 1 (which
    # they held), item 2 (reopened), 4, 5 (a slot each) and 6-12.
    expected = {first: 7, second: 10}
    assert {who: _servable(session, project_id, who) for who in expected} == expected
    assert _servable(session, project_id, second, limit=3) == 3
    for who, count in expected.items():
        claimed = 0
        while _claim_and_submit(session, project_id, who) is not None:
            claimed += 1
        assert claimed == count
        assert _servable(session, project_id, who) == 0


def test_an_item_the_caller_judged_moved_past_their_cursor_is_not_counted(
    session: Session, operator: Principal, people: People
) -> None:
    project_id, (first, second, *_) = _setup(session, operator, people, items=6, overlap=2)
    judged = [_claim_and_submit(session, project_id, first) for _ in range(3)]
    first_judged = judged[0]
    assert first_judged is not None
    # Served last from now on: item 1 now ranks after the cursor, open, and theirs already.
    assert queue.set_priority(session, project_id=project_id, item_ids=[first_judged], priority=-5) == 1
    session.commit()
    assert _servable(session, project_id, first) == 3
    assert _servable(session, project_id, second) == 6
    claimed = []
    while (item_id := _claim_and_submit(session, project_id, first)) is not None:
        claimed.append(item_id)
    assert len(claimed) == 3 and judged[0] not in claimed


def test_neither_claim_nor_count_reads_the_callers_history_after_analyze(
    session: Session, operator: Principal, people: People
) -> None:
    project_id, annotators = _setup(session, operator, people, items=120, overlap=1)
    for _ in range(100):
        _claim_and_submit(session, project_id, annotators[0])
    session.execute(text("ANALYZE"))
    params = {"in_project": project_id, "for_annotator": annotators[0]}
    statements = queue.claim_statements(False)
    plans = {
        name: _plan(session, statement.params(**params))
        for name, statement in [
            ("candidate", statements.candidate_skipping),
            ("reopened", statements.reopened_skipping),
            ("servable", queue.servable_count_statement(False, 1001)),
        ]
    }
    for name, plan in plans.items():
        if session.get_bind().dialect.name == "postgresql":
            # An anti-join reads all 100 of the caller's assignments; a probe per row reads one.
            assert "Anti Join" not in plan and "SubPlan" in plan, (name, plan)
        else:
            assert "(annotator_id=? AND project_id=? AND item_id=?)" in plan, (name, plan)
    if session.get_bind().dialect.name == "sqlite":
        assert "rank>?" in plans["servable"], plans["servable"]  # the walk starts at the cursor
