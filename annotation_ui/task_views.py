"""Pages of the annotation loop: the task, submit, skip, progress, recent judgments and revisions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from annotation_ui.forms import time_spent, verdict_from_form
from annotation_ui.messages import error_text
from annotation_ui.rendering import is_htmx, render
from annotation_ui.task_form import FormFields, FormState, form_state, kind_assets, single, values_of_verdict
from app.deps import Call, Context, CurrentPrincipal, DbSession
from app.errors import InvalidInput
from app.principal import Principal
from app.services import annotation, gold, progress, projects, qualification, revisions
from preference_store.engine import commit_reads

if TYPE_CHECKING:
    from preference_store.projects import ProjectRow

router = APIRouter(include_in_schema=False)


# The annotation loop's pages (the annotate page, submit, skip) are `async def` and run
# their work as the JSON API does (`Call.run`): inline on SQLite, else in a thread under
# `database_concurrency`; not in the default threadpool, where every page of every user competes.


@router.get("/projects/{slug}/annotate", response_class=HTMLResponse)
async def annotate_page(
    request: Request, slug: str, session: DbSession, context: Context, principal: CurrentPrincipal
) -> Response:
    call = Call(session, principal, context)
    return await call.run(_task_page, request, slug, session, context, principal, with_loop_state=not is_htmx(request))


SKIP_REASONS = (
    ("language", "Not my language"),
    ("disturbing", "Too disturbing to judge"),
    ("broken", "Broken or empty"),
    ("other", "Other"),
)
"""Skip reasons offered in the dialog (annotate.html lists the same values): form value -> reason stored."""
RECENT_SHOWN = 5


@dataclass(frozen=True, slots=True)
class Revising:
    """The judgment an annotator reopened to change, shown in the task form."""

    judgment_id: int
    revision: int
    external_id: str


def _task_page(
    request: Request,
    slug: str,
    session: DbSession,
    context: Context,
    principal: Principal,
    *,
    state: FormState | None = None,
    status_code: int = 200,
    with_loop_state: bool = False,
) -> Response:
    """The annotate page (or its task block for htmx) with the caller's current lease.

    `with_loop_state`: with the progress strip and the recent judgments as they are once the lease
    is taken, in the page or (htmx, after a submit, skip or revision) swapped out of band: one
    request per judgment, not one for the task and two more for what it changed.
    """
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
    loop_state = _loop_state(session, context, principal, slug) if with_loop_state else None
    commit_reads(session)  # the lease is committed or rolled back above: only reads are left
    return _render_task(
        request,
        project,
        task,
        state=state or FormState(),
        cap_reached=cap,
        status_code=status_code,
        gold_state={"paused": paused, "qualification": missing},
        loop_state=loop_state,
    )


@dataclass(frozen=True, slots=True)
class LoopState:
    """What the page shows around the task: the progress strip's numbers and the recent judgments."""

    progress: progress.Progress
    recent: list[revisions.ShownJudgment]


def _loop_state(session: DbSession, context: Context, principal: Principal, slug: str) -> LoopState:
    numbers = progress.my_progress(
        session, principal=principal, slug=slug, cache=context.project_cache, streaks=context.streak_cache
    )
    shown = _recent_shown(session, context, principal, slug)
    return LoopState(progress=numbers, recent=shown)


def _recent_shown(
    session: DbSession, context: Context, principal: Principal, slug: str
) -> list[revisions.ShownJudgment]:
    return revisions.recent_judgments(
        session, principal=principal, slug=slug, cache=context.project_cache, limit=RECENT_SHOWN, with_history=False
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
    gold_state: dict[str, Any] | None = None,
    loop_state: LoopState | None = None,
) -> Response:
    options = projects.cached_options(project)
    around: dict[str, Any] = {}
    out_of_band: list[tuple[str, dict[str, Any]]] = []
    if loop_state is not None:
        around = {"progress": loop_state.progress, "recent": loop_state.recent}
        out_of_band = [
            ("_progress.html", {"progress": loop_state.progress}),
            ("_recent.html", {"recent": loop_state.recent}),
        ]
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
            "kind_assets": kind_assets(project.kind.value),
            **around,
            **(gold_state or {}),
        },
        block="task",
        status_code=status_code,
        out_of_band=out_of_band,
    )


def _invalid_form_page(
    request: Request, slug: str, session: DbSession, context: Context, principal: Principal, state: FormState
) -> Response:
    """The task again after a refused form (422), with what was sent and why it was refused."""
    session.rollback()
    return _task_page(request, slug, session, context, principal, state=state, status_code=422)


