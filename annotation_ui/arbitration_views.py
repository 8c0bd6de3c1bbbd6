"""Pages for leads: the arbitration queue and one case with its verdict form."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from annotation_ui.forms import verdict_from_form
from annotation_ui.messages import error_text
from annotation_ui.rendering import is_htmx, render
from app.deps import CurrentPrincipal, DbSession
from app.errors import Conflict, InvalidInput
from app.principal import Principal
from app.services import arbitration
from app.services.verdicts import VerdictInput

router = APIRouter(include_in_schema=False)

_VERDICT_FIELDS = ("choice", "strength", "ranking", "all_bad", "rationale")


def _queue_url(slug: str) -> str:
    return f"/projects/{quote(slug)}/arbitration"


def _case_url(slug: str, case_id: int) -> str:
    return f"{_queue_url(slug)}/{case_id}"


def _next_url(slug: str, next_id: int | None) -> str:
    return _case_url(slug, next_id) if next_id is not None else _queue_url(slug)


@router.get("/projects/{slug}/arbitration", response_class=HTMLResponse)
def queue_page(
    request: Request,
    slug: str,
    session: DbSession,
    principal: CurrentPrincipal,
    state: str = "open",
    reason: str = "",
    language: str = "",
    market: str = "",
    category: str = "",
    after: str = "",
    limit: int = arbitration.DEFAULT_PAGE_SIZE,
) -> Response:
    """The cases, oldest opened first, filtered; the `cases` block for htmx."""
    filters = arbitration.case_filters(state=state, reason=reason, language=language, market=market, category=category)
    page = arbitration.list_queue(
        session,
        principal=principal,
        slug=slug,
        filters=filters,
        after=after or None,
        limit=limit,
        with_facets=not is_htmx(request),
    )
    values = {"state": state, "reason": reason, "language": language, "market": market, "category": category}
    kept = "&".join(f"{key}={quote(value)}" for key, value in values.items() if value)
    context: dict[str, Any] = {
        "page": page,
        "values": values,
        "kept": kept,
        "states": arbitration.STATES,
        "reasons": arbitration.REASONS,
    }
    return render(request, "arbitration.html", context, block="cases")


def _case_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    slug: str,
    case_id: int,
    *,
    error: str | None = None,
    error_field: str | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    detail = arbitration.case_detail(session, principal=principal, slug=slug, case_id=case_id)
    context = {
        "detail": detail,
        "item": detail.item,
        "error": error,
        "error_field": error_field,
        "form": form or {},
    }
    return render(request, "arbitration_case.html", context, status_code=status_code)


@router.get("/projects/{slug}/arbitration/{case_id}", response_class=HTMLResponse)
def case_page(request: Request, slug: str, case_id: int, session: DbSession, principal: CurrentPrincipal) -> Response:
    """One case: the item, every judgment with its annotator's record, the gold answer, the verdict form."""
    return _case_page(request, session, principal, slug, case_id)


def _go(request: Request, url: str) -> Response:
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Location": url})
    return RedirectResponse(url, status_code=303)


@router.post("/projects/{slug}/arbitration/{case_id}/verdict", response_class=HTMLResponse)
async def record_verdict(
    request: Request, slug: str, case_id: int, session: DbSession, principal: CurrentPrincipal
) -> Response:
    """Record the final verdict, then go to the next open case (the queue when none is left)."""
    fields = [(name, value) for name, value in (await request.form()).multi_items() if isinstance(value, str)]
    submitted: VerdictInput = verdict_from_form(field for field in fields if field[0] != "csrf_token")
    try:
        outcome = arbitration.record_verdict(
            session, principal=principal, slug=slug, case_id=case_id, submitted=submitted
        )
    except (InvalidInput, Conflict) as error:
        session.rollback()
        form = {name: value for name, value in fields if name in _VERDICT_FIELDS or name.startswith("score.")}
        return _case_page(
            request,
            session,
            principal,
            slug,
            case_id,
            error=error_text(request, error),
            error_field=error.field,
            form=form,
            status_code=422 if isinstance(error, InvalidInput) else 409,
        )
    return _go(request, _next_url(slug, outcome.next_id))


@router.post("/projects/{slug}/arbitration/{case_id}/dismiss", response_class=HTMLResponse)
def dismiss(
    request: Request,
    slug: str,
    case_id: int,
    session: DbSession,
    principal: CurrentPrincipal,
    rationale: Annotated[str, Form()] = "",
) -> Response:
    """Close the case without a verdict, then go to the next open case."""
    outcome = arbitration.dismiss_case(session, principal=principal, slug=slug, case_id=case_id, rationale=rationale)
    return _go(request, _next_url(slug, outcome.next_id))


@router.post("/projects/{slug}/items/{external_id:path}/arbitration", response_class=HTMLResponse)
def open_case(
    request: Request, slug: str, external_id: str, session: DbSession, principal: CurrentPrincipal
) -> Response:
    """Send an item to arbitration from its detail page, and show the case."""
    opened = arbitration.open_manually(session, principal=principal, slug=slug, external_id=external_id)
    return _go(request, _case_url(slug, opened.case_id))
