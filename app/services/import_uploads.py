"""Files leads upload on the import page: staged under an unguessable token, previewed, imported or discarded.

Each upload is a directory `<uploads>/<token>/` holding the file (or the unzipped `save_to_disk`
directory), `upload.json` (owner, project, options, preview, result) and `rejects.jsonl`. Nothing
reaches the database before `import_upload`, which re-reads the file through `importing.import_items`.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import IO, Any

import orjson
from sqlalchemy.orm import Session

from app import import_formats
from app.errors import Conflict, InvalidInput, NotFound, PrefstackError, Problem
from app.import_formats import tabular
from app.principal import Principal
from app.services import importing
from app.services.importing import OnError, Rejected
from app.services.projects import get_project
from app.settings import Settings

CHUNK_BYTES = 1024 * 1024
FORM_OVERHEAD_BYTES = 64 * 1024
MAX_PROBLEMS_SHOWN = 200
MAX_FILENAME_CHARS = 200
META_FILE = "upload.json"
REJECTS_FILE = "rejects.jsonl"
LOCK_FILE = "importing.lock"
DATASET_DIR = "dataset"
AUTO_FORMAT = "auto"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")
_SUFFIX = re.compile(r"\.[a-z0-9]{1,10}")


class UploadTooLarge(PrefstackError):
    status_code = 413

    def __init__(self, max_mb: int) -> None:
        super().__init__("upload_too_large", f"The file is larger than {max_mb} MB.", field="file")


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """Where uploads wait, how big they may be and how long they wait."""

    directory: Path
    max_mb: int
    """The request body limit of the import endpoints (`annotation.max_upload_mb`)."""
    lifetime: timedelta

    @property
    def max_bytes(self) -> int:
        """The largest file: the body limit less room for the form's other fields and boundaries."""
        return self.max_mb * 1024 * 1024 - FORM_OVERHEAD_BYTES


def upload_limits(settings: Settings) -> UploadLimits:
    """The configured limits; the directory defaults to `uploads/` beside the SQLite file (or the working dir)."""
    configured = settings.uploads.directory
    directory = configured.resolve() if configured is not None else settings.secret_file_path().parent / "uploads"
    return UploadLimits(
        directory=directory,
        max_mb=settings.annotation.max_upload_mb,
        lifetime=timedelta(minutes=settings.uploads.expiry_minutes),
    )


@dataclass(frozen=True, slots=True)
class UploadForm:
    """What the upload form offers."""

    project_slug: str
    project_name: str
    formats: tuple[str, ...]
    on_error_modes: tuple[str, ...]
    max_mb: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class PreviewItem:
    external_id: str
    prompt_excerpt: str
    responses: int
    language: str | None
    category: str | None


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int | None
    field: str | None
    message: str


@dataclass(frozen=True, slots=True)
class UploadResult:
    created: int
    unchanged: int
    rejected: int
    verdicts: int


@dataclass(frozen=True, slots=True)
class Upload:
    """One staged upload as its pages show it: the preview, and the result once imported."""

    token: str
    project_slug: str
    project_name: str
    filename: str
    size_bytes: int
    format: str
    on_error: str
    valid: int
    unchanged: int
    invalid: int
    verdicts: int
    items: tuple[PreviewItem, ...]
    problems: tuple[RowProblem, ...]
    problems_total: int
    expires_at: datetime
    result: UploadResult | None = None

    @property
    def problems_capped(self) -> bool:
        return self.problems_total > len(self.problems)


def upload_form(session: Session, *, principal: Principal, slug: str, limits: UploadLimits) -> UploadForm:
    """The upload form of a project (leads and admins)."""
    principal.require_staff()
    project = get_project(session, principal=principal, slug=slug)
    return UploadForm(
        project_slug=project.slug,
        project_name=project.name,
        formats=(AUTO_FORMAT, *import_formats.FORMATS),
        on_error_modes=tuple(mode.value for mode in OnError),
        max_mb=limits.max_mb,
        max_bytes=limits.max_bytes,
    )


def parse_on_error(value: str) -> OnError:
    """`fail` or `skip`, else an error naming the field."""
    try:
        return OnError(value)
    except ValueError:
        raise InvalidInput("invalid_on_error", "on_error is fail or skip.", field="on_error") from None


