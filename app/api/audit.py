"""JSON API v1: the audit log of lead and admin actions (leads and admins), newest first."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from app.api.v1 import ERRORS
from app.deps import ApiCall
from app.services import audit
from app.services.audit import AuditQuery

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["audit"])


def audit_query(
    project: Annotated[str, Query(description="A project slug.")] = "",
    actor: Annotated[str, Query(description="The acting user's email.")] = "",
    action: Annotated[str, Query(description="One action, such as gold.set.")] = "",
    since: Annotated[date | None, Query(description="From this UTC day.")] = None,
    until: Annotated[date | None, Query(description="Up to and including this UTC day.")] = None,
    before: Annotated[str, Query(description="The `next_before` cursor of the previous page.")] = "",
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE_SIZE)] = audit.PAGE_SIZE,
) -> AuditQuery:
    """The audit log's filters from the query string."""
    return AuditQuery(project=project, actor=actor, action=action, since=since, until=until, before=before, limit=limit)


class AuditEventOut(BaseModel):
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


class AuditPageOut(BaseModel):
    events: list[AuditEventOut]
    next_before: str | None


@router.get("/audit")
async def audit_log(query: Annotated[AuditQuery, Depends(audit_query)], call: ApiCall) -> AuditPageOut:
    """Leads and admins: who changed gold, verdicts, guidelines, roles, members, exports and imports."""
    page = await call.run(audit.list_events, call.session, principal=call.principal, query=query)
    return AuditPageOut(
        events=[AuditEventOut.model_validate(row, from_attributes=True) for row in page.events],
        next_before=page.next_before,
    )
