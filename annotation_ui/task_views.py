"""Pages of the annotation loop: the task, submit, skip, progress, recent judgments and revisions."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from annotation_ui import i18n
from annotation_ui.forms import ranking_text, time_spent, verdict_from_form
from annotation_ui.messages import error_text, problem_message
from annotation_ui.rendering import STATIC_DIR, is_htmx, render
from app.deps import Context, CurrentPrincipal, DbSession
from app.errors import InvalidInput, PrefstackError, Problem
from app.principal import Principal
from app.services import annotation, gold, progress, projects, qualification, revisions
from app.services.project_options import scale_key

if TYPE_CHECKING:
    from preference_store.projects import ProjectRow

router = APIRouter(include_in_schema=False)


@router.get("/projects/{slug}/annotate", response_class=HTMLResponse)
def annotate_page(
    request: Request, slug: str, session: DbSession, context: Context, principal: CurrentPrincipal
) -> Response:
    return _task_page(request, slug, session, context, principal)


async def _form_fields(request: Request) -> list[tuple[str, str]]:
    # Field names are dynamic (`labels.B`, `score.A.accuracy`), so the form is read whole;
    # Starlette parses it once per request (the CSRF check has usually read it already).
    form = await request.form()
    return [(name, value) for name, value in form.multi_items() if isinstance(value, str)]


FormFields = Annotated[list[tuple[str, str]], Depends(_form_fields)]
NOT_VERDICT_FIELDS = frozenset({"csrf_token", "time_spent_ms"})
SKIP_REASONS = (
    ("language", "Not my language"),
    ("disturbing", "Too disturbing to judge"),
    ("broken", "Broken or empty"),
    ("other", "Other"),
)
"""Skip reasons offered in the dialog (annotate.html lists the same values): form value -> reason stored."""
PROGRESS_EVENT = "prefstack-progress"
"""Fired (HX-Trigger) after each submit, skip or revision: the progress strip and recent list reload."""


@dataclass(frozen=True, slots=True)
class Revising:
    """The judgment an annotator reopened to change, shown in the task form."""

    judgment_id: int
    revision: int
    external_id: str


@dataclass(frozen=True, slots=True)
class FormState:
    """What a re-rendered form shows: the message, the invalid fields and the values sent."""

    error: str | None = None
    problems: list[str] = field(default_factory=list)
    messages: dict[str, str] = field(default_factory=dict)
    values: dict[str, list[str]] = field(default_factory=dict)


def _form_state(request: Request, error: PrefstackError, fields: list[tuple[str, str]]) -> FormState:
    """The 422 state: every invalid field by its service name and its form field name."""
    with i18n.activate(i18n.request_language(request)):
        return _translated_form_state(error, fields)


def _translated_form_state(error: PrefstackError, fields: list[tuple[str, str]]) -> FormState:
    problems: list[str] = []
    messages: dict[str, str] = {}
    found = error.problems or [Problem(error.message, field=error.field)]
    for problem in found:
        if problem.field is None:
            continue
        message = problem_message(problem, code=error.code)
        names = {problem.field, _form_name(problem.field)}
        for name in names:
            if name not in problems:
                problems.append(name)
            messages.setdefault(name, message)
    summary = problem_message(found[0], code=error.code)
    return FormState(error=summary, problems=problems, messages=messages, values=_values_of(fields))


def _form_name(service_field: str) -> str:
    """`scores.A.accuracy` (as services name it) -> `score.A.accuracy` (the form field)."""
    return "score." + service_field.removeprefix("scores.") if service_field.startswith("scores.") else service_field


def _values_of(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in fields:
        if name not in NOT_VERDICT_FIELDS:
            values.setdefault(name, []).append(value)
    return values


def _values_of_verdict(shown: dict[str, Any]) -> dict[str, list[str]]:
    """The form values that submit a stored verdict (in shown labels) again."""
    values: dict[str, list[str]] = {}
    for name in ("choice", "strength", "rationale", "rewrite"):
        if shown.get(name):
            values[name] = [str(shown[name])]
    for label, picked in (shown.get("labels") or {}).items():
        values[f"labels.{label}"] = list(picked)
    for label, scores in (shown.get("scores") or {}).items():
        for criterion, value in scores.items():
            values[f"score.{label}.{criterion}"] = [scale_key(value)]
    if shown.get("ranking"):
        values["ranking"] = [ranking_text(shown["ranking"])]
    if shown.get("all_bad"):
        values["all_bad"] = ["1"]
    return values


def _task_page(
    request: Request,
    slug: str,
    session: DbSession,
    context: Context,
    principal: Principal,
    *,
    state: FormState | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The annotate page (or its task block for htmx) with the caller's current lease."""
    cap: int | None = None
    paused: qualification.MemberPaused | None = None
    missing: list[qualification.QualificationStatus] = []
    try:
        task = annotation.next_task(
            session, principal=principal, slug=slug, cache=context.project_cache, reaper=context.lease_reaper
        )
    except annotation.DailyCapReached as reached:
        task, cap = None, reached.cap
    except qualification.MemberPaused as pause:
        session.rollback()
        task, paused = None, pause
    except qualification.QualificationRequired as required:
        session.rollback()
        task, missing = None, required.missing
    project = projects.get_project(session, principal=principal, slug=slug, cache=context.project_cache)
    return _render_task(
        request,
        project,
        task,
        state=state or FormState(),
        cap_reached=cap,
        status_code=status_code,
        headers=headers,
        gold_state={"paused": paused, "qualification": missing},
    )


