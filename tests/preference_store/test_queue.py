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
