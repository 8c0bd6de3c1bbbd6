"""PostgreSQL's one-statement claim and submission, on a committed database (each statement commits itself)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from app import database
from app.principal import Principal, command_line_principal
from app.services import accounts, annotation, importing, projects
from app.services.projects import ProjectAccessCache
from preference_store import single_statement
from preference_store.base import utcnow
from preference_store.engine import build_engine, session_factory
from preference_store.models import Assignment, AssignmentState, ItemQueue, Judgment, Role
from tests.conftest import native_item
from tests.databases import backend, fresh_database

pytestmark = pytest.mark.skipif(backend() != "postgresql", reason="PostgreSQL's single statements")


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    with fresh_database(tmp_path) as url:
        engine: Engine = build_engine(url, pool_size=4, serving=True)
        database.upgrade(engine)
        yield session_factory(engine)
        engine.dispose()


def _project(
    sessions: sessionmaker[Session],
    *,
    kind: str = "pairwise",
    items: list[dict[str, object]],
    options: dict[str, object] | None = None,
) -> int:
    operator = command_line_principal()
    with sessions() as session:
        project = projects.create_project(
            session, principal=operator, slug="one", name="One", kind=kind, overlap=2, options=options
        )
        importing.import_items(session, principal=operator, slug="one", rows=list(enumerate(items, start=1)))
        return project.id


def _annotator(sessions: sessionmaker[Session], name: str, languages: list[str] | None = None) -> Principal:
    with sessions() as session:
        email = f"{name}@example.org"
        accounts.create_user(session, email=email, name=name, role=Role.ANNOTATOR, password=None, languages=languages)
        projects.add_members(session, principal=command_line_principal(), slug="one", emails=[email])
        token = accounts.create_api_token(session, email=email).token
        principal = accounts.principal_for_api_token(session, token=token, cache=accounts.TokenCache(60))
        assert principal is not None
        return principal


def _claim(session: Session, project_id: int, annotator_id: int, **overrides: object) -> single_statement.ClaimOutcome:
    arguments: dict[str, object] = {
        "project_id": project_id,
        "annotator_id": annotator_id,
        "lease_seconds": 600,
        "now": utcnow(),
        "languages": None,
        "shown_order": [1, 0],
    }
    arguments.update(overrides)
    with single_statement.statements_that_commit(session):
        return single_statement.claim_with_content(session, **arguments)  # type: ignore[arg-type]


def _slots(sessions: sessionmaker[Session]) -> dict[int, int]:
    with sessions() as session:
        rows = session.execute(select(ItemQueue.item_id, ItemQueue.open_slots)).all()
        return {int(item_id): int(open_slots) for item_id, open_slots in rows}


def test_a_claim_leases_the_first_open_item_and_returns_its_content(sessions: sessionmaker[Session]) -> None:
    project_id = _project(sessions, items=[native_item("first", a="Ja."), native_item("second")])
    ann = _annotator(sessions, "ann")
    with sessions() as session:
        outcome = _claim(session, project_id, ann.id)
    assert outcome.lease is not None and outcome.content is not None
    assert outcome.content.external_id == "first"
    assert [response.content for response in outcome.content.responses] == ["Ja.", "No."]
    assert outcome.lease.shown_order == [1, 0]
    assert outcome.lease.item_id == outcome.content.id
    with sessions() as session:
        stored = session.execute(select(Assignment.item_id, Assignment.state, Assignment.shown_order)).one()
        assert (stored.item_id, stored.state, stored.shown_order) == (
            outcome.content.id,
            AssignmentState.LEASED,
            [1, 0],
        )
    assert _slots(sessions)[outcome.content.id] == 1


def test_a_second_claim_serves_the_lease_held_and_writes_nothing(sessions: sessionmaker[Session]) -> None:
    project_id = _project(sessions, items=[native_item("first"), native_item("second")])
    ann = _annotator(sessions, "ann")
    with sessions() as session:
        first = _claim(session, project_id, ann.id)
        again = _claim(session, project_id, ann.id, shown_order=[0, 1])
    assert first.lease is not None and again.lease is not None and again.content is not None
    assert again.lease.assignment_id == first.lease.assignment_id
    assert again.lease.shown_order == [1, 0]
    assert again.content.external_id == "first"
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Assignment)) == 1
    assert sorted(_slots(sessions).values()) == [1, 2]


def test_a_lease_that_ran_out_is_reported_not_replaced(sessions: sessionmaker[Session]) -> None:
    project_id = _project(sessions, items=[native_item("first"), native_item("second")])
    ann = _annotator(sessions, "ann")
    with sessions() as session:
        _claim(session, project_id, ann.id)
        later = _claim(session, project_id, ann.id, now=utcnow() + timedelta(hours=1))
    assert later.lease is None and later.expired_lease
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Assignment)) == 1


def test_nothing_free_answers_nothing_and_writes_nothing(sessions: sessionmaker[Session]) -> None:
    project_id = _project(sessions, items=[native_item("only")])
    ann, bob, cat = (_annotator(sessions, name) for name in ("ann", "bob", "cat"))
    with sessions() as session:
        assert _claim(session, project_id, ann.id).lease is not None
        assert _claim(session, project_id, bob.id).lease is not None
        full = _claim(session, project_id, cat.id)
    assert full == single_statement.ClaimOutcome()
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Assignment)) == 2
    assert list(_slots(sessions).values()) == [0]


def test_language_routing_passes_items_in_other_languages(sessions: sessionmaker[Session]) -> None:
    thai = {**native_item("thai"), "metadata": {"language": "th"}}
    project_id = _project(sessions, items=[native_item("english"), thai])
    ann = _annotator(sessions, "ann")
    with sessions() as session:
        outcome = _claim(session, project_id, ann.id, languages=["th"])
    assert outcome.content is not None and outcome.content.external_id == "thai"


def test_without_an_order_given_the_database_shuffles_every_position(
    sessions: sessionmaker[Session],
) -> None:
    ranking: dict[str, object] = {
        "external_id": "rank",
        "prompt": "Order these.",
        "responses": [{"model": f"m{n}", "content": f"answer {n}"} for n in range(4)],
    }
    project_id = _project(sessions, kind="ranking", items=[ranking])
    ann = _annotator(sessions, "ann")
    with sessions() as session:
        outcome = _claim(session, project_id, ann.id, shown_order=None)
    assert outcome.lease is not None and outcome.content is not None
    assert sorted(outcome.lease.shown_order) == [0, 1, 2, 3]
    assert [response.position for response in outcome.content.responses] == [0, 1, 2, 3]


def test_close_and_store_stores_once_and_reports_the_item(sessions: sessionmaker[Session]) -> None:
    project_id = _project(sessions, items=[native_item("only")])
    ann, bob = _annotator(sessions, "ann"), _annotator(sessions, "bob")
    with sessions() as session:
        mine = _claim(session, project_id, ann.id).lease
        _claim(session, project_id, bob.id)
        assert mine is not None

        def store() -> single_statement.StoredInOne | None:
            with single_statement.statements_that_commit(session):
                return single_statement.close_and_store(
                    session,
                    assignment_id=mine.assignment_id,
                    annotator_id=ann.id,
                    payload={"choice": "A"},
                    verdict="p1",
                    time_spent_ms=1200,
                    guidelines_version=1,
                    left_position=1,
                    now=utcnow(),
                )

        stored = store()
        assert stored is not None
        assert (stored.open_slots, stored.other_live_lease, stored.is_gold) == (0, True, False)
        assert store() is None
    with sessions() as session:
        judgment = session.execute(select(Judgment.assignment_id, Judgment.verdict, Judgment.revision)).one()
        assert tuple(judgment) == (mine.assignment_id, "p1", 1)
        state = session.scalar(select(Assignment.state).where(Assignment.id == mine.assignment_id))
        assert state is AssignmentState.SUBMITTED


def _one_cycle(
    sessions: sessionmaker[Session], ann: Principal
) -> tuple[list[tuple[bool, str]], list[tuple[bool, str]]]:
    """The statements of one next and one submit, after a first claim warmed the caches."""
    cache, reaper = ProjectAccessCache(60), annotation.LeaseReaper(60)
    with sessions() as session:
        engine = session.get_bind()
        assert isinstance(engine, Engine)
        first = annotation.next_task(session, principal=ann, slug="one", cache=cache, reaper=reaper)
        assert first is not None
        annotation.submit_pairwise(session, principal=ann, assignment_id=first.assignment_id, choice="B", cache=cache)
        session.close()
        sent = _statements_sent(engine)
        task = annotation.next_task(session, principal=ann, slug="one", cache=cache, reaper=reaper)
        session.close()
        assert task is not None
        claimed = list(sent)
        sent.clear()
        stored = annotation.submit_pairwise(
            session, principal=ann, assignment_id=task.assignment_id, choice="A", cache=cache
        )
        assert stored.created
        return claimed, list(sent)


def test_without_submit_hooks_next_and_submit_run_outside_transactions(sessions: sessionmaker[Session]) -> None:
    """One statement for next; the assignment's read and one statement for submit; each commits itself."""
    _project(sessions, items=[native_item("first"), native_item("second")], options={"arbitration": {"enabled": False}})
    claimed, submitted = _one_cycle(sessions, _annotator(sessions, "ann"))
    assert [(autocommit, statement[:13]) for autocommit, statement in claimed] == [(True, "WITH live AS ")]
    assert [(autocommit, statement[:13]) for autocommit, statement in submitted] == [
        (True, "SELECT assign"),
        (True, "WITH closed A"),
    ]


