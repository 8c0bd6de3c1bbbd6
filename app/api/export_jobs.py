"""JSON API v1: export jobs, written in the background and downloaded as a zip when done."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from app.api.v1 import ERRORS
from app.deps import ApiCall
from app.services import export_jobs
from app.services.export_jobs import ExportJobRunner, ExportJobView, ExportOptions

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["export"])


def export_runner(request: Request) -> ExportJobRunner:
    """The app's export job runner (made when the app starts)."""
    runner: ExportJobRunner = request.app.state.export_jobs
    return runner


Runner = Annotated[ExportJobRunner, Depends(export_runner)]


class ExportJobOut(BaseModel):
    id: int
    project_slug: str
    kind: str
    state: str
    items_read: int
    split_rows: dict[str, int]
    rows: int | None
    content_hash: str | None
    error: str | None
    parameters: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    download_url: str | None


def job_out(job: ExportJobView) -> ExportJobOut:
    """A job as the API returns it, with its download link once done."""
    download = f"/api/v1/projects/{job.project_slug}/exports/{job.id}/download" if job.is_done else None
    return ExportJobOut(
        id=job.id,
        project_slug=job.project_slug,
        kind=job.kind,
        state=job.state,
        items_read=job.items_read,
        split_rows=job.split_rows,
        rows=job.rows,
        content_hash=job.content_hash,
        error=job.error,
        parameters=job.parameters,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        download_url=download,
    )


@router.post("/projects/{slug}/exports", status_code=202)
def start_export(slug: str, body: ExportOptions, call: ApiCall, runner: Runner, response: Response) -> ExportJobOut:
    """Start an export job (leads and admins); poll it, then download its zip when `state` is done."""
    job = runner.start(call.session, principal=call.principal, slug=slug, options=body)
    response.headers["Location"] = f"/api/v1/projects/{slug}/exports/{job.id}"
    return job_out(job)


@router.get("/projects/{slug}/exports")
def list_exports(slug: str, call: ApiCall) -> list[ExportJobOut]:
    """The project's export jobs, newest first."""
    return [job_out(job) for job in export_jobs.list_jobs(call.session, principal=call.principal, slug=slug)]


@router.get("/projects/{slug}/exports/{job_id}")
def get_export(slug: str, job_id: int, call: ApiCall) -> ExportJobOut:
    """One export job: state (queued, running, done, failed), progress, rows per split, content hash, error."""
    return job_out(export_jobs.get_job(call.session, principal=call.principal, slug=slug, job_id=job_id))


@router.get(
    "/projects/{slug}/exports/{job_id}/download",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}, 409: {"description": "export_not_ready"}},
)
def download_export(slug: str, job_id: int, call: ApiCall, runner: Runner) -> StreamingResponse:
    """The dataset directory of a done job as a zip (split files, README.md card, export.json); 409 until done."""
    files = export_jobs.job_files(
        call.session, principal=call.principal, slug=slug, job_id=job_id, directory=runner.directory
    )
    return zip_response(files)


def zip_response(files: export_jobs.JobFiles) -> StreamingResponse:
    """A job's directory streamed as a zip attachment."""
    return StreamingResponse(
        export_jobs.zip_stream(files.directory),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{files.filename}"', "Cache-Control": "no-store"},
    )
