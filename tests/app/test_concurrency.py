"""Many annotators at once on a committed database: overlap holds, nobody twice."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from app import database
from app.principal import command_line_principal
from app.services import accounts, annotation, importing, projects
from preference_store.engine import build_engine, session_factory
from preference_store.models import Assignment, AssignmentState, Judgment, Role
from tests.conftest import native_item
from tests.databases import fresh_database

pytestmark = pytest.mark.concurrency

ANNOTATORS = 16
ITEMS = 60
OVERLAP = 3


@pytest.fixture
def committed_engine(tmp_path: Path) -> Iterator[Engine]:
    with fresh_database(tmp_path) as url:
        engine = build_engine(url, pool_size=ANNOTATORS + 2)
        database.upgrade(engine)
        yield engine
        engine.dispose()


def _seed(sessions: sessionmaker[Session]) -> list[str]:
    operator = command_line_principal()
    tokens = []
    with sessions() as session:
        projects.create_project(session, principal=operator, slug="stress", name="Stress", overlap=OVERLAP)
        importing.import_items(
            session, principal=operator, slug="stress", rows=[(n, native_item(f"s{n}")) for n in range(1, ITEMS + 1)]
        )
        emails = []
        for n in range(ANNOTATORS):
            email = f"stress{n}@example.org"
            accounts.create_user(session, email=email, name=f"s{n}", role=Role.ANNOTATOR, password=None)
            tokens.append(accounts.create_api_token(session, email=email).token)
            emails.append(email)
        projects.add_members(session, principal=operator, slug="stress", emails=emails)
    return tokens


def _annotate_until_empty(
    sessions: sessionmaker[Session], token: str, acknowledged: list[int], errors: list[str]
) -> None:
    cache = accounts.TokenCache(60)
    try:
        while True:
            with sessions() as session:
                principal = accounts.principal_for_api_token(session, token=token, cache=cache)
                assert principal is not None
                task = annotation.next_task(session, principal=principal, slug="stress")
                if task is None:
                    return
                stored = annotation.submit_pairwise(
                    session, principal=principal, assignment_id=task.assignment_id, choice="A"
                )
                acknowledged.append(stored.judgment_id)
    except Exception as error:  # collected and asserted on in the main thread
        errors.append(repr(error))


def test_sixteen_annotators_fill_every_item_exactly_to_overlap(committed_engine: Engine) -> None:
    sessions = session_factory(committed_engine)
    tokens = _seed(sessions)
    acknowledged: list[int] = []
    errors: list[str] = []
    threads = [
        threading.Thread(target=_annotate_until_empty, args=(sessions, token, acknowledged, errors)) for token in tokens
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    with sessions() as session:
        judgments = session.execute(select(Judgment.id, Judgment.item_id, Judgment.annotator_id)).all()
        live = session.scalars(select(Assignment.id).where(Assignment.state == AssignmentState.LEASED.value)).all()
    per_item = Counter(item_id for _, item_id, _ in judgments)
    assert len(per_item) == ITEMS
    assert set(per_item.values()) == {OVERLAP}
    pairs = [(item_id, annotator_id) for _, item_id, annotator_id in judgments]
    assert len(pairs) == len(set(pairs))
    assert sorted(acknowledged) == sorted(judgment_id for judgment_id, _, _ in judgments)
    assert live == []
