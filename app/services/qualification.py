"""Qualification and the gold floor: who may annotate a production project right now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.principal import Principal
from app.services import audit
from app.services.project_options import ProjectOptions
from app.services.projects import get_project
from preference_store import gold as gold_store
from preference_store import projects as project_store
from preference_store.base import utcnow
from preference_store.engine import begin_write
from preference_store.projects import ProjectRow


@dataclass(frozen=True, slots=True)
class QualificationStatus:
    """An annotator's standing in one qualification project."""

    slug: str
    name: str
    answered: int
    correct: int
    needed: int
    pass_score: float

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.answered if self.answered else None

    @property
    def passed(self) -> bool:
        return self.answered >= self.needed and self.correct >= self.pass_score * self.answered


class QualificationRequired(Conflict):
    """The project serves nothing until the caller passed its qualification projects."""

    def __init__(self, missing: list[QualificationStatus]) -> None:
        names = ", ".join(status.slug for status in missing)
        super().__init__("qualification_required", f"Pass the qualification first: {names}.")
        self.missing = missing


class MemberPaused(Conflict):
    """The caller fell below the project's gold floor and waits for a lead."""

    def __init__(self, paused_at: datetime, reason: str) -> None:
        super().__init__("annotator_paused", f"You are paused in this project: {reason} Contact your lead.")
        self.paused_at = paused_at
        self.reason = reason


def check_may_annotate(session: Session, *, principal: Principal, project: ProjectRow, options: ProjectOptions) -> None:
    """Raise MemberPaused or QualificationRequired when the project must serve the caller nothing.

    Costs nothing in projects without a floor or required qualifications.
    """
    if principal.is_staff:
        return
    if options.gold.floor is not None:
        pause = gold_store.member_pause(session, project_id=project.id, user_id=principal.id)
        if pause is not None:
            raise MemberPaused(pause.paused_at, pause.reason)
    if options.gold.requires_qualification:
        missing = [
            status
            for status in qualification_statuses(session, user_id=principal.id, options=options)
            if not status.passed
        ]
        if missing:
            raise QualificationRequired(missing)


def qualification_statuses(session: Session, *, user_id: int, options: ProjectOptions) -> list[QualificationStatus]:
    """The user's standing in each qualification project the options require."""
    statuses = []
    for slug in options.gold.requires_qualification:
        qualifying = project_store.get_project_by_slug(session, slug=slug)
        if qualifying is None:
            statuses.append(QualificationStatus(slug, slug, 0, 0, options.gold.min_gold, options.gold.pass_score))
            continue
        results = gold_store.recent_gold_results(session, project_id=qualifying.id, annotator_id=user_id, limit=None)
        correct = sum(1 for verdict, gold, accepted in results if verdict == gold or verdict in accepted)
        statuses.append(
            QualificationStatus(
                slug, qualifying.name, len(results), correct, options.gold.min_gold, options.gold.pass_score
            )
        )
    return statuses


def resume_member(session: Session, *, principal: Principal, slug: str, user_id: int) -> bool:
    """Lift a member's gold pause (leads and admins); False if they were not paused."""
    principal.require_staff()
    project = get_project(session, principal=principal, slug=slug)
    begin_write(session)
    if not gold_store.resume(session, project_id=project.id, user_id=user_id, now=utcnow()):
        session.rollback()
        if not project_store.is_member(session, project_id=project.id, user_id=user_id):
            raise NotFound("member_not_found", f"User {user_id} is not a member of '{slug}'.", field="user_id")
        return False
    audit.record(
        session,
        principal=principal,
        action="member.resume",
        project_id=project.id,
        target_type="user",
        target_id=user_id,
    )
    session.commit()
    return True
