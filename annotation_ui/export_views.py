"""The export page for leads: every export option in one form, the project's export jobs, downloads and cards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from annotation_ui import i18n
from annotation_ui.messages import problem_message
from annotation_ui.rendering import is_htmx, render
from app.api.export_jobs import Runner, zip_response
from app.deps import CurrentPrincipal, DbSession
from app.errors import InvalidInput, Problem
from app.services import export_jobs
from app.services.export_jobs import ExportOptions

router = APIRouter(include_in_schema=False)

LIST_FIELDS = frozenset({"languages", "markets", "categories", "guidelines_versions"})
COMMA_LIST_FIELDS = frozenset({"teams"})
NOT_OPTIONS = frozenset({"csrf_token"})
FIELD_OF_PROBLEM = {"team": "teams", "split": "test_size"}
"""Service field names that are named differently in the form."""


async def _form_fields(request: Request) -> list[tuple[str, str]]:
    form = await request.form()
    return [(name, value) for name, value in form.multi_items() if isinstance(value, str)]


FormFields = Annotated[list[tuple[str, str]], Depends(_form_fields)]


@dataclass(frozen=True, slots=True)
class ExportForm:
    """What the form shows: the values sent (or the defaults) and a message per invalid field."""

    values: dict[str, list[str]]
    errors: dict[str, str] = field(default_factory=dict)
    summary: str | None = None


def _default_values() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in ExportOptions().model_dump(mode="json").items():
        if isinstance(value, list):
            values[name] = [str(entry) for entry in value]
        elif isinstance(value, bool):
            values[name] = ["true" if value else "false"]
        else:
            values[name] = [] if value is None else [str(value)]
    return values


def _values_of(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in fields:
        if name not in NOT_OPTIONS:
            values.setdefault(name, []).append(value)
    return values


def options_from_form(values: dict[str, list[str]]) -> dict[str, Any]:
    """The option values a submitted form carries: lists for the filters, the last value otherwise.

    Empty fields are left out (their defaults apply); a checkbox sends a hidden `false`
    before its `true`, so the last value is the one that counts.
    """
    options: dict[str, Any] = {}
    for name, sent in values.items():
        if name in LIST_FIELDS:
            options[name] = [value.strip() for value in sent if value.strip()]
        elif name in COMMA_LIST_FIELDS:
            options[name] = [part.strip() for value in sent for part in value.split(",") if part.strip()]
        elif sent and sent[-1].strip():
            options[name] = sent[-1].strip()
    return options


def _form_with_errors(request: Request, error: InvalidInput, values: dict[str, list[str]]) -> ExportForm:
    errors: dict[str, str] = {}
    with i18n.activate(i18n.request_language(request)):
        found = error.problems or [Problem(error.message, field=error.field)]
        for problem in found:
            name = FIELD_OF_PROBLEM.get(problem.field or "", problem.field or "")
            errors.setdefault(name, problem_message(problem, code=error.code))
        summary = problem_message(found[0], code=error.code)
    return ExportForm(values=values, errors=errors, summary=summary)


def _page(
    request: Request,
    session: DbSession,
    principal: CurrentPrincipal,
    slug: str,
    form: ExportForm,
    *,
    block: str | None,
    status_code: int = 200,
) -> Response:
    page = export_jobs.export_page(session, principal=principal, slug=slug)
    return render(request, "exports.html", {"page": page, "form": form}, block=block, status_code=status_code)


@router.get("/projects/{slug}/exports", response_class=HTMLResponse)
def exports_page(request: Request, slug: str, session: DbSession, principal: CurrentPrincipal) -> Response:
    # htmx asks for the jobs table alone while a job is queued or running.
    return _page(request, session, principal, slug, ExportForm(values=_default_values()), block="jobs")


@router.post("/projects/{slug}/exports", response_class=HTMLResponse)
def start_export(
    request: Request, slug: str, session: DbSession, principal: CurrentPrincipal, fields: FormFields, runner: Runner
) -> Response:
    values = _values_of(fields)
    try:
        options = export_jobs.parse_options(options_from_form(values))
        job = runner.start(session, principal=principal, slug=slug, options=options)
    except InvalidInput as error:
        session.rollback()
        form = _form_with_errors(request, error, values)
        return _page(request, session, principal, slug, form, block="panel", status_code=422)
    if is_htmx(request):
        return _page(request, session, principal, slug, ExportForm(values=values), block="panel")
    return RedirectResponse(f"/projects/{quote(slug)}/exports#job-{job.id}", status_code=303)


@router.get("/projects/{slug}/exports/{job_id}/download")
def download_export(
    slug: str, job_id: int, session: DbSession, principal: CurrentPrincipal, runner: Runner
) -> StreamingResponse:
    files = export_jobs.job_files(session, principal=principal, slug=slug, job_id=job_id, directory=runner.directory)
    return zip_response(files)


@router.get("/projects/{slug}/exports/{job_id}/card", response_class=HTMLResponse)
def dataset_card(
    request: Request, slug: str, job_id: int, session: DbSession, principal: CurrentPrincipal, runner: Runner
) -> Response:
    card = export_jobs.dataset_card(session, principal=principal, slug=slug, job_id=job_id, directory=runner.directory)
    return render(request, "exports_card.html", {"card": card})