def test_with_arbitration_on_the_submission_and_its_hook_share_a_transaction(sessions: sessionmaker[Session]) -> None:
    _project(sessions, items=[native_item("first"), native_item("second")])
    claimed, submitted = _one_cycle(sessions, _annotator(sessions, "ann"))
    assert [(autocommit, statement[:13]) for autocommit, statement in claimed] == [(True, "WITH live AS ")]
    # The item still has an open slot: the hook reads nothing more.
    assert [(autocommit, statement[:13]) for autocommit, statement in submitted] == [
        (True, "SELECT assign"),
        (False, "WITH closed A"),
    ]


def _statements_sent(engine: Engine) -> list[tuple[bool, str]]:
    """Each statement sent from now on, with whether its connection commits every statement by itself."""
    sent: list[tuple[bool, str]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(connection: Connection, _cursor: object, statement: str, *_args: object) -> None:
        sent.append((bool(connection.connection.driver_connection.autocommit), statement.strip()))  # type: ignore[union-attr]

    return sent


def test_the_generic_plan_of_the_claim_never_scans_the_queue_or_the_items(sessions: sessionmaker[Session]) -> None:
    """After a few runs PostgreSQL plans a prepared statement once for all parameters: that plan must use indexes."""
    project_id = _project(sessions, items=[native_item(f"i{n}") for n in range(GENERIC_PLAN_ITEMS)])
    ann = _annotator(sessions, "ann")
    with sessions() as session:
        for _ in range(5):
            _claim(session, project_id, ann.id, now=utcnow() + timedelta(hours=2))
            session.execute(text("UPDATE assignment SET state = 'submitted' WHERE state = 'leased'"))
            session.commit()
        session.execute(text("ANALYZE"))
        session.commit()
        statement = single_statement._claim_statement(routed=False, shuffle_in_database=False)
        compiled = statement.compile(dialect=session.get_bind().dialect)
        values = compiled.construct_params(
            {
                "in_project": project_id,
                "for_annotator": ann.id,
                "lease_ends": utcnow() + timedelta(hours=3),
                "now": utcnow(),
                "new_order": [0, 1],
            }
        )
        names: list[str] = []

        def numbered(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        prepared = re.sub(r"%\((\w+)\)s", numbered, compiled.string)
        session.execute(text("SET plan_cache_mode = force_generic_plan"))
        session.connection().exec_driver_sql(f"PREPARE generic_claim AS {prepared}")
        arguments = ", ".join(_sql_literal(values[name]) for name in names)
        plan = "\n".join(
            row[0] for row in session.connection().exec_driver_sql(f"EXPLAIN EXECUTE generic_claim({arguments})")
        )
        session.rollback()
    # A table of a few rows (the caller's assignments) may be scanned; the queue and the items never.
    assert not re.search(r"Seq Scan on (item_queue|item|response)\b", plan), plan


GENERIC_PLAN_ITEMS = 3000
"""Enough items that scanning them costs the planner more than an index (under ~1,000 a scan is cheaper)."""


def _sql_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text_value = json.dumps(value) if isinstance(value, list) else str(value)
    return "'" + text_value.replace("'", "''") + "'"
