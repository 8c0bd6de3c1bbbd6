"""PostgreSQL row locks: a claim that skips a held row must not strand that item; last judgments at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app import database
from app.principal import AuthMethod, Principal, command_line_principal
from app.services import accounts, annotation, importing, projects
from preference_store import arbitration as arbitration_store
from preference_store import queue
from preference_store import users as user_store
from preference_store.base import utcnow
from preference_store.engine import build_engine, session_factory
from preference_store.models import AssignmentState, Role
from preference_store.projects import ProjectRow
from tests.conftest import native_item
from tests.databases import backend, fresh_database, rollbacks_on

pytestmark = pytest.mark.skipif(backend() != "postgresql", reason="row locks are PostgreSQL's")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with fresh_database(tmp_path) as url:
        engine = build_engine(url, pool_size=4)
        database.upgrade(engine)
        yield engine
        engine.dispose()


def _three_item_project(session: Session, *, slug: str, overlap: int) -> ProjectRow:
    operator = command_line_principal()
    project = projects.create_project(session, principal=operator, slug=slug, name=slug, overlap=overlap)
    rows = [(n, native_item(f"{slug}-{n}")) for n in range(1, 4)]
    importing.import_items(session, principal=operator, slug=slug, rows=rows)
    return project


def test_item_passed_over_while_locked_is_served_later(engine: Engine) -> None:
    sessions = session_factory(engine)
    with sessions() as session:
        project = _three_item_project(session, slug="skip-test", overlap=2)
        ids = []
        for email in ("first@example.org", "second@example.org"):
            ids.append(accounts.create_user(session, email=email, name=email, role=Role.ANNOTATOR, password=None).id)
    first, second = ids
    now = utcnow()
    with sessions() as holder, sessions() as skipper:
        held = queue.claim_next(holder, project_id=project.id, annotator_id=first, lease_seconds=60, now=now)
        assert held is not None
        passed = queue.claim_next(skipper, project_id=project.id, annotator_id=second, lease_seconds=60, now=now)
        assert passed is not None
        assert passed.item_id > held.item_id
        assert passed.passed_from == held.queue_rank
        skipper.commit()
        holder.rollback()  # the first claim never happened: its item still has both slots
        for item_id in queue.open_items_between(
            skipper, project_id=project.id, from_rank=passed.passed_from, to_rank=passed.queue_rank
        ):
            queue.mark_reopened(skipper, item_id=item_id)
        queue.close_lease(
            skipper,
            assignment_id=passed.assignment_id,
            annotator_id=second,
            state=AssignmentState.SUBMITTED,
            now=now,
        )
        skipper.commit()
        again = queue.claim_next(skipper, project_id=project.id, annotator_id=second, lease_seconds=60, now=now)
        skipper.commit()
    assert again is not None
    assert again.item_id == held.item_id
    with engine.connect() as connection:
        reopened = connection.execute(
            text("SELECT is_reopened FROM item_queue WHERE item_id = :i"), {"i": held.item_id}
        ).scalar()
    assert reopened is True  # still one slot open for someone else


def test_two_claims_of_one_annotator_at_once_share_one_lease(engine: Engine) -> None:
    sessions = session_factory(engine)
    with sessions() as session:
        project = _three_item_project(session, slug="race-test", overlap=1)
        annotator = accounts.create_user(
            session, email="racer@example.org", name="r", role=Role.ANNOTATOR, password=None
        ).id
    now = utcnow()
    second: list[queue.Lease | None] = []
    with sessions() as first_session, sessions() as second_session:
        first = queue.claim_next(
            first_session, project_id=project.id, annotator_id=annotator, lease_seconds=60, now=now
        )

        def claim_again() -> None:
            lease = queue.claim_next(
                second_session, project_id=project.id, annotator_id=annotator, lease_seconds=60, now=now
            )
            second_session.commit()
            second.append(lease)

        racer = threading.Thread(target=claim_again)
        racer.start()
        racer.join(timeout=0.5)
        assert racer.is_alive()  # waiting on the first claim's live lease
        first_session.commit()
        racer.join(timeout=10)
    assert first is not None and second and second[0] is not None
    assert second[0].assignment_id == first.assignment_id
    with engine.connect() as connection:
        leases = connection.execute(text("SELECT count(*) FROM assignment WHERE annotator_id = :a"), {"a": annotator})
        assert leases.scalar() == 1
        slots = connection.execute(
            text("SELECT sum(open_slots) FROM item_queue WHERE project_id = :p"), {"p": project.id}
        ).scalar()
    assert slots == 2  # the second claim gave its slot back


def test_of_two_last_judgments_at_once_exactly_one_finds_the_item_complete(engine: Engine) -> None:
    sessions = session_factory(engine)
    operator = command_line_principal()
    with sessions() as session:
        project = projects.create_project(session, principal=operator, slug="last-two", name="L", overlap=2)
        importing.import_items(session, principal=operator, slug="last-two", rows=[(1, native_item("only"))])
        ids = [
            accounts.create_user(session, email=email, name=email, role=Role.ANNOTATOR, password=None).id
            for email in ("a@example.org", "b@example.org")
        ]
    now = utcnow()
    leases = []
    for annotator in ids:
        with sessions() as session:
            lease = queue.claim_next(session, project_id=project.id, annotator_id=annotator, lease_seconds=60, now=now)
            session.commit()
            assert lease is not None
            leases.append(lease)
    found: dict[str, bool] = {}
    with sessions() as first, sessions() as second:
        for session, annotator, lease in ((first, ids[0], leases[0]), (second, ids[1], leases[1])):
            assert queue.close_lease(
                session,
                assignment_id=lease.assignment_id,
                annotator_id=annotator,
                state=AssignmentState.SUBMITTED,
                now=now,
            )
        # Each sees the other's lease still live; the first locks the queue row and says no.
        found["first"] = arbitration_store.item_is_complete(first, item_id=leases[0].item_id)

        def check_second() -> None:
            found["second"] = arbitration_store.item_is_complete(second, item_id=leases[1].item_id)
            second.commit()

        waiter = threading.Thread(target=check_second)
        waiter.start()
        waiter.join(timeout=1)
        assert waiter.is_alive()  # waits for the first's row lock
        first.commit()
        waiter.join(timeout=30)
    assert found == {"first": False, "second": True}
    with sessions() as session:  # read again later, by anyone: complete
        assert arbitration_store.item_is_complete(session, item_id=leases[0].item_id)


def test_flagging_the_items_a_claim_passed_keeps_the_connections_prepared_statements(engine: Engine) -> None:
    """The read of the passed items ends with COMMIT: on a ROLLBACK psycopg forgets every prepared
    statement of the connection, and under load PostgreSQL then planned the annotation loop's
    statements on almost every call (docs/benchmarks.md, "Prepared statements kept")."""
    sessions = session_factory(engine)
    operator = command_line_principal()
    with sessions() as session:
        project = _three_item_project(session, slug="passing", overlap=1)
        accounts.create_user(session, email="passer@example.org", name="Passer", role=Role.ANNOTATOR, password=None)
        projects.add_members(session, principal=operator, slug="passing", emails=["passer@example.org"])
        user = user_store.get_user_by_email(session, email="passer@example.org")
        assert user is not None
    holder = build_engine(engine.url.render_as_string(hide_password=False), pool_size=1)
    served: list[annotation.Task | None] = []
    try:
        with holder.connect() as held, rollbacks_on(engine) as rollbacks:
            first = held.execute(
                text("SELECT item_id FROM item_queue WHERE project_id = :p ORDER BY rank LIMIT 1 FOR UPDATE"),
                {"p": project.id},
            ).scalar_one()

            def claim() -> None:
                with sessions() as session:
                    served.append(
                        annotation.next_task(
                            session, principal=Principal(user, AuthMethod.TOKEN), slug="passing", now=utcnow()
                        )
                    )

            claimer = threading.Thread(target=claim)
            claimer.start()
            claimer.join(timeout=1)  # flagging the held item waits for its lock
            held.commit()
            claimer.join(timeout=30)
        assert served and served[0] is not None
        assert rollbacks == []
        with engine.connect() as connection:
            flagged = connection.execute(
                text("SELECT is_reopened FROM item_queue WHERE item_id = :i"), {"i": first}
            ).scalar_one()
        assert flagged is True
    finally:
        holder.dispose()