@router.post("/projects/{slug}/annotate/{assignment_id}", response_class=HTMLResponse)
async def submit(
    request: Request,
    slug: str,
    assignment_id: int,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
    fields: FormFields,
) -> Response:
    call = Call(session, principal, context)
    try:
        stored = await call.run(
            annotation.submit_judgment,
            session,
            principal=principal,
            assignment_id=assignment_id,
            submitted=verdict_from_form(fields),
            time_spent_ms=time_spent(single(fields, "time_spent_ms")),
            cache=context.project_cache,
        )
    except InvalidInput as error:
        state = form_state(request, error, fields)
        return await call.run(_invalid_form_page, request, slug, session, context, principal, state)
    if stored.gold_feedback:
        if not is_htmx(request):
            return RedirectResponse(f"/projects/{quote(slug)}/annotate/{assignment_id}/feedback", status_code=303)
        return await call.run(_gold_feedback_fragment, request, slug, assignment_id, session, context, principal)
    if not is_htmx(request):
        return RedirectResponse(f"/projects/{quote(slug)}/annotate", status_code=303)
    return await call.run(_task_page, request, slug, session, context, principal, with_loop_state=True)


def _gold_feedback_fragment(
    request: Request, slug: str, assignment_id: int, session: DbSession, context: Context, principal: Principal
) -> Response:
    """Training and qualification, after a gold item's submit: its expected answer in place of the next task."""
    feedback = gold.gold_feedback(session, principal=principal, assignment_id=assignment_id)
    return _feedback_page(
        request, slug, session, context, principal, feedback, _loop_state(session, context, principal, slug)
    )


def _feedback_page(
    request: Request,
    slug: str,
    session: DbSession,
    context: Context,
    principal: Principal,
    feedback: gold.GoldFeedback | None,
    loop_state: LoopState | None,
) -> Response:
    project = projects.get_project(session, principal=principal, slug=slug, cache=context.project_cache)
    return _render_task(
        request, project, None, state=FormState(), gold_state={"feedback": feedback}, loop_state=loop_state
    )


@router.get("/projects/{slug}/annotate/{assignment_id}/feedback", response_class=HTMLResponse)
def gold_feedback(
    request: Request, slug: str, assignment_id: int, session: DbSession, context: Context, principal: CurrentPrincipal
) -> Response:
    """Training and qualification: the expected answer of a gold item just answered (without htmx)."""
    feedback = gold.gold_feedback(session, principal=principal, assignment_id=assignment_id)
    if feedback is None:
        return RedirectResponse(f"/projects/{quote(slug)}/annotate", status_code=303)
    return _feedback_page(request, slug, session, context, principal, feedback, None)


@router.post("/projects/{slug}/annotate/{assignment_id}/skip", response_class=HTMLResponse)
async def skip(
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
    call = Call(session, principal, context)
    try:
        await call.run(
            annotation.skip_assignment, session, principal=principal, assignment_id=assignment_id, reason=text
        )
    except InvalidInput as error:
        message = error_text(request, error)
        state = FormState(error=message, problems=["reason"], messages={"reason": message})
        return await call.run(_invalid_form_page, request, slug, session, context, principal, state)
    if not is_htmx(request):
        return RedirectResponse(f"/projects/{quote(slug)}/annotate", status_code=303)
    return await call.run(_task_page, request, slug, session, context, principal, with_loop_state=True)


@router.get("/projects/{slug}/progress", response_class=HTMLResponse)
def progress_strip(
    request: Request, slug: str, session: DbSession, context: Context, principal: CurrentPrincipal
) -> Response:
    numbers = progress.my_progress(
        session, principal=principal, slug=slug, cache=context.project_cache, streaks=context.streak_cache
    )
    commit_reads(session)
    return render(request, "_progress.html", {"slug": slug, "progress": numbers})


@router.get("/projects/{slug}/recent", response_class=HTMLResponse)
def recent_list(
    request: Request, slug: str, session: DbSession, context: Context, principal: CurrentPrincipal
) -> Response:
    shown = _recent_shown(session, context, principal, slug)
    commit_reads(session)
    return render(request, "_recent.html", {"slug": slug, "recent": shown})


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
        state = FormState(values=values_of_verdict(shown.verdict))
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
            time_spent_ms=time_spent(single(fields, "time_spent_ms")),
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
            form_state(request, error, fields),
            status_code=422,
        )
    if not is_htmx(request):
        return RedirectResponse(f"/projects/{quote(slug)}/annotate", status_code=303)
    return _task_page(request, slug, session, context, principal, with_loop_state=True)
