"""The import page for leads: upload a file, preview it with every row error, then import it or cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from annotation_ui.rendering import is_htmx, render
from app.deps import Context, CurrentPrincipal, DbSession
from app.errors import InvalidInput, PrefstackError
from app.services import import_uploads
from app.services.import_uploads import AUTO_FORMAT, UploadLimits, UploadTooLarge
from app.services.importing import OnError

router = APIRouter(include_in_schema=False)

FORM_FIELDS = frozenset({"file", "format", "on_error"})
"""Errors about these fields are shown at the field; any other error gets the error page."""


@dataclass(frozen=True, slots=True)
class FieldError:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class FormState:
    """The values the form shows (the ones sent, or the defaults) and an error per field."""

    format: str = AUTO_FORMAT
    on_error: str = OnError.FAIL.value
    errors: dict[str, FieldError] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UploadFields:
    file: UploadFile | None
    format: str
    on_error: str


def _limits(context: Context) -> UploadLimits:
    return import_uploads.upload_limits(context.settings)


Limits = Annotated[UploadLimits, Depends(_limits)]


async def _upload_fields(request: Request, limits: Limits) -> AsyncIterator[UploadFields]:
    # Runs before the caller is identified, so that an oversized body is refused unread.
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limits.max_mb * 1024 * 1024:
        raise UploadTooLarge(limits.max_mb)
    # Starlette spools the file part to a temporary file beyond 1 MB; it never sits whole in memory.
    form = await request.form(max_files=1, max_fields=10)
    try:
        sent = form.get("file")
        fmt, on_error = form.get("format"), form.get("on_error")
        yield UploadFields(
            file=sent if isinstance(sent, UploadFile) and sent.filename else None,
            format=fmt if isinstance(fmt, str) else AUTO_FORMAT,
            on_error=on_error if isinstance(on_error, str) else OnError.FAIL.value,
        )
    finally:
        await form.close()


Fields = Annotated[UploadFields, Depends(_upload_fields)]


async def _on_error_field(request: Request) -> str:
    form = await request.form()
    value = form.get("on_error")
    return value if isinstance(value, str) else OnError.FAIL.value


OnErrorField = Annotated[str, Depends(_on_error_field)]


def _field_errors(error: PrefstackError) -> dict[str, FieldError]:
    if error.field not in FORM_FIELDS:
        raise error
    return {error.field or "file": FieldError(error.code, error.message)}


def _page(
    request: Request,
    session: DbSession,
    principal: CurrentPrincipal,
    slug: str,
    limits: UploadLimits,
    *,
    upload: import_uploads.Upload | None = None,
    state: FormState | None = None,
    status_code: int = 200,
    push_url: str | None = None,
) -> Response:
    form = import_uploads.upload_form(session, principal=principal, slug=slug, limits=limits)
    context = {"form": form, "upload": upload, "state": state or FormState()}
    headers = {"HX-Push-Url": push_url} if push_url and is_htmx(request) else None
    return render(request, "import.html", context, block="panel", status_code=status_code, headers=headers)


def _base(slug: str) -> str:
    return f"/projects/{quote(slug)}/import"


@router.get("/projects/{slug}/import", response_class=HTMLResponse)
def import_page(
    request: Request, slug: str, session: DbSession, principal: CurrentPrincipal, limits: Limits
) -> Response:
    return _page(request, session, principal, slug, limits)


@router.post("/projects/{slug}/import", response_class=HTMLResponse)
def upload_file(
    request: Request, slug: str, fields: Fields, session: DbSession, principal: CurrentPrincipal, limits: Limits
) -> Response:
    state = FormState(format=fields.format, on_error=fields.on_error)
    try:
        if fields.file is None:
            raise InvalidInput("file_required", "Choose a file to upload.", field="file")
        upload = import_uploads.stage_upload(
            session,
            principal=principal,
            slug=slug,
            limits=limits,
            source=fields.file.file,
            filename=fields.file.filename or "",
            fmt=fields.format,
            on_error=fields.on_error,
        )
    except PrefstackError as error:
        session.rollback()
        errored = FormState(format=state.format, on_error=state.on_error, errors=_field_errors(error))
        return _page(request, session, principal, slug, limits, state=errored, status_code=error.status_code)
    target = f"{_base(slug)}/{upload.token}"
    if not is_htmx(request):
        return RedirectResponse(target, status_code=303)
    return _page(request, session, principal, slug, limits, upload=upload, push_url=target)


@router.get("/projects/{slug}/import/{token}", response_class=HTMLResponse)
def upload_page(
    request: Request, slug: str, token: str, session: DbSession, principal: CurrentPrincipal, limits: Limits
) -> Response:
    upload = import_uploads.get_upload(session, principal=principal, slug=slug, token=token, limits=limits)
    return _page(request, session, principal, slug, limits, upload=upload)


@router.post("/projects/{slug}/import/{token}", response_class=HTMLResponse)
def import_upload(
    request: Request,
    slug: str,
    token: str,
    session: DbSession,
    principal: CurrentPrincipal,
    limits: Limits,
    on_error: OnErrorField,
) -> Response:
    try:
        upload = import_uploads.import_upload(
            session, principal=principal, slug=slug, token=token, limits=limits, on_error=on_error
        )
    except PrefstackError as error:
        session.rollback()
        state = FormState(on_error=on_error, errors=_field_errors(error))
        upload = import_uploads.get_upload(session, principal=principal, slug=slug, token=token, limits=limits)
        return _page(
            request, session, principal, slug, limits, upload=upload, state=state, status_code=error.status_code
        )
    if not is_htmx(request):
        return RedirectResponse(f"{_base(slug)}/{upload.token}", status_code=303)
    return _page(request, session, principal, slug, limits, upload=upload)


@router.post("/projects/{slug}/import/{token}/cancel", response_class=HTMLResponse)
def cancel_upload(
    request: Request, slug: str, token: str, session: DbSession, principal: CurrentPrincipal, limits: Limits
) -> Response:
    import_uploads.discard_upload(session, principal=principal, slug=slug, token=token, limits=limits)
    if not is_htmx(request):
        return RedirectResponse(_base(slug), status_code=303)
    return _page(request, session, principal, slug, limits, push_url=_base(slug))


@router.get("/projects/{slug}/import/{token}/rejects.jsonl")
def download_rejects(
    slug: str, token: str, session: DbSession, principal: CurrentPrincipal, limits: Limits
) -> FileResponse:
    path = import_uploads.rejects_file(session, principal=principal, slug=slug, token=token, limits=limits)
    return FileResponse(path, media_type="application/x-ndjson", filename="rejects.jsonl")