def stage_upload(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    limits: UploadLimits,
    source: IO[bytes],
    filename: str,
    fmt: str = AUTO_FORMAT,
    on_error: str = OnError.FAIL.value,
    now: datetime | None = None,
) -> Upload:
    """Copy the uploaded stream to a new upload directory and preview it: nothing is written to the database.

    The preview is a dry run of the import (every row validated, existing items counted as
    unchanged); the rejected rows go to `rejects.jsonl`. A file that cannot be read at all
    is refused and its directory deleted.
    """
    principal.require_staff()
    project = get_project(session, principal=principal, slug=slug)
    mode = parse_on_error(on_error)
    fmt = fmt.strip()
    chosen_format = None if fmt in ("", AUTO_FORMAT) else fmt
    now = now or datetime.now(UTC)
    sweep_expired(limits.directory, now=now)
    name = PurePosixPath(filename.replace("\\", "/")).name.strip()[:MAX_FILENAME_CHARS]
    if not name:
        raise InvalidInput("file_required", "Choose a file to upload.", field="file")
    token = secrets.token_urlsafe(32)
    folder = limits.directory / token
    folder.mkdir(parents=True, mode=0o700)
    try:
        staged = folder / ("upload" + _suffixes(name))
        size = _copy(source, staged, limits=limits)
        if size == 0:
            raise InvalidInput("empty_file", "The file is empty.", field="file")
        if staged.suffix == ".zip":
            staged = _unzip_dataset(staged, folder / DATASET_DIR, limits=limits)
        with _named(staged, name):
            detected = import_formats.detect_format(staged, chosen_format)
            with (folder / REJECTS_FILE).open("wb") as rejects:
                preview = importing.import_items(
                    session,
                    principal=principal,
                    slug=slug,
                    rows=import_formats.read_source(staged, str(detected)),
                    reject=_writer(rejects),
                    dry_run=True,
                )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    problems = _problems(preview.rejects)
    meta = {
        "token": token,
        "user_id": principal.user.id,
        "project_slug": project.slug,
        "project_name": project.name,
        "filename": name,
        "size_bytes": size,
        "source": str(staged.relative_to(folder)),
        "format": str(detected),
        "on_error": mode.value,
        "valid": preview.created,
        "unchanged": preview.unchanged,
        "invalid": preview.rejected,
        "verdicts": preview.verdicts,
        "items": [_preview_item(item) for item in preview.preview],
        "problems": [asdict(problem) for problem in problems],
        "problems_total": _problem_count(folder / REJECTS_FILE, shown=problems),
        "expires_at": (now + limits.lifetime).isoformat(),
        "result": None,
    }
    _write_meta(folder, meta)
    return _upload(meta)


def get_upload(
    session: Session, *, principal: Principal, slug: str, token: str, limits: UploadLimits, now: datetime | None = None
) -> Upload:
    """An upload of the caller's in this project, with its preview (and result once imported)."""
    _folder, meta = _owned(session, principal=principal, slug=slug, token=token, limits=limits, now=now)
    return _upload(meta)


