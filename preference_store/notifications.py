"""Notifications: short messages for one user, such as an annotator paused on gold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from preference_store.models import Notification, Project, Role, User


@dataclass(frozen=True, slots=True)
class NotificationRow:
    """A notification with the names a list shows."""

    id: int
    kind: str
    message: str
    created_at: datetime
    read_at: datetime | None
    project_slug: str | None
    subject_user_id: int | None
    subject_name: str | None


def add_notifications(
    session: Session,
    *,
    recipient_ids: list[int],
    project_id: int | None,
    subject_user_id: int | None,
    kind: str,
    message: str,
    now: datetime,
) -> int:
    """Send the same notification to several users; returns how many were added."""
    session.add_all(
        Notification(
            recipient_id=recipient_id,
            project_id=project_id,
            subject_user_id=subject_user_id,
            kind=kind,
            message=message,
            created_at=now,
        )
        for recipient_id in recipient_ids
    )
    session.flush()
    return len(recipient_ids)


def count_unread(session: Session, *, recipient_id: int) -> int:
    """How many unread notifications the user has."""
    return int(
        session.scalar(
            select(func.count()).where(Notification.recipient_id == recipient_id, Notification.read_at.is_(None))
        )
        or 0
    )


def list_notifications(session: Session, *, recipient_id: int, limit: int) -> list[NotificationRow]:
    """The user's latest notifications, newest first."""
    rows = session.execute(
        select(Notification, Project.slug, User.name)
        .outerjoin(Project, Project.id == Notification.project_id)
        .outerjoin(User, User.id == Notification.subject_user_id)
        .where(Notification.recipient_id == recipient_id)
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    return [
        NotificationRow(n.id, n.kind, n.message, n.created_at, n.read_at, slug, n.subject_user_id, name)
        for n, slug, name in rows
    ]


def mark_read(session: Session, *, recipient_id: int, notification_ids: list[int] | None, now: datetime) -> int:
    """Mark the user's notifications read (all of them when `notification_ids` is None)."""
    statement = update(Notification).where(Notification.recipient_id == recipient_id, Notification.read_at.is_(None))
    if notification_ids is not None:
        statement = statement.where(Notification.id.in_(notification_ids))
    return int(session.execute(statement.values(read_at=now)).rowcount)  # type: ignore[attr-defined]


def staff_user_ids(session: Session) -> list[int]:
    """Active leads and admins: who hears about annotators paused on gold."""
    return list(
        session.scalars(
            select(User.id).where(User.role.in_([Role.LEAD, Role.ADMIN]), User.is_active.is_(True)).order_by(User.id)
        )
    )
