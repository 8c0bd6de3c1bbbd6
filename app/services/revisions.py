"""Annotators changing their recent judgments: the old version is kept, never overwritten."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.principal import Principal
from app.services.annotation import Task, build_task, check_time_spent
from app.services.projects import ProjectAccessCache, cached_options, get_project, project_by_id
from app.services.verdicts import VerdictInput, build_verdict, shown_payload
from preference_store import items as item_store
from preference_store import judgments as judgment_store
from preference_store.base import utcnow
from preference_store.engine import begin_write
from preference_store.judgments import JudgmentRow


@dataclass(frozen=True, slots=True)
class ShownRevision:
    revision: int
    verdict: dict[str, Any]
    guidelines_version: int
    made_at: datetime


@dataclass(frozen=True, slots=True)
class ShownJudgment:
    """A judgment as its annotator saw it: in the labels of their assignment."""

    judgment_id: int
    project_slug: str
    external_id: str
    verdict: dict[str, Any]
    time_spent_ms: int | None
    guidelines_version: int
    revision: int
    created_at: datetime
    revised_at: datetime | None
    revisable: bool
    history: list[ShownRevision]


def recent_judgments(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    cache: ProjectAccessCache | None = None,
    limit: int | None = None,
    with_history: bool = True,
) -> list[ShownJudgment]:
    """The caller's latest judgments in a project, newest first, the revisable ones marked.

    `limit`: at most this many (default: the revisable ones, and at least 10); `with_history`:
    with each judgment's earlier revisions (a page that lists only the current ones skips the read).
    """
    project = get_project(session, principal=principal, slug=slug, cache=cache)
    options = cached_options(project)
    rows = judgment_store.recent_judgments(
        session,
        annotator_id=principal.id,
        project_id=project.id,
        limit=max(options.revisable_judgments, 10) if limit is None else limit,
    )
    history = judgment_store.revisions_of(session, judgment_ids=[row.id for row in rows]) if with_history else {}
    return [
        _shown(row, project.slug, revisable=index < options.revisable_judgments, history=history.get(row.id, []))
        for index, row in enumerate(rows)
    ]


def _shown(row: JudgmentRow, slug: str, *, revisable: bool, history: list[judgment_store.RevisionRow]) -> ShownJudgment:
    return ShownJudgment(
        judgment_id=row.id,
        project_slug=slug,
        external_id=row.external_id,
        verdict=shown_payload(row.payload, row.shown_order),
        time_spent_ms=row.time_spent_ms,
        guidelines_version=row.guidelines_version,
        revision=row.revision,
        created_at=row.created_at,
        revised_at=row.revised_at,
        revisable=revisable,
        history=[
            ShownRevision(
                old.revision, shown_payload(old.payload, row.shown_order), old.guidelines_version, old.made_at
            )
            for old in history
        ],
    )


def own_judgment(session: Session, *, principal: Principal, judgment_id: int) -> tuple[JudgmentRow, str, bool]:
    """The caller's judgment, its project's slug, and whether it may still be changed."""
    row = judgment_store.get_judgment(session, judgment_id=judgment_id)
    if row is None or row.annotator_id != principal.id:
        raise NotFound("judgment_not_found", f"No judgment {judgment_id} of yours.", field="judgment_id")
    project = project_by_id(session, project_id=row.project_id)
    if project is None:
        raise NotFound("judgment_not_found", f"No judgment {judgment_id} of yours.", field="judgment_id")
    get_project(session, principal=principal, slug=project.slug)  # still a member
    options = cached_options(project)
    recent = judgment_store.recent_judgments(
        session, annotator_id=principal.id, project_id=project.id, limit=options.revisable_judgments
    )
    return row, project.slug, any(candidate.id == row.id for candidate in recent)


def get_own_judgment(session: Session, *, principal: Principal, judgment_id: int) -> ShownJudgment:
    row, slug, revisable = own_judgment(session, principal=principal, judgment_id=judgment_id)
    history = judgment_store.revisions_of(session, judgment_ids=[row.id]).get(row.id, [])
    return _shown(row, slug, revisable=revisable, history=history)


def revise_judgment(
    session: Session,
    *,
    principal: Principal,
    judgment_id: int,
    submitted: VerdictInput,
    time_spent_ms: int | None = None,
    now: datetime | None = None,
) -> ShownJudgment:
    """Change one of the caller's last few judgments; the version it replaces is kept."""
    check_time_spent(time_spent_ms)
    now = now or utcnow()
    begin_write(session)
    row, slug, revisable = own_judgment(session, principal=principal, judgment_id=judgment_id)
    if not revisable:
        raise Conflict(
            "judgment_not_revisable", "Only your last few judgments in a project can be changed.", field="judgment_id"
        )
    project = get_project(session, principal=principal, slug=slug)
    verdict = build_verdict(submitted, kind=project.kind, options=cached_options(project), shown_order=row.shown_order)
    if verdict.payload == row.payload:
        session.rollback()
        return get_own_judgment(session, principal=principal, judgment_id=judgment_id)
    spent = (row.time_spent_ms or 0) + time_spent_ms if time_spent_ms is not None else row.time_spent_ms
    if not judgment_store.revise(
        session,
        current=row,
        payload=verdict.payload,
        verdict=verdict.key,
        time_spent_ms=spent,
        guidelines_version=project.guidelines_version,
        now=now,
    ):
        session.rollback()
        raise Conflict("judgment_changed", "This judgment changed meanwhile; reload it.", field="judgment_id")
    session.commit()
    return get_own_judgment(session, principal=principal, judgment_id=judgment_id)


def reopen_judgment(
    session: Session, *, principal: Principal, slug: str, judgment_id: int
) -> tuple[ShownJudgment, Task]:
    """One of the caller's revisable judgments in a project, with its item as they saw it then."""
    row, judgment_slug, revisable = own_judgment(session, principal=principal, judgment_id=judgment_id)
    if judgment_slug != slug:
        raise NotFound(
            "judgment_not_found", f"No judgment {judgment_id} of yours in this project.", field="judgment_id"
        )
    if not revisable:
        raise Conflict(
            "judgment_not_revisable", "Only your last few judgments in a project can be changed.", field="judgment_id"
        )
    project = get_project(session, principal=principal, slug=slug)
    content = item_store.load_item_content(session, item_id=row.item_id)
    if content is None:
        raise NotFound("item_not_found", "The judged item no longer exists.")
    history = judgment_store.revisions_of(session, judgment_ids=[row.id]).get(row.id, [])
    task = build_task(
        project,
        content,
        assignment_id=row.assignment_id,
        shown_order=row.shown_order,
        leased_until=row.created_at,
        guidelines_version=row.guidelines_version,
    )
    return _shown(row, slug, revisable=True, history=history), task