def import_upload(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    token: str,
    limits: UploadLimits,
    on_error: str,
    now: datetime | None = None,
) -> Upload:
    """Import the staged file with `on_error`, re-validating every row: all or nothing unless `skip`.

    The file is deleted once imported; the preview, the result and the rejects stay until the upload expires.
    """
    mode = parse_on_error(on_error)
    folder, meta = _owned(session, principal=principal, slug=slug, token=token, limits=limits, now=now)
    if meta["result"] is not None:
        raise Conflict("upload_already_imported", "This upload was imported already.", field="token")
    try:
        (folder / LOCK_FILE).touch(exist_ok=False)
    except FileExistsError:
        raise Conflict("upload_importing", "This upload is being imported.", field="token") from None
    try:
        staged = folder / meta["source"]
        with _named(staged, meta["filename"]), (folder / (REJECTS_FILE + ".new")).open("wb") as rejects:
            try:
                result = importing.import_items(
                    session,
                    principal=principal,
                    slug=slug,
                    rows=import_formats.read_source(staged, meta["format"]),
                    on_error=mode,
                    reject=_writer(rejects),
                )
            except InvalidInput as error:
                if error.code != "invalid_import":
                    raise
                raise InvalidInput(
                    "invalid_rows",
                    f"{len(error.problems)} problem(s) found in the rows; nothing was imported. "
                    "Choose skip to import the valid rows, or fix the file and upload it again.",
                    field="on_error",
                    problems=error.problems,
                ) from error
        (folder / (REJECTS_FILE + ".new")).replace(folder / REJECTS_FILE)
        meta["on_error"] = mode.value
        meta["result"] = asdict(UploadResult(result.created, result.unchanged, result.rejected, result.verdicts))
        _write_meta(folder, meta)
        _remove_source(folder, staged)
    finally:
        (folder / LOCK_FILE).unlink(missing_ok=True)
        (folder / (REJECTS_FILE + ".new")).unlink(missing_ok=True)
    return _upload(meta)


def discard_upload(
    session: Session, *, principal: Principal, slug: str, token: str, limits: UploadLimits, now: datetime | None = None
) -> None:
    """Delete an upload (its file, preview and rejects)."""
    folder, _meta = _owned(session, principal=principal, slug=slug, token=token, limits=limits, now=now)
    shutil.rmtree(folder, ignore_errors=True)


def rejects_file(
    session: Session, *, principal: Principal, slug: str, token: str, limits: UploadLimits, now: datetime | None = None
) -> Path:
    """The upload's rejected rows as JSONL (`{line, reasons, record}` a line)."""
    folder, _meta = _owned(session, principal=principal, slug=slug, token=token, limits=limits, now=now)
    return folder / REJECTS_FILE


def sweep_expired(directory: Path, *, now: datetime) -> int:
    """Delete the uploads whose time ran out; returns how many."""
    if not directory.is_dir():
        return 0
    removed = 0
    for folder in directory.iterdir():
        if not folder.is_dir() or not _TOKEN.fullmatch(folder.name):
            continue
        expires_at = _expires_at(folder)
        if expires_at is not None and expires_at <= now:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _expires_at(folder: Path) -> datetime | None:
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        return datetime.fromisoformat(meta["expires_at"])
    except FileNotFoundError:
        # Still being staged, or abandoned mid-way: give it a day from its creation.
        try:
            return datetime.fromtimestamp(folder.stat().st_mtime, UTC) + timedelta(days=1)
        except FileNotFoundError:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return datetime.min.replace(tzinfo=UTC)


def _owned(
    session: Session, *, principal: Principal, slug: str, token: str, limits: UploadLimits, now: datetime | None
) -> tuple[Path, dict[str, Any]]:
    principal.require_staff()
    project = get_project(session, principal=principal, slug=slug)
    missing = NotFound(
        "upload_not_found", "This upload does not exist, expired or is someone else's. Upload the file again.",
        field="token",
    )  # fmt: skip
    if not _TOKEN.fullmatch(token):
        raise missing
    folder = limits.directory / token
    try:
        meta: dict[str, Any] = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise missing from None
    if meta.get("user_id") != principal.user.id or meta.get("project_slug") != project.slug:
        raise missing
    if datetime.fromisoformat(meta["expires_at"]) <= (now or datetime.now(UTC)):
        shutil.rmtree(folder, ignore_errors=True)
        raise missing
    return folder, meta


def _upload(meta: dict[str, Any]) -> Upload:
    result = meta["result"]
    return Upload(
        token=meta["token"],
        project_slug=meta["project_slug"],
        project_name=meta["project_name"],
        filename=meta["filename"],
        size_bytes=meta["size_bytes"],
        format=meta["format"],
        on_error=meta["on_error"],
        valid=meta["valid"],
        unchanged=meta["unchanged"],
        invalid=meta["invalid"],
        verdicts=meta["verdicts"],
        items=tuple(PreviewItem(**item) for item in meta["items"]),
        problems=tuple(RowProblem(**problem) for problem in meta["problems"]),
        problems_total=meta["problems_total"],
        expires_at=datetime.fromisoformat(meta["expires_at"]),
        result=UploadResult(**result) if result is not None else None,
    )


