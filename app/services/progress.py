"""An annotator's own numbers: done today, left in the queue, streak, flagged content seen."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.principal import Principal
from app.services import repeats
from app.services.annotation import start_of_day
from app.services.projects import ProjectAccessCache, cached_options, get_project
from preference_store import judgments as judgment_store
from preference_store import queue
from preference_store.base import utcnow

STREAK_WINDOW_DAYS = 366
QUEUE_COUNT_LIMIT = 1000
"""The queue is counted up to this many items ("1000+"): the strip reloads after every judgment,
and an exact count walks every open item of the project."""


@dataclass(frozen=True, slots=True)
class Progress:
    done_today: int
    left_in_queue: int
    """Items the annotator could still be served, at most QUEUE_COUNT_LIMIT."""
    more_in_queue: bool
    """More than `left_in_queue` are left (the count stopped at QUEUE_COUNT_LIMIT)."""
    streak_days: int
    """Consecutive UTC days with at least one judgment, ending today (or yesterday)."""
    sensitive_today: int
    daily_cap: int | None
    break_after_minutes: int | None


def my_progress(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    now: datetime | None = None,
    cache: ProjectAccessCache | None = None,
    streaks: StreakCache | None = None,
) -> Progress:
    now = now or utcnow()
    project = get_project(session, principal=principal, slug=slug, cache=cache)
    options = cached_options(project)
    today = start_of_day(now)
    servable = queue.count_servable(
        session,
        project_id=project.id,
        annotator_id=principal.id,
        languages=principal.user.languages if options.route_by_language else None,
        limit=QUEUE_COUNT_LIMIT + 1,
    )
    judged = judgment_store.judged_since(session, annotator_id=principal.id, project_id=project.id, since=today)
    return Progress(
        # Answered repeats count like judgments: the annotator cannot tell one from the other.
        done_today=judged.in_project
        + repeats.answered_today(session, project=project, annotator_id=principal.id, since=today),
        left_in_queue=min(servable, QUEUE_COUNT_LIMIT),
        more_in_queue=servable > QUEUE_COUNT_LIMIT,
        streak_days=_streak(
            session, annotator_id=principal.id, today=today, streaks=streaks, judged_today=judged.anywhere > 0
        ),
        sensitive_today=judged.sensitive,
        daily_cap=options.daily_cap,
        break_after_minutes=options.break_after_minutes,
    )


class StreakCache:
    """Each annotator's run of days with judgments up to yesterday, read once a day.

    The strip reloads after every judgment; the run before today cannot change during the
    day, so only whether the annotator judged today is read each time, instead of a
    year of their judgments. Safe to share between threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._today: datetime | None = None
        self._runs: dict[int, int] = {}

    def run_before(self, annotator_id: int, today: datetime) -> int | None:
        with self._lock:
            return self._runs.get(annotator_id) if self._today == today else None

    def remember(self, annotator_id: int, today: datetime, run: int) -> None:
        with self._lock:
            if self._today != today:
                self._today, self._runs = today, {}
            self._runs[annotator_id] = run


def _streak(
    session: Session, *, annotator_id: int, today: datetime, streaks: StreakCache | None, judged_today: bool
) -> int:
    run = streaks.run_before(annotator_id, today) if streaks is not None else None
    if run is None:
        since = today - timedelta(days=STREAK_WINDOW_DAYS)
        days = judgment_store.days_with_judgments(session, annotator_id=annotator_id, since=since, before=today)
        run = _run_of_days(days, ending=today - timedelta(days=1))
        if streaks is not None:
            streaks.remember(annotator_id, today, run)
    return run + 1 if judged_today else run


def _run_of_days(days: set[str], *, ending: datetime) -> int:
    run = 0
    while ending.strftime("%Y-%m-%d") in days:
        run += 1
        ending -= timedelta(days=1)
    return run