def _render_task(
    request: Request,
    project: ProjectRow,
    task: annotation.Task | None,
    *,
    state: FormState,
    revising: Revising | None = None,
    cap_reached: int | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    gold_state: dict[str, Any] | None = None,
) -> Response:
    options = projects.cached_options(project)
    return render(
        request,
        "annotate.html",
        {
            "task": task,
            "project": project,
            "slug": project.slug,
            "options": options,
            "error": state.error,
            "problems": state.problems,
            "problem_messages": state.messages,
            "values": state.values,
            "revising": revising,
            "cap_reached": cap_reached,
            "kind_assets": _kind_assets(project.kind.value),
            "progress_event": PROGRESS_EVENT,
            **(gold_state or {}),
        },
        block="task",
        status_code=status_code,
        headers=headers,
    )


@functools.cache
def _kind_assets(kind: str) -> tuple[str, ...]:
    """The kind's own script and style sheet, when they exist (pairwise has none)."""
    return tuple(name for name in (f"{kind}.js", "kinds.css") if kind != "pairwise" and (STATIC_DIR / name).exists())


def _progress_headers() -> dict[str, str]:
    return {"HX-Trigger": PROGRESS_EVENT}


@router.post("/projects/{slug}/annotate/{assignment_id}", response_class=HTMLResponse)
def submit(
    request: Request,
    slug: str,
    assignment_id: int,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
    fields: FormFields,
) -> Response:
    try:
        stored = annotation.submit_judgment(
            session,
            principal=principal,
            assignment_id=assignment_id,
            submitted=verdict_from_form(fields),
            time_spent_ms=time_spent(_single(fields, "time_spent_ms")),
            cache=context.project_cache,
        )
    except InvalidInput as error:
        session.rollback()
        return _task_page(
            request, slug, session, context, principal, state=_form_state(request, error, fields), status_code=422
        )
    if stored.gold_feedback:
        if not is_htmx(request):
            return RedirectResponse(f"/projects/{quote(slug)}/annotate/{assignment_id}/feedback", status_code=303)
        feedback = gold.gold_feedback(session, principal=principal, assignment_id=assignment_id)
        project = projects.get_project(session, principal=principal, slug=slug, cache=context.project_cache)
        return _render_task(
            request,
            project,
            None,
            state=FormState(),
            headers=_progress_headers(),
            gold_state={"feedback": feedback},
        )
    if not is_htmx(request):
        return RedirectResponse(f"/projects/{quote(slug)}/annotate", status_code=303)
    return _task_page(request, slug, session, context, principal, headers=_progress_headers())


@router.get("/projects/{slug}/annotate/{assignment_id}/feedback", response_class=HTMLResponse)
def gold_feedback(
    request: Request, slug: str, assignment_id: int, session: DbSession, context: Context, principal: CurrentPrincipal
) -> Response:
    """Training and qualification: the expected answer of a gold item just answered (without htmx)."""
    feedback = gold.gold_feedback(session, principal=principal, assignment_id=assignment_id)
    if feedback is None:
        return RedirectResponse(f"/projects/{quote(slug)}/annotate", status_code=303)
    project = projects.get_project(session, principal=principal, slug=slug, cache=context.project_cache)
    return _render_task(request, project, None, state=FormState(), gold_state={"feedback": feedback})


