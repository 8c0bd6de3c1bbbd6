"""The annotation loop: lease the next item, store the verdict."""

from __future__ import annotations

import string
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.principal import Principal
from app.services.projects import PAIRWISE_RESPONSES, ProjectAccessCache, get_project, project_by_id
from preference_store import items as item_store
from preference_store import queue
from preference_store.base import utcnow
from preference_store.engine import begin_write
from preference_store.models import AssignmentState

PAIRWISE_CHOICES = ("A", "B", "tie", "both_bad")
MAX_RATIONALE_CHARS = 10_000
MAX_TIME_SPENT_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class ShownResponse:
    """A response as the annotator sees it: by label, never by model or position."""

    label: str
    content: str


@dataclass(frozen=True, slots=True)
class Task:
    """One leased item, ready to show."""

    assignment_id: int
    project_slug: str
    project_name: str
    external_id: str
    messages: list[dict[str, Any]]
    responses: list[ShownResponse]
    language: str | None
    leased_until: datetime
    guidelines_version: int


@dataclass(frozen=True, slots=True)
class StoredJudgment:
    """The outcome of a submission; `created` is False when it repeated a stored one."""

    judgment_id: int
    assignment_id: int
    created: bool


class LeaseReaper:
    """When a claim also sweeps its project's expired leases: at most every few seconds.

    Leases run for minutes, so a sweep a few seconds late costs nothing, while a sweep on
    every claim is a statement on the hot path.
    """

    def __init__(self, interval_seconds: float) -> None:
        self._interval = timedelta(seconds=interval_seconds)
        self._next_sweep: dict[int, datetime] = {}
        self._lock = threading.Lock()

    def due(self, project_id: int, now: datetime) -> bool:
        with self._lock:
            if now < self._next_sweep.get(project_id, now):
                return False
            self._next_sweep[project_id] = now + self._interval
            return True


def next_task(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    now: datetime | None = None,
    cache: ProjectAccessCache | None = None,
    reaper: LeaseReaper | None = None,
) -> Task | None:
    """Lease the caller's next item in the project (or return the one they hold)."""
    now = now or utcnow()
    begin_write(session)
    project = get_project(session, principal=principal, slug=slug, cache=cache)
    if project.is_archived:
        raise Conflict("project_archived", f"Project '{slug}' is archived.")
    lease = queue.claim_next(
        session,
        project_id=project.id,
        annotator_id=principal.id,
        response_count=PAIRWISE_RESPONSES,
        lease_seconds=project.lease_seconds,
        now=now,
        reap_expired=reaper is None or reaper.due(project.id, now),
    )
    content = item_store.load_item_content(session, item_id=lease.item_id) if lease else None
    session.commit()
    if lease is None:
        return None
    if lease.passed_from is not None:
        _flag_passed_items(session, project_id=project.id, from_item=lease.passed_from, to_item=lease.item_id)
    if content is None:
        raise NotFound("item_not_found", "The leased item no longer exists.")
    by_position = {response.position: response.content for response in content.responses}
    language = content.metadata.get("language")
    return Task(
        assignment_id=lease.assignment_id,
        project_slug=project.slug,
        project_name=project.name,
        external_id=content.external_id,
        messages=content.messages,
        responses=[
            ShownResponse(label=string.ascii_uppercase[index], content=by_position[position])
            for index, position in enumerate(lease.shown_order)
        ],
        language=language if isinstance(language, str) else None,
        leased_until=lease.leased_until,
        guidelines_version=project.guidelines_version,
    )


def _flag_passed_items(session: Session, *, project_id: int, from_item: int, to_item: int) -> None:
    # One short transaction per item: waiting for a row another claim holds while holding
    # none ourselves can never be part of a deadlock.
    passed = queue.open_items_between(session, project_id=project_id, from_item=from_item, to_item=to_item)
    session.rollback()
    for item_id in passed:
        queue.mark_reopened(session, item_id=item_id)
        session.commit()


def submit_pairwise(
    session: Session,
    *,
    principal: Principal,
    assignment_id: int,
    choice: str,
    rationale: str | None = None,
    time_spent_ms: int | None = None,
    now: datetime | None = None,
    cache: ProjectAccessCache | None = None,
) -> StoredJudgment:
    """Store a pairwise verdict once; an identical resubmission returns the stored one."""
    if choice not in PAIRWISE_CHOICES:
        raise InvalidInput("invalid_choice", "choice must be one of A, B, tie, both_bad.", field="choice")
    rationale = (rationale or "").strip() or None
    if rationale is not None and len(rationale) > MAX_RATIONALE_CHARS:
        raise InvalidInput(
            "rationale_too_long", f"rationale is limited to {MAX_RATIONALE_CHARS} characters.", field="rationale"
        )
    if time_spent_ms is not None and not 0 <= time_spent_ms <= MAX_TIME_SPENT_MS:
        raise InvalidInput("invalid_time_spent", "time_spent_ms must be between 0 and 24 hours.", field="time_spent_ms")
    now = now or utcnow()
    begin_write(session)
    assignment = queue.get_assignment(session, assignment_id=assignment_id)
    if assignment is None or assignment.annotator_id != principal.id:
        raise NotFound("assignment_not_found", f"No assignment {assignment_id} for you.", field="assignment_id")
    preferred = None
    if choice in ("A", "B"):
        preferred = assignment.shown_order[string.ascii_uppercase.index(choice)]
    payload: dict[str, Any] = {"choice": choice, "preferred_position": preferred, "rationale": rationale}
    return _store(
        session,
        principal=principal,
        assignment=assignment,
        payload=payload,
        time_spent_ms=time_spent_ms,
        now=now,
        cache=cache,
    )


def _store(
    session: Session,
    *,
    principal: Principal,
    assignment: queue.AssignmentRow,
    payload: dict[str, Any],
    time_spent_ms: int | None,
    now: datetime,
    cache: ProjectAccessCache | None,
) -> StoredJudgment:
    closed = queue.close_lease(
        session, assignment_id=assignment.id, annotator_id=principal.id, state=AssignmentState.SUBMITTED, now=now
    )
    if not closed:
        existing = queue.judgment_for_assignment(session, assignment_id=assignment.id)
        if existing is not None:
            session.rollback()
            judgment_id, stored = existing
            if _same_verdict(stored, payload):
                return StoredJudgment(judgment_id, assignment.id, created=False)
            raise Conflict("already_judged", "This assignment already has a different judgment.", field="assignment_id")
        revived = queue.revive_expired_for_submission(
            session, assignment_id=assignment.id, annotator_id=principal.id, item_id=assignment.item_id, now=now
        )
        if not revived:
            session.rollback()
            raise Conflict(
                "assignment_closed",
                "This assignment expired or was skipped and its item went to someone else.",
                field="assignment_id",
            )
    project = project_by_id(session, project_id=assignment.project_id, cache=cache)
    judgment_id = queue.insert_judgment(
        session,
        assignment=assignment,
        payload=payload,
        time_spent_ms=time_spent_ms,
        guidelines_version=project.guidelines_version if project else 1,
        now=now,
    )
    session.commit()
    return StoredJudgment(judgment_id, assignment.id, created=True)


def _same_verdict(stored: dict[str, Any], submitted: dict[str, Any]) -> bool:
    return all(stored.get(key) == value for key, value in submitted.items())
