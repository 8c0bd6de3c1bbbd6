"""The progress strip's streak: consecutive UTC days with judgments, the run before today read once a day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.principal import Principal
from app.services import accounts, annotation, importing, progress, projects
from preference_store.models import Judgment
from tests.conftest import People, native_item

SLUG = "streak"
DAY = datetime(2026, 11, 20, tzinfo=UTC)


def _annotator(session: Session, operator: Principal, people: People) -> Principal:
    projects.create_project(session, principal=operator, slug=SLUG, name="Streak", overlap=1)
    importing.import_items(
        session, principal=operator, slug=SLUG, rows=[(n, native_item(f"s-{n}")) for n in range(1, 9)]
    )
    email = people.make("streak@example.org")
    projects.add_members(session, principal=operator, slug=SLUG, emails=[email])
    principal = accounts.principal_for_api_token(session, token=people.tokens[email], cache=accounts.TokenCache(0))
    assert principal is not None
    return principal


def _judge_on(session: Session, principal: Principal, moment: datetime) -> None:
    task = annotation.next_task(session, principal=principal, slug=SLUG, now=moment)
    assert task is not None
    annotation.submit_pairwise(session, principal=principal, assignment_id=task.assignment_id, choice="A", now=moment)


def _streak(session: Session, principal: Principal, now: datetime, streaks: progress.StreakCache | None) -> int:
    return progress.my_progress(session, principal=principal, slug=SLUG, now=now, streaks=streaks).streak_days


def test_the_streak_counts_the_days_up_to_today_or_yesterday(
    session: Session, operator: Principal, people: People
) -> None:
    annotator = _annotator(session, operator, people)
    for days_ago in (5, 3, 2, 1):
        _judge_on(session, annotator, DAY - timedelta(days=days_ago, hours=-10))
    noon = DAY + timedelta(hours=12)
    assert _streak(session, annotator, noon, None) == 3  # yesterday's run still counts this morning
    _judge_on(session, annotator, noon)
    assert _streak(session, annotator, noon + timedelta(minutes=1), None) == 4
    assert _streak(session, annotator, noon + timedelta(days=2), None) == 0  # a day missed ends it


def test_the_cache_reads_the_run_before_today_once_a_day(session: Session, operator: Principal, people: People) -> None:
    annotator = _annotator(session, operator, people)
    for days_ago in (3, 2, 1):
        _judge_on(session, annotator, DAY - timedelta(days=days_ago, hours=-10))
    streaks = progress.StreakCache()
    morning = DAY + timedelta(hours=8)
    assert _streak(session, annotator, morning, streaks) == 3
    # Two days ago is gone from the database; today the cached run still stands, and today's first
    # judgment is seen at once.
    two_days_ago = DAY - timedelta(days=2)
    session.execute(
        delete(Judgment).where(Judgment.created_at >= two_days_ago, Judgment.created_at < two_days_ago + timedelta(1))
    )
    assert _streak(session, annotator, morning, streaks) == 3
    _judge_on(session, annotator, morning + timedelta(minutes=5))
    assert _streak(session, annotator, morning + timedelta(minutes=6), streaks) == 4
    # The next day the run is read again: today (now yesterday) and the day before it, then the gap.
    assert _streak(session, annotator, morning + timedelta(days=1), streaks) == 2
    assert session.scalar(select(func.count()).select_from(Judgment)) == 3
