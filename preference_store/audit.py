"""The audit log: one row per lead or admin action, newest first, read a page at a time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.orm import Session

from preference_store.models import AuditEvent, Project, User


@dataclass(frozen=True, slots=True)
class AuditRow:
    """An audit event with the names a page shows."""

    id: int
    at: datetime
    actor_id: int | None
    actor_email: str | None
    actor_role: str
    action: str
    project_slug: str | None
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    request_id: str | None
    client: str | None


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which events to list; None means any."""

    project_id: int | None = None
    actor_id: int | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def add_event(
    session: Session,
    *,
    at: datetime,
    actor_id: int | None,
    actor_role: str,
    action: str,
    project_id: int | None,
    target_type: str | None,
    target_id: str | None,
    details: dict[str, Any],
    request_id: str | None,
    client: str | None,
) -> None:
    """Insert one event (no commit: it belongs to the caller's transaction)."""
    session.execute(
        insert(AuditEvent).values(
            at=at,
            actor_id=actor_id,
            actor_role=actor_role,
            action=action,
            project_id=project_id,
            target_type=target_type,
            target_id=target_id,
            details=details,
            request_id=request_id,
            client=client,
        )
    )


def list_events(
    session: Session, *, where: AuditFilter, before: tuple[datetime, int] | None, limit: int
) -> list[AuditRow]:
    """Events matching `where`, newest first, strictly older than the `before` (at, id) cursor."""
    query = (
        select(
            AuditEvent.id,
            AuditEvent.at,
            AuditEvent.actor_id,
            User.email,
            AuditEvent.actor_role,
            AuditEvent.action,
            Project.slug,
            AuditEvent.target_type,
            AuditEvent.target_id,
            AuditEvent.details,
            AuditEvent.request_id,
            AuditEvent.client,
        )
        .outerjoin(User, User.id == AuditEvent.actor_id)
        .outerjoin(Project, Project.id == AuditEvent.project_id)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    if where.project_id is not None:
        query = query.where(AuditEvent.project_id == where.project_id)
    if where.actor_id is not None:
        query = query.where(AuditEvent.actor_id == where.actor_id)
    if where.action is not None:
        query = query.where(AuditEvent.action == where.action)
    if where.since is not None:
        query = query.where(AuditEvent.at >= where.since)
    if where.until is not None:
        query = query.where(AuditEvent.at < where.until)
    if before is not None:
        at, event_id = before
        query = query.where(or_(AuditEvent.at < at, and_(AuditEvent.at == at, AuditEvent.id < event_id)))
    return [AuditRow(*row) for row in session.execute(query).all()]


def actor_choices(session: Session) -> list[tuple[int, str]]:
    """Leads and admins who have an event, by email, for the page's filter."""
    query = (
        select(User.id, User.email)
        .where(User.id.in_(select(AuditEvent.actor_id).where(AuditEvent.actor_id.is_not(None)).distinct()))
        .order_by(User.email)
    )
    return [(row.id, row.email) for row in session.execute(query).all()]
