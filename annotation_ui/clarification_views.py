"""Pages for policy clarifications: the annotators' tab in the guidelines panel and the leads' page."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from annotation_ui.messages import error_text
from annotation_ui.rendering import is_htmx, render
from app.deps import Context, CurrentPrincipal, DbSession
from app.errors import InvalidInput
from app.principal import Principal
from app.services import clarifications, projects
from app.services.clarifications import ClarificationView, clarification_filters

router = APIRouter(include_in_schema=False)

LOG_STATES = ("answered", "dismissed")
"""What the leads' log lists (open questions have their own list above it)."""


def _version(value: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not value.isdigit():
        raise InvalidInput("invalid_version", "guidelines_version is a whole number.", field="guidelines_version")
    return int(value)


def _page_url(slug: str) -> str:
    return f"/projects/{quote(slug)}/clarifications"


# ---- annotators: the Clarifications tab of the guidelines panel ----


def _panel(
    request: Request,
    slug: str,
    session: DbSession,
    context: Context,
    principal: Principal,
    *,
    sent: bool = False,
    error: str | None = None,
    question: str = "",
    status_code: int = 200,
) -> Response:
    mine = clarifications.my_questions(session, principal=principal, slug=slug, cache=context.project_cache)
    answers = clarifications.answered_log(session, principal=principal, slug=slug, cache=context.project_cache)
    return render(
        request,
        "clarifications_panel.html",
        {"slug": slug, "mine": mine, "answers": answers, "q": "", "sent": sent, "error": error, "question": question},
        status_code=status_code,
    )


@router.get("/projects/{slug}/clarifications/panel", response_class=HTMLResponse)
def panel(request: Request, slug: str, session: DbSession, context: Context, principal: CurrentPrincipal) -> Response:
    """The caller's questions with their answers, the ask form and the answered log."""
    return _panel(request, slug, session, context, principal)


@router.get("/projects/{slug}/clarifications/answers", response_class=HTMLResponse)
def answers(
    request: Request, slug: str, session: DbSession, context: Context, principal: CurrentPrincipal, q: str = ""
) -> Response:
    """The answered log, searched: the panel's `answers` block for htmx."""
    filters = clarification_filters(q=q)
    found = clarifications.answered_log(
        session, principal=principal, slug=slug, filters=filters, cache=context.project_cache
    )
    return render(
        request, "clarifications_panel.html", {"slug": slug, "answers": found, "q": q, "mine": []}, block="answers"
    )


@router.post("/projects/{slug}/clarifications", response_class=HTMLResponse)
def ask(
    request: Request,
    slug: str,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
    question: Annotated[str, Form()] = "",
    external_id: Annotated[str, Form()] = "",
    guidelines_version: Annotated[str, Form()] = "",
) -> Response:
    """Send a question from the annotate page; the task and its draft stay as they are."""
    try:
        clarifications.ask(
            session,
            principal=principal,
            slug=slug,
            question=question,
            external_id=external_id.strip() or None,
            guidelines_version=_version(guidelines_version),
            cache=context.project_cache,
        )
    except InvalidInput as error:
        session.rollback()
        message = error_text(request, error)
        return _panel(request, slug, session, context, principal, error=message, question=question, status_code=422)
    if not is_htmx(request):
        return RedirectResponse(f"/projects/{quote(slug)}/annotate", status_code=303)
    return _panel(request, slug, session, context, principal, sent=True)


# ---- leads: the clarifications page ----


@router.get("/projects/{slug}/clarifications", response_class=HTMLResponse)
def clarifications_page(
    request: Request,
    slug: str,
    session: DbSession,
    principal: CurrentPrincipal,
    q: str = "",
    state: str = "answered",
    guidelines_version: str = "",
) -> Response:
    """Open questions first (answered inline), then the searchable log of answered and dismissed ones."""
    if state not in LOG_STATES:
        raise InvalidInput("invalid_state", f"state is one of {', '.join(LOG_STATES)}.", field="state")
    filters = clarification_filters(state=state, q=q, guidelines_version=_version(guidelines_version))
    log = clarifications.list_all(session, principal=principal, slug=slug, filters=filters)
    project = projects.get_project(session, principal=principal, slug=slug)
    context: dict[str, Any] = {
        "project": project,
        "log": log,
        "values": {"q": q, "state": state, "guidelines_version": guidelines_version},
        "log_states": LOG_STATES,
    }
    if not is_htmx(request):
        context["open"] = clarifications.open_questions(session, principal=principal, slug=slug)
    return render(request, "clarifications.html", context, block="log")


@router.get("/projects/{slug}/clarifications/badge", response_class=HTMLResponse)
def open_badge(request: Request, slug: str, session: DbSession, principal: CurrentPrincipal) -> Response:
    """How many questions wait for an answer, for the leads' navigation."""
    count = clarifications.open_count(session, principal=principal, slug=slug)
    return render(request, "clarifications_badge.html", {"slug": slug, "count": count})


def _card(
    request: Request,
    slug: str,
    session: DbSession,
    principal: Principal,
    clarification: ClarificationView,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    if not is_htmx(request) and error is None:
        return RedirectResponse(f"{_page_url(slug)}#clarification-{clarification.id}", status_code=303)
    project = projects.get_project(session, principal=principal, slug=slug)
    return render(
        request,
        "clarifications_card.html",
        {"project": project, "clarification": clarification, "error": error},
        status_code=status_code,
    )


@router.post("/projects/{slug}/clarifications/{clarification_id}/answer", response_class=HTMLResponse)
def answer(
    request: Request,
    slug: str,
    clarification_id: int,
    session: DbSession,
    principal: CurrentPrincipal,
    answer: Annotated[str, Form()] = "",
) -> Response:
    """Answer a question (or change an answer) inline; the card is swapped for its new state."""
    try:
        answered = clarifications.answer(
            session, principal=principal, slug=slug, clarification_id=clarification_id, text=answer
        )
    except InvalidInput as error:
        session.rollback()
        current = clarifications.get_one(session, principal=principal, slug=slug, clarification_id=clarification_id)
        return _card(request, slug, session, principal, current, error=error_text(request, error), status_code=422)
    return _card(request, slug, session, principal, answered)


@router.post("/projects/{slug}/clarifications/{clarification_id}/dismiss", response_class=HTMLResponse)
def dismiss(
    request: Request, slug: str, clarification_id: int, session: DbSession, principal: CurrentPrincipal
) -> Response:
    """Close an open question without an answer."""
    dismissed = clarifications.dismiss(session, principal=principal, slug=slug, clarification_id=clarification_id)
    return _card(request, slug, session, principal, dismissed)


@router.post("/projects/{slug}/clarifications/absorb", response_class=HTMLResponse)
def absorb(
    request: Request,
    slug: str,
    session: DbSession,
    principal: CurrentPrincipal,
    ids: Annotated[int, Form()],
    version: Annotated[str, Form()] = "",
) -> Response:
    """Link one answered question to the guidelines version that took it in."""
    chosen = _version(version)
    try:
        if chosen is None:
            raise InvalidInput("invalid_version", "Pick a guidelines version.", field="version")
        [absorbed] = clarifications.absorb(
            session, principal=principal, slug=slug, clarification_ids=[ids], version=chosen
        )
    except InvalidInput as error:
        session.rollback()
        current = clarifications.get_one(session, principal=principal, slug=slug, clarification_id=ids)
        return _card(request, slug, session, principal, current, error=error_text(request, error), status_code=422)
    return _card(request, slug, session, principal, absorbed)
