"""JSON API v1: projects, items, the annotation loop and exports."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app import import_formats
from app.api.schemas import (
    ErrorOut,
    GuidelinesIn,
    GuidelinesVersionOut,
    ImportOut,
    JudgmentIn,
    JudgmentOut,
    MembersIn,
    MembersOut,
    MyJudgmentOut,
    PriorityIn,
    PriorityOut,
    ProgressOut,
    ProjectIn,
    ProjectOptionsIn,
    ProjectOut,
    SkipIn,
    TaskOut,
    VerdictsOut,
)
from app.deps import ApiCall, Context, CurrentPrincipal, DbSession, HotCall
from app.errors import InvalidInput, PrefstackError
from app.services import annotation, exporting, importing, progress, projects, revisions
from app.services.annotation import Task
from app.services.export_labels import Aggregation
from app.services.projects import cached_options
from app.services.verdicts import VerdictInput
from export.aggregate import Abstain, ArbitrationMode
from export.formats import RowFormat
from export.pairs import RankingPairs
from export.writers import jsonl_lines
from preference_store.engine import commit_reads
from preference_store.judgments import JudgmentFilter

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
        **cached_options(project).model_dump(),
    )


_PROJECT_FIELDS = {"slug", "name", "kind", "overlap", "guidelines", "lease_seconds"}


# The annotation loop's two calls come first: a request is matched against the routes in order.
@router.get(
    "/projects/{slug}/next",
    tags=["annotation"],
    response_model=TaskOut,
    responses={
        204: {"description": "Nothing is left for the caller in this project."},
        409: {
            "model": ErrorOut,
            "description": "daily_cap_reached: the caller's daily cap in this project is used up.",
        },
    },
)
async def next_task(slug: str, call: HotCall) -> Response:
    """Lease the caller's next item (the same one again until it is judged or expires)."""
    task = await call.run_then_close(
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


def _verdict_input(body: JudgmentIn) -> VerdictInput:
    return VerdictInput(**body.model_dump(exclude={"time_spent_ms"}))


@router.post("/assignments/{assignment_id}/judgment", tags=["annotation"], response_model=JudgmentOut)
async def submit_judgment(assignment_id: int, body: JudgmentIn, call: HotCall) -> Response:
    """Store a judgment; sending the same one again stores nothing new (200, created false)."""
    stored = await call.run_then_close(
        annotation.submit_judgment,
        call.session,
        principal=call.principal,
        assignment_id=assignment_id,
        submitted=_verdict_input(body),
        time_spent_ms=body.time_spent_ms,
        cache=call.context.project_cache,
    )
    # Serialized here: a returned model would be validated and encoded again by FastAPI.
    answer = {"judgment_id": stored.judgment_id, "assignment_id": stored.assignment_id, "created": stored.created}
    return Response(orjson.dumps(answer), status_code=201 if stored.created else 200, media_type="application/json")


@router.post("/projects", status_code=201, tags=["projects"])
def create_project(body: ProjectIn, call: ApiCall) -> ProjectOut:
    """Create a project (leads and admins), with its rubric, label taxonomy and queue options."""
    values = body.model_dump(mode="json", exclude_unset=True)
    options = {key: value for key, value in values.items() if key not in _PROJECT_FIELDS}
    fields = body.model_dump(include=_PROJECT_FIELDS)
    project = projects.create_project(call.session, principal=call.principal, **fields, options=options)
    return _project_out(project)


@router.patch("/projects/{slug}", tags=["projects"])
def update_project_options(slug: str, body: ProjectOptionsIn, call: ApiCall) -> ProjectOut:
    """Change a project's options (rubric, taxonomy, routing, daily cap...); others keep their values."""
    changes = body.model_dump()
    project = projects.update_options(
        call.session, principal=call.principal, slug=slug, changes=changes, cache=call.context.project_cache
    )
    return _project_out(project)


@router.put("/projects/{slug}/guidelines", tags=["projects"])
def update_guidelines(slug: str, body: GuidelinesIn, call: ApiCall) -> ProjectOut:
    """Publish a new version of the guidelines; judgments from now on record its number."""
    project = projects.update_guidelines(
        call.session,
        principal=call.principal,
        slug=slug,
        text=body.text,
        note=body.note,
        cache=call.context.project_cache,
    )
    return _project_out(project)


@router.get("/projects/{slug}/guidelines", tags=["projects"])
def guidelines_history(slug: str, call: ApiCall) -> list[GuidelinesVersionOut]:
    """Every version of the project's guidelines, newest first."""
    versions = projects.guidelines_history(call.session, principal=call.principal, slug=slug)
    return [
        GuidelinesVersionOut(version=v.version, text=v.text, note=v.note, created_at=v.created_at) for v in versions
    ]


@router.post("/projects/{slug}/priority", tags=["items"])
def set_priority(slug: str, body: PriorityIn, call: ApiCall) -> PriorityOut:
    """Move items up or down the serving order (higher priority is served first)."""
    updated = projects.set_priority(
        call.session, principal=call.principal, slug=slug, external_ids=body.external_ids, priority=body.priority
    )
    return PriorityOut(updated=updated)


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
async def import_items(
    slug: str,
    request: Request,
    context: Context,
    principal: CurrentPrincipal,
    fmt: Annotated[
        str,
        Query(
            alias="format",
            description="Shape of the array's records: native, openai, hh-rlhf, ultrafeedback, label-studio, or auto.",
        ),
    ] = "native",
) -> ImportOut:
    """Import items (a JSON array of records in one format); every bad row is reported and nothing is written."""
    if fmt != "auto" and fmt not in import_formats.SHAPES:
        raise InvalidInput(
            "unknown_format",
            f"unknown format '{fmt}': use auto or one of {', '.join(import_formats.SHAPES)}",
            field="format",
        )
    body = await _bounded_body(request, context.settings.annotation.max_upload_mb * 1024 * 1024)
    try:
        values = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput("invalid_json", f"The body is not valid JSON: {error}") from error
    if not isinstance(values, list):
        raise InvalidInput("invalid_body", "Send a JSON array of items.")
    rows = import_formats.read_values(enumerate(values, start=1), None if fmt == "auto" else fmt)

    def run() -> importing.ImportResult:
        with context.sessions() as session:
            return importing.import_items(session, principal=principal, slug=slug, rows=rows)

    result = await run_in_threadpool(run)
    return ImportOut(created=result.created, unchanged=result.unchanged)


@router.post(
    "/projects/{slug}/verdicts",
    tags=["items"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def import_verdicts(slug: str, request: Request, context: Context, principal: CurrentPrincipal) -> VerdictsOut:
    """Store external verdicts for existing items (a JSON array or JSON lines); one bad row and nothing is written."""
    body = await _bounded_body(request, context.settings.annotation.max_upload_mb * 1024 * 1024)
    rows: Iterable[tuple[int, Any]]
    if body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"[":
        try:
            values = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise InvalidInput("invalid_json", f"The body is not valid JSON: {error}") from error
        rows = enumerate(values, start=1)
    else:
        rows = importing.parse_jsonl(io.BytesIO(body))

    def run() -> importing.VerdictImportResult:
        with context.sessions() as session:
            return importing.import_verdicts(session, principal=principal, slug=slug, rows=rows, default_source="api")

    result = await run_in_threadpool(run)
    return VerdictsOut(stored=result.stored, items=result.items)


async def _bounded_body(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge(limit)
    return bytes(body)


class PayloadTooLarge(PrefstackError):
    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__("payload_too_large", f"The body is larger than {limit // (1024 * 1024)} MB.")


def task_json(task: Task) -> bytes:
    """A leased task as the API returns it."""
    return orjson.dumps(
        {
            "assignment_id": task.assignment_id,
            "kind": task.kind.value,
            "item": {
                "external_id": task.external_id,
                "messages": task.messages,
                "responses": [
                    {"label": r.label, "content": r.content, "sensitive": r.sensitive} for r in task.responses
                ],
                "language": task.language,
                "sensitive": task.sensitive,
            },
            "leased_until": task.leased_until.isoformat(),
            "guidelines_version": task.guidelines_version,
        }
    )


@router.post("/assignments/{assignment_id}/skip", tags=["annotation"], status_code=204)
async def skip_assignment(assignment_id: int, body: SkipIn, call: ApiCall) -> Response:
    """Give a held item back with a reason; it goes to someone else, never to the caller again."""
    await call.run(
        annotation.skip_assignment,
        call.session,
        principal=call.principal,
        assignment_id=assignment_id,
        reason=body.reason,
    )
    return Response(status_code=204)


def _my_judgment_out(shown: revisions.ShownJudgment) -> MyJudgmentOut:
    return MyJudgmentOut.model_validate(shown, from_attributes=True)


@router.get("/projects/{slug}/my/judgments", tags=["annotation"])
def my_recent_judgments(slug: str, call: ApiCall) -> list[MyJudgmentOut]:
    """The caller's latest judgments in the project, newest first; `revisable` ones may be changed."""
    shown = revisions.recent_judgments(
        call.session, principal=call.principal, slug=slug, cache=call.context.project_cache
    )
    return [_my_judgment_out(judgment) for judgment in shown]


@router.get("/projects/{slug}/my/progress", tags=["annotation"])
def my_progress(slug: str, call: ApiCall) -> ProgressOut:
    """Done today, left in the queue, streak, flagged items seen today."""
    numbers = progress.my_progress(
        call.session,
        principal=call.principal,
        slug=slug,
        cache=call.context.project_cache,
        streaks=call.context.streak_cache,
    )
    commit_reads(call.session)
    return ProgressOut.model_validate(numbers, from_attributes=True)


@router.get("/judgments/{judgment_id}", tags=["annotation"])
def get_my_judgment(judgment_id: int, call: ApiCall) -> MyJudgmentOut:
    """One of the caller's judgments with its earlier versions."""
    return _my_judgment_out(revisions.get_own_judgment(call.session, principal=call.principal, judgment_id=judgment_id))


@router.put("/judgments/{judgment_id}", tags=["annotation"])
def revise_judgment(judgment_id: int, body: JudgmentIn, call: ApiCall) -> MyJudgmentOut:
    """Change one of the caller's last few judgments; the version it replaces is kept as a revision."""
    shown = revisions.revise_judgment(
        call.session,
        principal=call.principal,
        judgment_id=judgment_id,
        submitted=_verdict_input(body),
        time_spent_ms=body.time_spent_ms,
    )
    return _my_judgment_out(shown)


@router.get("/projects/{slug}/export/{kind}", tags=["export"], response_class=StreamingResponse)
def export_dataset(
    slug: str,
    kind: str,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
    fmt: Annotated[str, Query(alias="format")] = "jsonl",
    standard: bool = False,
    provenance: bool = False,
    test_size: float = 0.0,
    validation_size: float = 0.0,
    seed: int = 0,
    split: Annotated[str | None, Query(description="train, test or validation of the grouped split.")] = None,
    min_judgments: int = 1,
    min_agreement: float = 0.0,
    ties: Abstain = Abstain.KEEP,
    both_bad: Abstain = Abstain.KEEP,
    aggregation: Aggregation = Aggregation.MAJORITY,
    arbitration: ArbitrationMode = ArbitrationMode.VERDICT_FIRST,
    include_calibration: bool = False,
    include_gold: bool = False,
    ranking_pairs: RankingPairs = RankingPairs.ALL_PAIRS,
    rewrites: bool = True,
    margin: bool = True,
    kto_desirable_at: float | None = None,
    kto_undesirable_at: float | None = None,
    language: Annotated[list[str] | None, Query()] = None,
    market: Annotated[list[str] | None, Query()] = None,
    category: Annotated[list[str] | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="Judgments made at or after this moment.")] = None,
    until: Annotated[datetime | None, Query(description="Judgments made before this moment.")] = None,
    team: Annotated[list[str] | None, Query()] = None,
    guidelines_version: Annotated[list[int] | None, Query()] = None,
) -> StreamingResponse:
    """Stream a TRL-ready dataset as JSON lines (kind: dpo, reward, kto, sft or rubric).

    With `test_size` (and `validation_size`), `split` picks one split of the grouped split.
    """
    if fmt != "jsonl":
        raise InvalidInput("invalid_format", "The API streams jsonl; use the CLI for parquet.", field="format")
    request = exporting.ExportRequest(
        kind=kind,
        row_format=RowFormat.STANDARD if standard else RowFormat.CONVERSATIONAL,
        test_size=test_size,
        validation_size=validation_size,
        seed=seed,
        provenance=provenance,
        min_judgments=min_judgments,
        min_agreement=min_agreement,
        ties=ties,
        both_bad=both_bad,
        aggregation=aggregation,
        arbitration=arbitration,
        include_calibration=include_calibration,
        include_gold=include_gold,
        ranking_pairs=ranking_pairs,
        rewrites=rewrites,
        margin=margin,
        kto_desirable_at=kto_desirable_at,
        kto_undesirable_at=kto_undesirable_at,
        where=JudgmentFilter(
            languages=tuple(language or ()),
            markets=tuple(market or ()),
            categories=tuple(category or ()),
            judged_from=_utc(since),
            judged_until=_utc(until),
            guidelines_versions=tuple(guidelines_version or ()),
        ),
        teams=tuple(team or ()),
    )
    project = exporting.authorize_export(session, principal=principal, slug=slug)
    request = exporting.resolve_request(session, project=project, request=request)
    exporting.split_filter((), request=request, split=split)  # a bad split fails before the stream starts

    def body() -> Iterator[bytes]:
        with context.sessions() as stream_session:
            rows = exporting.rows_for(stream_session, project=project, request=request)
            yield from jsonl_lines(exporting.split_filter(rows, request=request, split=split))

    return StreamingResponse(
        body(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{project.slug}-{kind}.jsonl"'},
    )


def _utc(moment: datetime | None) -> datetime | None:
    return moment if moment is None or moment.tzinfo is not None else moment.replace(tzinfo=UTC)