def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    scratch = folder / (META_FILE + ".new")
    scratch.write_bytes(orjson.dumps(meta))
    scratch.replace(folder / META_FILE)


def _remove_source(folder: Path, staged: Path) -> None:
    if staged.is_dir():
        shutil.rmtree(folder / DATASET_DIR, ignore_errors=True)
    else:
        staged.unlink(missing_ok=True)
    for archive in folder.glob("upload*.zip"):
        archive.unlink(missing_ok=True)


def _suffixes(name: str) -> str:
    """The file name's extensions (`.jsonl.gz`), which tell the reader the container."""
    suffixes = [suffix.lower() for suffix in PurePosixPath(name).suffixes[-2:]]
    return "".join(suffix for suffix in suffixes if _SUFFIX.fullmatch(suffix))


def _copy(source: IO[bytes], target: Path, *, limits: UploadLimits) -> int:
    size = 0
    with target.open("xb") as out:
        while chunk := source.read(CHUNK_BYTES):
            size += len(chunk)
            if size > limits.max_bytes:
                raise UploadTooLarge(limits.max_mb)
            out.write(chunk)
    return size


def _unzip_dataset(archive: Path, target: Path, *, limits: UploadLimits) -> Path:
    """Unpack a zip of a `save_to_disk` directory; returns the dataset directory inside it."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            if sum(member.file_size for member in members) > limits.max_bytes:
                raise UploadTooLarge(limits.max_mb)
            for member in members:
                parts = PurePosixPath(member.filename).parts
                if member.filename.startswith("/") or ".." in parts:
                    raise InvalidInput("invalid_zip", f"unsafe path in the zip: {member.filename}", field="file")
            bundle.extractall(target)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise InvalidInput("invalid_zip", f"The zip cannot be read: {error}", field="file") from error
    candidates = sorted(
        (folder for folder in (target, *target.rglob("*")) if tabular.is_dataset_directory(folder)),
        key=lambda folder: (len(folder.parts), str(folder)),
    )
    if not candidates:
        raise InvalidInput("invalid_zip", "The zip holds no directory written by datasets' save_to_disk.", field="file")
    return candidates[0]


@contextmanager
def _named(staged: Path, name: str) -> Iterator[None]:
    """Errors name the file as the lead called it, never the server's path; unreadable files are refused."""
    try:
        yield
    except PrefstackError as error:
        error.message = (
            error.message.replace(str(staged), name).replace(staged.name, name).replace("--format", "format")
        )
        error.args = (error.message,)
        if error.field not in ("format", "on_error"):
            error.field = "file"
        raise
    except (OSError, EOFError, ValueError, zlib.error) as error:
        message = str(error).replace(str(staged), name)
        raise InvalidInput("unreadable_file", f"The file cannot be read: {message}", field="file") from error


def _writer(stream: IO[bytes]) -> Any:
    def write(rejected: Rejected) -> None:
        stream.write(orjson.dumps(rejected.as_json(), default=str) + b"\n")

    return write


def _problems(rejects: tuple[Rejected, ...]) -> tuple[RowProblem, ...]:
    found: list[RowProblem] = []
    for rejected in rejects:
        for problem in rejected.problems or (Problem("refused"),):
            if len(found) == MAX_PROBLEMS_SHOWN:
                return tuple(found)
            found.append(RowProblem(problem.row or rejected.number, problem.field, problem.message))
    return tuple(found)


def _problem_count(rejects: Path, *, shown: tuple[RowProblem, ...]) -> int:
    """Every problem of every rejected row (the shown ones are a prefix of them)."""
    if len(shown) < MAX_PROBLEMS_SHOWN:
        return len(shown)
    with rejects.open("rb") as lines:
        return sum(len(orjson.loads(line)["reasons"]) or 1 for line in lines if line.strip())


def _preview_item(item: importing.PreviewItem) -> dict[str, Any]:
    return {
        "external_id": item.external_id,
        "prompt_excerpt": item.prompt_excerpt,
        "responses": item.responses,
        "language": item.language,
        "category": item.category,
    }
