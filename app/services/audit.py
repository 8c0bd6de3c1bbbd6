"""The audit log of lead and admin actions: recording inside each change's transaction, and reading it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

import orjson
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.principal import AuthMethod, Principal
from preference_store import audit as store
from preference_store import projects as project_store
from preference_store import users as user_store
from preference_store.audit import AuditFilter, AuditRow
from preference_store.base import utcnow

ACTIONS: Final = (
    "gold.set",
    "gold.remove",
    "arbitration.verdict",
    "arbitration.dismiss",
    "guidelines.update",
    "project.create",
    "project.update",
    "user.create",
    "user.role_change",
    "token.create",
    "token.revoke",
    "member.add",
    "member.resume",
    "calibration.reveal",
    "calibration.gold",
    "export.create",
    "import.commit",
    "clarification.answer",
)
PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000
CSV_COLUMNS: Final = (
    "id", "at", "actor", "actor_role", "action", "project",
    "target_type", "target_id", "details", "request_id", "client",
)  # fmt: skip

request_origin: ContextVar[tuple[str | None, str | None]] = ContextVar("prefstack_request_origin", default=(None, None))
"""(request id, client address) of the request being served; set by the web layer."""


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of events, newest first, and the cursor of the next (older) page."""

    events: list[AuditRow]
    next_before: str | None
    actions: tuple[str, ...]
    actors: list[tuple[int, str]]


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """The page's filters as typed: a project slug, an actor email, an action, a date range (UTC days)."""

    project: str = ""
    actor: str = ""
    action: str = ""
    since: date | None = None
    until: date | None = None
    before: str = ""
    limit: int = PAGE_SIZE


def record(
    session: Session,
    *,
    principal: Principal,
    action: str,
    project_id: int | None = None,
    target_type: str | None = None,
    target_id: str | int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Log one action in the caller's transaction (no commit: it commits or rolls back with the change)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    request_id, client = request_origin.get()
    store.add_event(
        session,
        at=utcnow(),
        actor_id=principal.user_id,
        actor_role="cli" if principal.method is AuthMethod.CLI else principal.role.value,
        action=action,
        project_id=project_id,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id)[:200],
        details=_plain(details or {}),
        request_id=request_id,
        client=client,
    )


def _plain(value: Any) -> Any:
    """Details as JSON-ready values (dates as ISO text, tuples and sets as lists)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(item) for item in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _cursor_of(row: AuditRow) -> str:
    """`<microseconds since 1970>_<id>` of the last row shown: URL-safe, exact."""
    return f"{(row.at - _EPOCH) // timedelta(microseconds=1)}_{row.id}"


def _cursor(before: str) -> tuple[datetime, int] | None:
    if not before:
        return None
    moment, _, event_id = before.partition("_")
    try:
        return _EPOCH + timedelta(microseconds=int(moment)), int(event_id)
    except (ValueError, OverflowError) as error:
        raise InvalidInput("invalid_cursor", "This page link is broken; start again.", field="before") from error


def _filter(session: Session, query: AuditQuery) -> AuditFilter:
    project_id = actor_id = None
    if query.project.strip():
        project = project_store.get_project_by_slug(session, slug=query.project.strip())
        if project is None:
            raise NotFound("project_not_found", f"No project '{query.project.strip()}'.", field="project")
        project_id = project.id
    if query.actor.strip():
        user = user_store.get_user_by_email(session, email=query.actor.strip().lower())
        if user is None:
            raise InvalidInput("unknown_user", f"No user with email {query.actor.strip()}.", field="actor")
        actor_id = user.id
    action = query.action.strip() or None
    if action is not None and action not in ACTIONS:
        raise InvalidInput("invalid_action", f"'{action}' is not an audited action.", field="action")
    if query.since and query.until and query.until < query.since:
        raise InvalidInput("invalid_range", "The end date is before the start date.", field="until")
    return AuditFilter(
        project_id=project_id,
        actor_id=actor_id,
        action=action,
        since=datetime.combine(query.since, time.min, tzinfo=UTC) if query.since else None,
        until=datetime.combine(query.until + timedelta(days=1), time.min, tzinfo=UTC) if query.until else None,
    )


def list_events(session: Session, *, principal: Principal, query: AuditQuery) -> AuditPage:
    """A page of the audit log (leads and admins), newest first."""
    principal.require_staff()
    if not 1 <= query.limit <= MAX_PAGE_SIZE:
        raise InvalidInput("invalid_limit", f"limit is 1 to {MAX_PAGE_SIZE}.", field="limit")
    where = _filter(session, query)
    rows = store.list_events(session, where=where, before=_cursor(query.before), limit=query.limit + 1)
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    next_before = _cursor_of(rows[-1]) if more and rows else None
    return AuditPage(events=rows, next_before=next_before, actions=ACTIONS, actors=store.actor_choices(session))


def csv_lines(session: Session, *, principal: Principal, query: AuditQuery) -> Iterator[str]:
    """Every event matching the filters as CSV text, header first, a page of rows at a time."""
    principal.require_staff()
    where = _filter(session, query)
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flushed() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flushed()
    before: tuple[datetime, int] | None = None
    while True:
        rows = store.list_events(session, where=where, before=before, limit=MAX_PAGE_SIZE)
        for row in rows:
            writer.writerow(
                [
                    row.id, row.at.isoformat(), row.actor_email or "", row.actor_role, row.action,
                    row.project_slug or "", row.target_type or "", row.target_id or "",
                    _json(row.details), row.request_id or "", row.client or "",
                ]
            )  # fmt: skip
        yield flushed()
        if len(rows) < MAX_PAGE_SIZE:
            return
        before = (rows[-1].at, rows[-1].id)


def _json(details: dict[str, Any]) -> str:
    return orjson.dumps(details, option=orjson.OPT_SORT_KEYS).decode()
