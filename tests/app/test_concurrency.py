"""Many annotators at once on a committed database: overlap holds, nobody twice."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from app import database
from app.principal import command_line_principal
from app.services import accounts, annotation, importing, projects
from app.services.verdicts import VerdictInput
from preference_store import queue
from preference_store.base import utcnow
from preference_store.engine import build_engine, session_factory
from preference_store.models import Assignment, AssignmentState, Item, Judgment, Role, User
from tests.conftest import native_item
from tests.databases import fresh_database

pytestmark = pytest.mark.concurrency

ANNOTATORS = 16
ITEMS = 60
OVERLAP = 3


@pytest.fixture
def committed_engine(tmp_path: Path) -> Iterator[Engine]:
    with fresh_database(tmp_path) as url:
        engine = build_engine(url, pool_size=MIX_ANNOTATORS + 2)
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


MIX_ANNOTATORS = 32
MIX_ITEMS = 90
MIX_LEASE_SECONDS = 30


@dataclass
class Served:
    """What one annotator was served and did, as its thread saw it."""

    email: str
    tasks: list[tuple[int, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    acknowledged: list[int] = field(default_factory=list)
    repeats: list[tuple[int, int]] = field(default_factory=list)


def _seed_mix(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    operator = command_line_principal()
    people = []
    with sessions() as session:
        projects.create_project(
            session,
            principal=operator,
            slug="mix",
            name="Mix",
            overlap=OVERLAP,
            lease_seconds=MIX_LEASE_SECONDS,
            options={"rationale": "optional"},
        )
        importing.import_items(
            session, principal=operator, slug="mix", rows=[(n, native_item(f"m{n}")) for n in range(MIX_ITEMS)]
        )
        for n in range(MIX_ANNOTATORS):
            email = f"mix{n}@example.org"
            accounts.create_user(session, email=email, name=f"m{n}", role=Role.ANNOTATOR, password=None)
            people.append((email, accounts.create_api_token(session, email=email).token))
        projects.add_members(session, principal=operator, slug="mix", emails=[email for email, _ in people])
    return people


def _live_leases(session: Session) -> int:
    count = session.scalar(select(func.count()).select_from(Assignment).where(Assignment.state == "leased"))
    session.rollback()
    return int(count or 0)


def _work_the_mix(
    sessions: sessionmaker[Session],
    token: str,
    role: int,
    served: Served,
    reaper: annotation.LeaseReaper,
    errors: list[str],
) -> None:
    """Loop next -> submit; role 1 skips, 2 abandons leases, 3 submits twice, every third task."""
    cache = accounts.TokenCache(60)
    deadline = time.monotonic() + 60
    late: datetime | None = None
    try:
        while time.monotonic() < deadline:
            with sessions() as session:
                principal = accounts.principal_for_api_token(session, token=token, cache=cache)
                assert principal is not None
                task = annotation.next_task(session, principal=principal, slug="mix", now=late, reaper=reaper)
                late = None
                if task is None:
                    # Slots come back while others skip or let leases lapse: stop once none is in flight.
                    if _live_leases(session) == 0:
                        return
                    time.sleep(0.05)
                    continue
                served.tasks.append((task.assignment_id, task.external_id))
                odd_one = len(served.tasks) % 3 == 0
                if role == 1 and odd_one:
                    annotation.skip_assignment(
                        session, principal=principal, assignment_id=task.assignment_id, reason="Not my market"
                    )
                    served.skipped.append(task.external_id)
                    continue
                if role == 2 and odd_one:
                    # Walk away: the next request comes after the lease ran out.
                    served.abandoned.append(task.external_id)
                    late = utcnow() + timedelta(seconds=MIX_LEASE_SECONDS + 1)
                    continue
                verdict = VerdictInput(choice="A" if task.assignment_id % 2 else "B", rationale=f"n{role}")
                stored = annotation.submit_judgment(
                    session, principal=principal, assignment_id=task.assignment_id, submitted=verdict
                )
                assert stored.created
                served.acknowledged.append(stored.judgment_id)
                if role == 3 and odd_one:
                    again = annotation.submit_judgment(
                        session, principal=principal, assignment_id=task.assignment_id, submitted=verdict
                    )
                    served.repeats.append((stored.judgment_id, again.judgment_id))
                    assert not again.created
        errors.append(f"{served.email}: still working at the deadline")
    except Exception as error:  # collected and asserted on in the main thread
        errors.append(f"{served.email}: {error!r}")


def test_thirty_two_annotators_skipping_abandoning_and_resubmitting_fill_every_item(
    committed_engine: Engine,
) -> None:
    sessions = session_factory(committed_engine)
    people = _seed_mix(sessions)
    # The first annotator walked away from a lease that ran out before the run starts:
    # the first claim's sweep of the project gives its slot back.
    with sessions() as session:
        principal = accounts.principal_for_api_token(session, token=people[0][1], cache=accounts.TokenCache(0))
        assert principal is not None
        stale = annotation.next_task(
            session, principal=principal, slug="mix", now=utcnow() - timedelta(seconds=MIX_LEASE_SECONDS * 3)
        )
        assert stale is not None
    reaper = annotation.LeaseReaper(3600)
    records = [Served(email) for email, _ in people]
    records[0].abandoned.append(stale.external_id)
    errors: list[str] = []
    threads = [
        threading.Thread(target=_work_the_mix, args=(sessions, token, n % 4, records[n], reaper, errors))
        for n, (_, token) in enumerate(people)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]

    with sessions() as session:
        judgments = session.execute(
            select(Judgment.id, Item.external_id, Judgment.annotator_id).join(Item, Item.id == Judgment.item_id)
        ).all()
        states = Counter(session.scalars(select(Assignment.state)).all())
        assert (
            queue.expire_stale_leases(
                session,
                project_id=session.scalar(select(Item.project_id).limit(1)) or 0,
                now=utcnow() + timedelta(days=1),
            )
            == 0
        )
        session.rollback()
        emails = dict(session.execute(select(User.id, User.email)).all())
    per_item = Counter(external_id for _, external_id, _ in judgments)
    assert len(per_item) == MIX_ITEMS
    assert set(per_item.values()) == {OVERLAP}
    pairs = [(external_id, annotator_id) for _, external_id, annotator_id in judgments]
    assert len(pairs) == len(set(pairs))
    acknowledged = [judgment_id for record in records for judgment_id in record.acknowledged]
    assert sorted(acknowledged) == sorted(judgment_id for judgment_id, _, _ in judgments)
    repeats = [pair for record in records for pair in record.repeats]
    assert repeats and all(first == again for first, again in repeats)
    judged_by = {(emails[annotator_id], external_id) for _, external_id, annotator_id in judgments}
    for record in records:
        served_ids = [external_id for _, external_id in record.tasks]
        assert len(served_ids) == len(set(served_ids)), record.email  # nothing served twice, skipped or not
        assert not {(record.email, external_id) for external_id in record.skipped} & judged_by
        assert not {(record.email, external_id) for external_id in record.abandoned} & judged_by
    assert sum(len(record.skipped) for record in records) > 0
    assert sum(len(record.abandoned) for record in records) > 1
    assert states[AssignmentState.LEASED] == 0
    assert states[AssignmentState.SKIPPED] == sum(len(record.skipped) for record in records)
    assert states[AssignmentState.EXPIRED] == sum(len(record.abandoned) for record in records)