def _single(fields: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in fields if key == name), None)


@router.post("/projects/{slug}/annotate/{assignment_id}/skip", response_class=HTMLResponse)
def skip(
    request: Request,
    slug: str,
    assignment_id: int,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
    reason: Annotated[str, Form()] = "",
    other: Annotated[str, Form()] = "",
) -> Response:
    known = dict(SKIP_REASONS)
    text = other.strip() if reason == "other" else known.get(reason, "")
    if reason == "other" and text:
        text = f"Other: {text}"
    try:
        annotation.skip_assignment(session, principal=principal, assignment_id=assignment_id, reason=text)
    except InvalidInput as error:
        session.rollback()
        message = error_text(request, error)
        state = FormState(error=message, problems=["reason"], messages={"reason": message})
        return _task_page(request, slug, session, context, principal, state=state, status_code=422)
    if not is_htmx(request):
        return RedirectResponse(f"/projects/{quote(slug)}/annotate", status_code=303)
    return _task_page(request, slug, session, context, principal, headers=_progress_headers())


@router.get("/projects/{slug}/progress", response_class=HTMLResponse)
def progress_strip(
    request: Request, slug: str, session: DbSession, context: Context, principal: CurrentPrincipal
) -> Response:
    numbers = progress.my_progress(session, principal=principal, slug=slug, cache=context.project_cache)
    return render(request, "_progress.html", {"slug": slug, "progress": numbers, "progress_event": PROGRESS_EVENT})


@router.get("/projects/{slug}/recent", response_class=HTMLResponse)
def recent_list(
    request: Request, slug: str, session: DbSession, context: Context, principal: CurrentPrincipal
) -> Response:
    shown = revisions.recent_judgments(session, principal=principal, slug=slug, cache=context.project_cache)
    return render(
        request, "_recent.html", {"slug": slug, "recent": shown[:RECENT_SHOWN], "progress_event": PROGRESS_EVENT}
    )


RECENT_SHOWN = 5


@router.get("/projects/{slug}/judgments/{judgment_id}", response_class=HTMLResponse)
def reopen_judgment(
    request: Request, slug: str, judgment_id: int, session: DbSession, context: Context, principal: CurrentPrincipal
) -> Response:
    """One of the caller's recent judgments in the task form, pre-filled to be changed."""
    return _revision_form(request, slug, session, context, principal, judgment_id, None)


def _revision_form(
    request: Request,
    slug: str,
    session: DbSession,
    context: Context,
    principal: Principal,
    judgment_id: int,
    state: FormState | None,
    *,
    status_code: int = 200,
) -> Response:
    """The reopened judgment's form: its stored verdict, or (after a 422) what was just sent."""
    shown, task = revisions.reopen_judgment(session, principal=principal, slug=slug, judgment_id=judgment_id)
    if state is None:
        state = FormState(values=_values_of_verdict(shown.verdict))
    project = projects.get_project(session, principal=principal, slug=slug, cache=context.project_cache)
    revising = Revising(judgment_id=judgment_id, revision=shown.revision, external_id=shown.external_id)
    return _render_task(request, project, task, state=state, revising=revising, status_code=status_code)


@router.post("/projects/{slug}/judgments/{judgment_id}", response_class=HTMLResponse)
def revise(
    request: Request,
    slug: str,
    judgment_id: int,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
    fields: FormFields,
) -> Response:
    """Store a changed verdict as the judgment's next revision, then go back to the current task."""
    try:
        revisions.revise_judgment(
            session,
            principal=principal,
            judgment_id=judgment_id,
            submitted=verdict_from_form(fields),
            time_spent_ms=time_spent(_single(fields, "time_spent_ms")),
        )
    except InvalidInput as error:
        session.rollback()
        return _revision_form(
            request,
            slug,
            session,
            context,
            principal,
            judgment_id,
            _form_state(request, error, fields),
            status_code=422,
        )
    if not is_htmx(request):
        return RedirectResponse(f"/projects/{quote(slug)}/annotate", status_code=303)
    return _task_page(request, slug, session, context, principal, headers=_progress_headers())
