"""Pages for calibration sessions: the leads' list and session pages, the participants' blind task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from annotation_ui.forms import time_spent, verdict_from_form
from annotation_ui.messages import error_text
from annotation_ui.rendering import is_htmx, render
from annotation_ui.task_form import FormFields, FormState, form_state, kind_assets, single, values_of_verdict
from app.deps import CurrentPrincipal, DbSession
from app.errors import InvalidInput, PrefstackError
from app.principal import Principal
from app.services import calibration, projects

if TYPE_CHECKING:
    from preference_store.projects import ProjectRow

router = APIRouter(include_in_schema=False)


def _base(slug: str) -> str:
    return f"/projects/{quote(slug)}/calibration"


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


def _count(value: str, field: str) -> int:
    value = value.strip()
    if not value:
        return 0
    if not value.isdigit():
        raise InvalidInput("invalid_number", f"{field} is a whole number.", field=field)
    return int(value)


# ---- leads: the sessions list and the new-session form ----


def _list_page(
    request: Request,
    slug: str,
    session: DbSession,
    principal: Principal,
    *,
    error: PrefstackError | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    sessions = calibration.list_sessions(session, principal=principal, slug=slug)
    project = projects.get_project(session, principal=principal, slug=slug)
    return render(
        request,
        "calibration.html",
        {
            "project": project,
            "slug": slug,
            "sessions": sessions,
            "teams": calibration.team_choices(session, principal=principal),
            "error": error_text(request, error) if error else None,
            "error_field": error.field if error else None,
            "values": values or {},
            "default_after_days": calibration.DEFAULT_AFTER_DAYS,
        },
        status_code=status_code,
    )


@router.get("/projects/{slug}/calibration", response_class=HTMLResponse)
def sessions_page(
    request: Request, slug: str, session: DbSession, principal: CurrentPrincipal, external_ids: str = ""
) -> Response:
    """The project's calibration sessions and the form to start one (leads); `external_ids` fills its item list."""
    principal.require_staff()
    return _list_page(request, slug, session, principal, values={"external_ids": external_ids})


@router.post("/projects/{slug}/calibration", response_class=HTMLResponse)
async def create_session(request: Request, slug: str, session: DbSession, principal: CurrentPrincipal) -> Response:
    """Start a session, with its first items; then go to its page."""
    form = await request.form()
    values = {
        name: str(form.get(name, "")) for name in ("name", "notes", "emails", "external_ids", "random", "after_days")
    }
    teams = [str(team) for team in form.getlist("teams")]
    try:
        after_days = _count(values["after_days"], "after_days") or calibration.DEFAULT_AFTER_DAYS
        random_count = _count(values["random"], "random_disagreements")
        detail = calibration.create_session(
            session,
            principal=principal,
            slug=slug,
            name=values["name"],
            notes=values["notes"],
            teams=teams,
            emails=_lines(values["emails"]),
            after_days=after_days,
        )
        external_ids = _lines(values["external_ids"])
        if external_ids or random_count:
            calibration.add_items(
                session,
                principal=principal,
                slug=slug,
                session_id=detail.id,
                external_ids=external_ids,
                random_disagreements=random_count,
            )
    except InvalidInput as error:
        session.rollback()
        return _list_page(request, slug, session, principal, error=error, values=values, status_code=422)
    return RedirectResponse(f"{_base(slug)}/{detail.id}", status_code=303)


# ---- leads: one session ----


def _session_page(
    request: Request,
    slug: str,
    session_id: int,
    session: DbSession,
    principal: Principal,
    *,
    error: PrefstackError | None = None,
    status_code: int = 200,
) -> Response:
    detail = calibration.get_session(session, principal=principal, slug=slug, session_id=session_id)
    return render(
        request,
        "calibration_session.html",
        {
            "detail": detail,
            "slug": slug,
            "error": error_text(request, error) if error else None,
            "error_field": error.field if error else None,
        },
        status_code=status_code,
    )


@router.get("/projects/{slug}/calibration/{session_id}", response_class=HTMLResponse)
def session_page(
    request: Request, slug: str, session_id: int, session: DbSession, principal: CurrentPrincipal
) -> Response:
    """A session: progress while blind; distributions, answers, agreed answers and figures once revealed."""
    return _session_page(request, slug, session_id, session, principal)


@router.post("/projects/{slug}/calibration/{session_id}/items", response_class=HTMLResponse)
def add_items(
    request: Request,
    slug: str,
    session_id: int,
    session: DbSession,
    principal: CurrentPrincipal,
    external_ids: Annotated[str, Form()] = "",
    random: Annotated[str, Form()] = "",
) -> Response:
    try:
        calibration.add_items(
            session,
            principal=principal,
            slug=slug,
            session_id=session_id,
            external_ids=_lines(external_ids),
            random_disagreements=_count(random, "random_disagreements"),
        )
    except InvalidInput as error:
        session.rollback()
        return _session_page(request, slug, session_id, session, principal, error=error, status_code=422)
    return RedirectResponse(f"{_base(slug)}/{session_id}", status_code=303)


@router.post("/projects/{slug}/calibration/{session_id}/reveal", response_class=HTMLResponse)
def reveal(request: Request, slug: str, session_id: int, session: DbSession, principal: CurrentPrincipal) -> Response:
    calibration.reveal(session, principal=principal, slug=slug, session_id=session_id)
    return RedirectResponse(f"{_base(slug)}/{session_id}", status_code=303)


