"""JSON API v1: projects, items, the annotation loop and exports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.schemas import (
    ErrorOut,
    ImportOut,
    JudgmentOut,
    MembersIn,
    MembersOut,
    PairwiseJudgmentIn,
    ProjectIn,
    ProjectOut,
    TaskOut,
)
from app.deps import ApiCall, Context, CurrentPrincipal, DbSession
from app.errors import InvalidInput, PrefstackError
from app.services import annotation, exporting, importing, projects
from app.services.annotation import Task
from export.writers import jsonl_lines

ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorOut} for status in (401, 403, 404, 409, 413, 422)}

router = APIRouter(prefix="/api/v1", responses=ERRORS)


def _project_out(project: Any) -> ProjectOut:
    return ProjectOut(
        slug=project.slug,
        name=project.name,
        kind=project.kind.value,
        overlap=project.overlap,
        guidelines_version=project.guidelines_version,
        lease_seconds=project.lease_seconds,
    )


@router.post("/projects", status_code=201, tags=["projects"])
def create_project(body: ProjectIn, call: ApiCall) -> ProjectOut:
    """Create a project (leads and admins)."""
    project = projects.create_project(call.session, principal=call.principal, **body.model_dump())
    return _project_out(project)


@router.get("/projects/{slug}", tags=["projects"])
def get_project(slug: str, call: ApiCall) -> ProjectOut:
    """A project's settings."""
    return _project_out(projects.get_project(call.session, principal=call.principal, slug=slug))


@router.post("/projects/{slug}/members", tags=["projects"])
def add_members(slug: str, body: MembersIn, call: ApiCall) -> MembersOut:
    """Let annotators work on a project."""
    added = projects.add_members(call.session, principal=call.principal, slug=slug, emails=body.emails)
    return MembersOut(added=added)


@router.post(
    "/projects/{slug}/items",
    tags=["items"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}},
        }
    },
)
async def import_items(slug: str, request: Request, context: Context, principal: CurrentPrincipal) -> ImportOut:
    """Import native items (a JSON array); every bad row is reported and nothing is written."""
    limit = context.settings.annotation.max_upload_mb * 1024 * 1024
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge(limit)
    try:
        values = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput("invalid_json", f"The body is not valid JSON: {error}") from error
    if not isinstance(values, list):
        raise InvalidInput("invalid_body", "Send a JSON array of items.")
    rows = list(enumerate(values, start=1))

    def run() -> importing.ImportResult:
        with context.sessions() as session:
            return importing.import_items(session, principal=principal, slug=slug, rows=rows)

    result = await run_in_threadpool(run)
    return ImportOut(created=result.created, unchanged=result.unchanged)


class PayloadTooLarge(PrefstackError):
    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__("payload_too_large", f"The body is larger than {limit // (1024 * 1024)} MB.")


def task_json(task: Task) -> bytes:
    """A leased task as the API returns it."""
    return orjson.dumps(
        {
            "assignment_id": task.assignment_id,
            "item": {
                "external_id": task.external_id,
                "messages": task.messages,
                "responses": [{"label": r.label, "content": r.content} for r in task.responses],
            },
            "leased_until": task.leased_until.isoformat(),
            "guidelines_version": task.guidelines_version,
        }
    )


@router.get(
    "/projects/{slug}/next",
    tags=["annotation"],
    response_model=TaskOut,
    responses={204: {"description": "Nothing is left for the caller in this project."}},
)
async def next_task(slug: str, call: ApiCall) -> Response:
    """Lease the caller's next item (the same one again until it is judged or expires)."""
    task = await call.run(
        annotation.next_task,
        call.session,
        principal=call.principal,
        slug=slug,
        cache=call.context.project_cache,
        reaper=call.context.lease_reaper,
    )
    if task is None:
        return Response(status_code=204)
    return Response(task_json(task), media_type="application/json")


@router.post("/assignments/{assignment_id}/judgment", tags=["annotation"])
async def submit_judgment(
    assignment_id: int,
    body: PairwiseJudgmentIn,
    call: ApiCall,
    response: Response,
) -> JudgmentOut:
    """Store a pairwise judgment; sending the same one again stores nothing new (200, created false)."""
    stored = await call.run(
        annotation.submit_pairwise,
        call.session,
        principal=call.principal,
        assignment_id=assignment_id,
        choice=body.choice,
        rationale=body.rationale,
        time_spent_ms=body.time_spent_ms,
        cache=call.context.project_cache,
    )
    response.status_code = 201 if stored.created else 200
    return JudgmentOut(judgment_id=stored.judgment_id, assignment_id=stored.assignment_id, created=stored.created)


@router.get("/projects/{slug}/export/{kind}", tags=["export"], response_class=StreamingResponse)
def export_dataset(
    slug: str,
    kind: str,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
    fmt: Annotated[str, Query(alias="format")] = "jsonl",
) -> StreamingResponse:
    """Stream a TRL-ready dataset as JSON lines (kind: dpo)."""
    if kind not in exporting.EXPORT_KINDS:
        raise InvalidInput(
            "invalid_export_kind", f"kind must be one of {', '.join(exporting.EXPORT_KINDS)}.", field="kind"
        )
    if fmt != "jsonl":
        raise InvalidInput("invalid_format", "The API streams jsonl; use the CLI for parquet.", field="format")
    project = exporting.authorize_export(session, principal=principal, slug=slug)

    def body() -> Iterator[bytes]:
        with context.sessions() as stream_session:
            yield from jsonl_lines(exporting.dpo_rows(stream_session, project_id=project.id))

    return StreamingResponse(
        body(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{project.slug}-{kind}.jsonl"'},
    )
