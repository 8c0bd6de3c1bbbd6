"""Notifications for leads and admins: listing, unread counts, marking read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.principal import Principal
from preference_store import notifications as notification_store
from preference_store.base import utcnow
from preference_store.engine import begin_write
from preference_store.notifications import NotificationRow

LIST_LIMIT = 100


@dataclass(frozen=True, slots=True)
class NotificationList:
    """The caller's latest notifications and how many are unread."""

    unread: int
    notifications: list[NotificationRow]


def notify_staff(
    session: Session, *, project_id: int | None, subject_user_id: int | None, kind: str, message: str, now: datetime
) -> int:
    """Queue a notification for every active lead and admin (no commit: part of the caller's work)."""
    return notification_store.add_notifications(
        session,
        recipient_ids=notification_store.staff_user_ids(session),
        project_id=project_id,
        subject_user_id=subject_user_id,
        kind=kind,
        message=message,
        now=now,
    )


def unread_count(session: Session, *, principal: Principal) -> int:
    """How many unread notifications the caller has (0 for annotators, who get none)."""
    if not principal.is_staff or principal.user_id is None:
        return 0
    return notification_store.count_unread(session, recipient_id=principal.id)


def my_notifications(session: Session, *, principal: Principal) -> NotificationList:
    """The caller's latest notifications (leads and admins)."""
    principal.require_staff()
    return NotificationList(
        unread=notification_store.count_unread(session, recipient_id=principal.id),
        notifications=notification_store.list_notifications(session, recipient_id=principal.id, limit=LIST_LIMIT),
    )


def mark_read(session: Session, *, principal: Principal, notification_ids: list[int] | None) -> int:
    """Mark the caller's notifications read (all when `notification_ids` is None)."""
    principal.require_staff()
    begin_write(session)
    count = notification_store.mark_read(
        session, recipient_id=principal.id, notification_ids=notification_ids, now=utcnow()
    )
    session.commit()
    return count