@router.post("/projects/{slug}/calibration/{session_id}/close", response_class=HTMLResponse)
def close(request: Request, slug: str, session_id: int, session: DbSession, principal: CurrentPrincipal) -> Response:
    calibration.close(session, principal=principal, slug=slug, session_id=session_id)
    return RedirectResponse(f"{_base(slug)}/{session_id}", status_code=303)


@router.post("/projects/{slug}/calibration/{session_id}/items/{item_id}/gold", response_class=HTMLResponse)
def make_gold(
    request: Request, slug: str, session_id: int, item_id: int, session: DbSession, principal: CurrentPrincipal
) -> Response:
    calibration.make_gold(session, principal=principal, slug=slug, session_id=session_id, calibration_item_id=item_id)
    return RedirectResponse(f"{_base(slug)}/{session_id}#item-{item_id}", status_code=303)


def _workbench(
    request: Request,
    project: ProjectRow,
    state: FormState | None,
    stored: dict[str, Any] | None,
    *,
    block: str | None = None,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """The calibration task page: the form refilled from what was sent (after a 422) or from the stored answer."""
    state = state or FormState(values=values_of_verdict(stored) if stored else {})
    return render(
        request,
        "calibration_task.html",
        {
            "project": project,
            "slug": project.slug,
            "options": projects.cached_options(project),
            "error": state.error,
            "problems": state.problems,
            "problem_messages": state.messages,
            "values": state.values,
            "kind_assets": kind_assets(project.kind.value),
            **context,
        },
        block=block,
        status_code=status_code,
    )


def _agree_page(
    request: Request,
    slug: str,
    session_id: int,
    item_id: int,
    session: DbSession,
    principal: Principal,
    *,
    state: FormState | None = None,
    note: str | None = None,
    status_code: int = 200,
) -> Response:
    form = calibration.agree_form(
        session, principal=principal, slug=slug, session_id=session_id, calibration_item_id=item_id
    )
    return _workbench(
        request,
        form.project,
        state,
        form.agreed,
        status_code=status_code,
        mode="agree",
        session_id=session_id,
        session_name=form.session_name,
        task=form.task,
        action=f"{_base(slug)}/{session_id}/items/{item_id}/agree",
        note=form.note if note is None else note,
    )


@router.get("/projects/{slug}/calibration/{session_id}/items/{item_id}/agree", response_class=HTMLResponse)
def agree_page(
    request: Request, slug: str, session_id: int, item_id: int, session: DbSession, principal: CurrentPrincipal
) -> Response:
    """The item in response order (A = Response 1) with the agreed answer and note to record."""
    return _agree_page(request, slug, session_id, item_id, session, principal)


@router.post("/projects/{slug}/calibration/{session_id}/items/{item_id}/agree", response_class=HTMLResponse)
def agree(
    request: Request,
    slug: str,
    session_id: int,
    item_id: int,
    session: DbSession,
    principal: CurrentPrincipal,
    fields: FormFields,
) -> Response:
    note = single(fields, "note") or ""
    try:
        calibration.agree(
            session,
            principal=principal,
            slug=slug,
            session_id=session_id,
            calibration_item_id=item_id,
            submitted=verdict_from_form([(name, value) for name, value in fields if name != "note"]),
            note=note,
        )
    except InvalidInput as error:
        session.rollback()
        state = form_state(request, error, [(name, value) for name, value in fields if name != "note"])
        return _agree_page(
            request, slug, session_id, item_id, session, principal, state=state, note=note, status_code=422
        )
    return RedirectResponse(f"{_base(slug)}/{session_id}#item-{item_id}", status_code=303)


# ---- participants: the blind task ----


def _task_page(
    request: Request,
    slug: str,
    session_id: int,
    session: DbSession,
    principal: Principal,
    item_id: int | None,
    *,
    state: FormState | None = None,
    status_code: int = 200,
) -> Response:
    mine = calibration.my_task(
        session, principal=principal, slug=slug, session_id=session_id, calibration_item_id=item_id
    )
    return _workbench(
        request,
        mine.project,
        state,
        mine.answer,
        block="task",
        status_code=status_code,
        mode="answer",
        session_id=session_id,
        session_name=mine.session_name,
        mine=mine,
        task=mine.task,
        action=f"{_base(slug)}/{session_id}/task/{mine.calibration_item_id}" if mine.task else "",
    )


@router.get("/projects/{slug}/calibration/{session_id}/task", response_class=HTMLResponse)
def task_page(
    request: Request,
    slug: str,
    session_id: int,
    session: DbSession,
    principal: CurrentPrincipal,
    item: int | None = None,
) -> Response:
    """A participant's item: the first unanswered one, or `item` to revise an answer."""
    return _task_page(request, slug, session_id, session, principal, item)


@router.post("/projects/{slug}/calibration/{session_id}/task/{item_id}", response_class=HTMLResponse)
def answer(
    request: Request,
    slug: str,
    session_id: int,
    item_id: int,
    session: DbSession,
    principal: CurrentPrincipal,
    fields: FormFields,
) -> Response:
    try:
        stored = calibration.answer(
            session,
            principal=principal,
            slug=slug,
            session_id=session_id,
            calibration_item_id=item_id,
            submitted=verdict_from_form(fields),
            time_spent_ms=time_spent(single(fields, "time_spent_ms")),
        )
    except InvalidInput as error:
        session.rollback()
        state = form_state(request, error, fields)
        return _task_page(request, slug, session_id, session, principal, item_id, state=state, status_code=422)
    if not is_htmx(request):
        target = f"{_base(slug)}/{session_id}/task"
        return RedirectResponse(f"{target}?item={stored.next_item_id}" if stored.next_item_id else target, 303)
    return _task_page(request, slug, session_id, session, principal, stored.next_item_id)
