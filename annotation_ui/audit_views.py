"""The audit log page for leads and admins: filters, older pages, and a CSV download."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from annotation_ui.rendering import render
from app.deps import CurrentPrincipal, DbSession
from app.errors import InvalidInput
from app.services import audit
from app.services.audit import AuditQuery

router = APIRouter(include_in_schema=False)

FILTER_NAMES = ("project", "actor", "action", "since", "until")


def _day(request: Request, name: str) -> date | None:
    value = request.query_params.get(name, "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise InvalidInput("invalid_date", f"{name}: not a date such as 2026-12-31.", field=name) from error


def _query(request: Request) -> tuple[AuditQuery, dict[str, str]]:
    kept = {name: value for name in FILTER_NAMES if (value := request.query_params.get(name, "").strip())}
    query = AuditQuery(
        project=kept.get("project", ""),
        actor=kept.get("actor", ""),
        action=kept.get("action", ""),
        since=_day(request, "since"),
        until=_day(request, "until"),
        before=request.query_params.get("before", ""),
    )
    return query, kept


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, session: DbSession, principal: CurrentPrincipal) -> Response:
    query, kept = _query(request)
    page = audit.list_events(session, principal=principal, query=query)
    older = f"/audit?{urlencode({**kept, 'before': page.next_before})}" if page.next_before else None
    return render(
        request,
        "audit.html",
        {"page": page, "values": kept, "older": older, "csv_url": f"/audit.csv?{urlencode(kept)}"},
    )


@router.get("/audit.csv")
def audit_csv(request: Request, session: DbSession, principal: CurrentPrincipal) -> Response:
    query, _kept = _query(request)
    lines = audit.csv_lines(session, principal=principal, query=query)
    first = next(lines)  # runs the permission and filter checks before the response starts
    return StreamingResponse(
        iter([first, *lines]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="prefstack-audit.csv"'},
    )
