"""Export jobs: exports written in a background thread of the server, tracked in `export_job`.

A job is validated and inserted (queued) in the request that starts it, then run by an
`ExportJobRunner` with its own sessions: `exporting.export_dataset` writes the dataset
directory, progress is stored every few thousand items, and the job ends done (rows per
split, content hash) or failed (the error). A server that starts marks the jobs a dead
server left unfinished as failed ("interrupted").
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Conflict, InvalidInput, NotFound, PrefstackError, Problem
from app.principal import Principal
from app.services import audit, exporting
from app.services.export_labels import Aggregation
from app.services.exporting import ExportRequest
from app.settings import Settings
from export.aggregate import Abstain, ArbitrationMode
from export.card import CARD_NAME
from export.formats import RowFormat
from export.pairs import RankingPairs
from export.writers import ExportFormat
from preference_store import browse
from preference_store import export_jobs as job_store
from preference_store import projects as project_store
from preference_store.base import utcnow
from preference_store.engine import begin_write
from preference_store.export_jobs import ExportJobRow
from preference_store.judgments import JudgmentFilter
from preference_store.models import ExportJobState

log = logging.getLogger(__name__)

PROGRESS_EVERY_ITEMS = 2000
"""A running job stores its progress after this many items."""
STALE_AFTER = timedelta(minutes=15)
"""An unfinished job of another host with no progress for this long is taken for dead at start-up."""
JOBS_LISTED = 50
INTERRUPTED = "interrupted: the server stopped while this export was running"
CARD_MAX_BYTES = 1_000_000
_STORED_SUFFIXES = (".parquet", ".gz", ".arrow", ".zip")
_ZIP_CHUNK = 1 << 20

Launcher = Callable[[Callable[[], None]], None]
"""Runs a job's work: in a new thread in the server, or at once (tests that need determinism)."""


def in_a_thread(work: Callable[[], None]) -> None:
    """Run `work` in a daemon thread of this process."""
    threading.Thread(target=work, name="prefstack-export-job", daemon=True).start()


def at_once(work: Callable[[], None]) -> None:
    """Run `work` now, in the caller's thread."""
    work()


class ExportOptions(BaseModel):
    """Every option of an export, as the API body and the export page send them."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["dpo", "reward", "kto", "sft", "rubric"] = "dpo"
    format: ExportFormat = Field(default=ExportFormat.JSONL, description="jsonl, parquet or hf (a datasets directory).")
    gzip: bool = Field(default=False, description="Gzip the JSONL files.")
    row_format: RowFormat = Field(default=RowFormat.CONVERSATIONAL, description="conversational or standard.")
    test_size: float = Field(default=0.0, description="Expected share of the test split (grouped by prompt).")
    validation_size: float = Field(default=0.0, description="Expected share of the validation split.")
    seed: int = Field(default=0, description="Seed of the split and of the KTO shuffle.")
    provenance: bool = Field(default=False, description="Add external_id, source, annotators, votes, agreement.")
    min_judgments: int = Field(default=1, description="Judgments an item needs.")
    min_agreement: float = Field(default=0.0, description="Share of votes the winner needs (0..1).")
    ties: Abstain = Field(default=Abstain.KEEP, description="Tie votes: keep (count) or drop (abstain).")
    both_bad: Abstain = Field(default=Abstain.KEEP, description="Both-bad votes: keep (count) or drop (abstain).")
    aggregation: Aggregation = Field(
        default=Aggregation.MAJORITY, description="Pairwise votes: majority or dawid-skene (pairwise projects)."
    )
    arbitration: ArbitrationMode = Field(
        default=ArbitrationMode.VERDICT_FIRST, description="verdict-first: arbitration verdicts label items; or ignore."
    )
    include_calibration: bool = Field(default=False, description="Keep items used in calibration sessions.")
    include_gold: bool = Field(default=False, description="Keep gold items.")
    ranking_pairs: RankingPairs = Field(default=RankingPairs.ALL_PAIRS, description="Pairs a ranked item gives.")
    rewrites: bool = Field(default=True, description="dpo, reward, sft: use annotators' rewrites.")
    margin: bool = Field(default=True, description="reward: rows carry a margin.")
    kto_desirable_at: float | None = Field(default=None, description="kto: rubric overall score (0..1) counted good.")
    kto_undesirable_at: float | None = Field(default=None, description="kto: rubric overall score (0..1) counted bad.")
    languages: list[str] = Field(default_factory=list, description="Only items in these languages.")
    markets: list[str] = Field(default_factory=list, description="Only items of these markets.")
    categories: list[str] = Field(default_factory=list, description="Only items of these categories.")
    since: date | datetime | None = Field(default=None, description="Judgments made on or after (UTC).")
    until: date | datetime | None = Field(default=None, description="Judgments made before; a date includes its day.")
    teams: list[str] = Field(default_factory=list, description="Only judgments of these teams (names).")
    guidelines_versions: list[int] = Field(default_factory=list, description="Only judgments under these versions.")

    @field_validator("since", "until", mode="before")
    @classmethod
    def _date_or_moment(cls, value: Any) -> Any:
        # A bare date is a whole day (the end of a range includes it); anything longer is a moment.
        if isinstance(value, str) and value.strip():
            text = value.strip()
            try:
                return date.fromisoformat(text) if len(text) == len("2026-01-31") else datetime.fromisoformat(text)
            except ValueError as error:
                raise ValueError("not an ISO date such as 2026-01-31 or date-time") from error
        return value

    def to_request(self) -> ExportRequest:
        """The service's request for these options (not yet checked against a project)."""
        return ExportRequest(
            kind=self.kind,
            fmt=self.format,
            gzip=self.gzip,
            row_format=self.row_format,
            test_size=self.test_size,
            validation_size=self.validation_size,
            seed=self.seed,
            provenance=self.provenance,
            min_judgments=self.min_judgments,
            min_agreement=self.min_agreement,
            ties=self.ties,
            both_bad=self.both_bad,
            aggregation=self.aggregation,
            arbitration=self.arbitration,
            include_calibration=self.include_calibration,
            include_gold=self.include_gold,
            ranking_pairs=self.ranking_pairs,
            rewrites=self.rewrites,
            margin=self.margin,
            kto_desirable_at=self.kto_desirable_at,
            kto_undesirable_at=self.kto_undesirable_at,
            where=JudgmentFilter(
                languages=tuple(self.languages),
                markets=tuple(self.markets),
                categories=tuple(self.categories),
                judged_from=_moment(self.since, end_of_day=False),
                judged_until=_moment(self.until, end_of_day=True),
                guidelines_versions=tuple(self.guidelines_versions),
            ),
            teams=tuple(self.teams),
        )


def _moment(value: datetime | date | None, *, end_of_day: bool) -> datetime | None:
    """A UTC moment; a bare date ends a range at the end of that day."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        moment = datetime.combine(value, time(), tzinfo=UTC)
        return moment + timedelta(days=1) if end_of_day else moment
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_options(values: Mapping[str, Any]) -> ExportOptions:
    """Options from loose values (a form), raising `InvalidInput` naming every bad field."""
    try:
        return ExportOptions.model_validate(dict(values))
    except ValidationError as error:
        problems = [
            Problem(str(detail.get("msg", "invalid")), field=str(detail["loc"][0]) if detail.get("loc") else None)
            for detail in error.errors()
        ]
        first = problems[0]
        raise InvalidInput("invalid_export_option", f"{first.field}: {first.message}", field=first.field,
                           problems=problems) from error  # fmt: skip


def request_from_parameters(parameters: Mapping[str, Any]) -> ExportRequest:
    """Rebuild a resolved request from `ExportRequest.parameters()` (team ids, no names)."""

    def moment(name: str) -> datetime | None:
        value = parameters.get(name)
        return None if value is None else datetime.fromisoformat(str(value))

    return ExportRequest(
        kind=str(parameters["kind"]),
        fmt=ExportFormat(parameters["format"]),
        gzip=bool(parameters["gzip"]),
        row_format=RowFormat(parameters["row_format"]),
        test_size=float(parameters["test_size"]),
        validation_size=float(parameters["validation_size"]),
        seed=int(parameters["seed"]),
        provenance=bool(parameters["provenance"]),
        min_judgments=int(parameters["min_judgments"]),
        min_agreement=float(parameters["min_agreement"]),
        ties=Abstain(parameters["ties"]),
        both_bad=Abstain(parameters["both_bad"]),
        aggregation=Aggregation(parameters.get("aggregation", Aggregation.MAJORITY.value)),
        arbitration=ArbitrationMode(parameters.get("arbitration", ArbitrationMode.VERDICT_FIRST.value)),
        include_calibration=bool(parameters.get("include_calibration", False)),
        include_gold=bool(parameters.get("include_gold", False)),
        ranking_pairs=RankingPairs(parameters["ranking_pairs"]),
        rewrites=bool(parameters["rewrites"]),
        margin=bool(parameters["margin"]),
        kto_desirable_at=parameters.get("kto_desirable_at"),
        kto_undesirable_at=parameters.get("kto_undesirable_at"),
        where=JudgmentFilter(
            languages=tuple(parameters.get("languages") or ()),
            markets=tuple(parameters.get("markets") or ()),
            categories=tuple(parameters.get("categories") or ()),
            judged_from=moment("judged_from"),
            judged_until=moment("judged_until"),
            team_ids=tuple(parameters.get("team_ids") or ()),
            guidelines_versions=tuple(parameters.get("guidelines_versions") or ()),
        ),
    )


@dataclass(frozen=True, slots=True)
class ExportJobView:
    """An export job as the pages and the API show it."""

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

    @property
    def is_active(self) -> bool:
        """Queued or running: the page keeps polling."""
        return self.state in (ExportJobState.QUEUED.value, ExportJobState.RUNNING.value)

    @property
    def is_done(self) -> bool:
        return self.state == ExportJobState.DONE.value


def _view(row: ExportJobRow) -> ExportJobView:
    split_rows = dict(row.split_rows or {})
    return ExportJobView(
        id=row.id,
        project_slug=row.project_slug,
        kind=row.kind,
        state=row.state.value,
        items_read=row.items_read,
        split_rows=split_rows,
        rows=sum(split_rows.values()) if row.split_rows is not None else None,
        content_hash=row.content_hash,
        error=row.error,
        parameters=row.parameters,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


@dataclass(frozen=True, slots=True)
class ExportPage:
    """What the export page shows: the project, the choices its filters offer, and its jobs."""

    project_slug: str
    project_name: str
    project_kind: str
    kinds: tuple[str, ...]
    languages: list[str]
    markets: list[str]
    categories: list[str]
    guidelines_versions: list[int]
    jobs: list[ExportJobView]

    @property
    def any_active(self) -> bool:
        return any(job.is_active for job in self.jobs)


@dataclass(frozen=True, slots=True)
class JobFiles:
    """A finished job's directory, and the name its zip is downloaded as."""

    directory: Path
    filename: str


def exports_directory(settings: Settings) -> Path:
    """Where jobs write: the configured directory, else `exports/` beside the SQLite file (or the working dir)."""
    if settings.exports.directory is not None:
        return settings.exports.directory.resolve()
    return settings.secret_file_path().parent / "exports"


def _this_host() -> str:
    return socket.gethostname()[:200]


class ExportJobRunner:
    """Starts, runs and recovers export jobs for one server process.

    Args:
        sessions: a session factory; each job opens its own sessions.
        directory: the exports directory (one directory per job under it).
        prefstack_version: recorded in each dataset's card and manifest.
        launch: how a job's work runs (`in_a_thread` in the server, `at_once` in tests).
        progress_every: items between two progress writes.
    """

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        directory: Path,
        prefstack_version: str,
        launch: Launcher = in_a_thread,
        progress_every: int = PROGRESS_EVERY_ITEMS,
    ) -> None:
        self.sessions = sessions
        self.directory = directory
        self.prefstack_version = prefstack_version
        self.launch = launch
        self.progress_every = progress_every
        # host:pid:incarnation, so a restarted process with a recycled pid (pid 1 in a container) knows its old jobs.
        self.worker = f"{_this_host()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"

    def start(self, session: Session, *, principal: Principal, slug: str, options: ExportOptions) -> ExportJobView:
        """Check the options against the project, queue a job and launch it; returns the job as queued."""
        project = exporting.authorize_export(session, principal=principal, slug=slug)
        request = exporting.resolve_request(session, project=project, request=options.to_request())
        begin_write(session)
        job_id = job_store.insert_job(
            session,
            project_id=project.id,
            requested_by_id=principal.user_id,
            kind=request.kind,
            parameters=request.parameters(),
            worker=self.worker,
            at=utcnow(),
        )
        queued = job_store.get_job(session, job_id=job_id)
        audit.record(
            session,
            principal=principal,
            action="export.create",
            project_id=project.id,
            target_type="export_job",
            target_id=job_id,
            details={"kind": request.kind, "parameters": request.parameters()},
        )
        session.commit()
        assert queued is not None
        self.launch(lambda: self.run(job_id, principal=principal))
        return _view(queued)

    def run(self, job_id: int, *, principal: Principal) -> None:
        """Run a queued job to done or failed; never raises (the error is stored on the job)."""
        try:
            with self.sessions() as session:
                begin_write(session)
                job = job_store.get_job(session, job_id=job_id)
                if job is None:
                    return
                relative = f"{job.project_slug}/{job.id}-{job.kind}"
                if not job_store.start_job(session, job_id=job_id, output_path=relative, at=utcnow()):
                    session.rollback()
                    return
                session.commit()
            summary = self._export(job, principal=principal, out=self.directory / relative)
            with self.sessions() as session:
                begin_write(session)
                job_store.finish_job(
                    session,
                    job_id=job_id,
                    items_read=summary.items_read,
                    split_rows=summary.split_rows,
                    content_hash=summary.content_sha256,
                    at=utcnow(),
                )
                session.commit()
        except PrefstackError as error:
            self._fail(job_id, error.message if not error.field else f"{error.field}: {error.message}")
        except Exception as error:  # the job must end failed, whatever broke
            log.exception("export job %s failed", job_id)
            self._fail(job_id, f"{type(error).__name__}: {error}")

    def _export(self, job: ExportJobRow, *, principal: Principal, out: Path) -> exporting.ExportSummary:
        def progress(items_read: int) -> None:
            if items_read % self.progress_every == 0:
                with self.sessions() as progress_session:
                    begin_write(progress_session)
                    job_store.record_progress(progress_session, job_id=job.id, items_read=items_read, at=utcnow())
                    progress_session.commit()

        with self.sessions() as reading:
            summary = exporting.export_dataset(
                reading,
                principal=principal,
                slug=job.project_slug,
                request=request_from_parameters(job.parameters),
                out=out,
                prefstack_version=self.prefstack_version,
                progress=progress,
            )
            reading.commit()  # read only: ends the read transaction (a savepoint in tests) without undoing others
        return summary

    def _fail(self, job_id: int, message: str) -> None:
        # Leads see the message: name the exports directory, not where it lives on the server.
        message = message.replace(str(self.directory), "<exports>")
        try:
            with self.sessions() as session:
                begin_write(session)
                job_store.fail_jobs(session, job_ids=[job_id], error=message[:2000], at=utcnow())
                session.commit()
        except Exception:  # the database itself is gone: the next start-up marks the job interrupted
            log.exception("could not record the failure of export job %s", job_id)

    def recover_interrupted(self) -> int:
        """Mark failed ("interrupted") the unfinished jobs whose server is gone; returns how many."""
        now = utcnow()
        with self.sessions() as session:
            begin_write(session)
            dead = [job.id for job in job_store.unfinished_jobs(session) if self._is_dead(job, now=now)]
            failed = job_store.fail_jobs(session, job_ids=dead, error=INTERRUPTED, at=now)
            session.commit()
        return failed

    def _is_dead(self, job: ExportJobRow, *, now: datetime) -> bool:
        host, _, rest = (job.worker or "").partition(":")
        pid_text, _, incarnation = rest.partition(":")
        if host == _this_host() and pid_text.isdigit():
            pid = int(pid_text)
            if pid == os.getpid():
                return f"{host}:{pid}:{incarnation}" != self.worker
            return not _process_alive(pid)
        last_sign = job.heartbeat_at or job.created_at
        return now - last_sign > STALE_AFTER


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _project_job(session: Session, *, principal: Principal, slug: str, job_id: int) -> ExportJobRow:
    project = exporting.authorize_export(session, principal=principal, slug=slug)
    job = job_store.get_job(session, job_id=job_id)
    if job is None or job.project_id != project.id:
        raise NotFound("export_job_not_found", f"No export job {job_id} in project '{slug}'.", field="job_id")
    return job


def list_jobs(session: Session, *, principal: Principal, slug: str) -> list[ExportJobView]:
    """A project's export jobs, newest first (leads and admins)."""
    project = exporting.authorize_export(session, principal=principal, slug=slug)
    return [_view(row) for row in job_store.list_jobs(session, project_id=project.id, limit=JOBS_LISTED)]


def get_job(session: Session, *, principal: Principal, slug: str, job_id: int) -> ExportJobView:
    """One export job of a project (leads and admins)."""
    return _view(_project_job(session, principal=principal, slug=slug, job_id=job_id))


def export_page(session: Session, *, principal: Principal, slug: str) -> ExportPage:
    """The project, its filter choices and its jobs, for the export page (leads and admins)."""
    project = exporting.authorize_export(session, principal=principal, slug=slug)
    kinds = tuple(kind for kind in exporting.EXPORT_KINDS if kind != "rubric" or project.kind.value == "rubric")
    return ExportPage(
        project_slug=project.slug,
        project_name=project.name,
        project_kind=project.kind.value,
        kinds=kinds,
        languages=browse.facet_values(session, project_id=project.id, key="language"),
        markets=browse.facet_values(session, project_id=project.id, key="market"),
        categories=browse.facet_values(session, project_id=project.id, key="category"),
        guidelines_versions=[
            version.version for version in project_store.guidelines_versions(session, project_id=project.id)
        ],
        jobs=[_view(row) for row in job_store.list_jobs(session, project_id=project.id, limit=JOBS_LISTED)],
    )


def job_files(session: Session, *, principal: Principal, slug: str, job_id: int, directory: Path) -> JobFiles:
    """A done job's dataset directory; `Conflict` (409) until the job is done."""
    job = _project_job(session, principal=principal, slug=slug, job_id=job_id)
    if job.state is not ExportJobState.DONE or job.output_path is None:
        raise Conflict("export_not_ready", f"Export job {job_id} is {job.state.value}, not done.", field="job_id")
    path = (directory / job.output_path).resolve()
    if not path.is_relative_to(directory.resolve()) or not path.is_dir():
        raise NotFound("export_files_missing", f"The files of export job {job_id} are gone.", field="job_id")
    return JobFiles(directory=path, filename=f"{job.project_slug}-{job.kind}-{job.id}.zip")


@dataclass(frozen=True, slots=True)
class DatasetCard:
    """A done job's dataset card: its YAML front matter (as text) and its markdown body."""

    job: ExportJobView
    front_matter: str
    body: str


def dataset_card(session: Session, *, principal: Principal, slug: str, job_id: int, directory: Path) -> DatasetCard:
    """The dataset card (README.md) a done job wrote."""
    files = job_files(session, principal=principal, slug=slug, job_id=job_id, directory=directory)
    job = get_job(session, principal=principal, slug=slug, job_id=job_id)
    with (files.directory / CARD_NAME).open("rb") as card:
        text = card.read(CARD_MAX_BYTES).decode("utf-8", errors="replace")
    front_matter, body = split_front_matter(text)
    return DatasetCard(job=job, front_matter=front_matter, body=body)


def split_front_matter(card: str) -> tuple[str, str]:
    """A card's YAML front matter (without its `---` lines) and its markdown body."""
    if card.startswith("---\n"):
        end = card.find("\n---\n", 4)
        if end != -1:
            return card[4:end], card[end + 5 :]
    return "", card


class _ChunkSink:
    """A write-only, unseekable file that hands out what was written since the last `take`."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._written = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def zip_stream(directory: Path) -> Iterator[bytes]:
    """The directory as a zip archive, in chunks, reading one file chunk at a time from disk.

    Already compressed files (Parquet, gzip, Arrow) are stored, text is deflated.
    """
    sink = _ChunkSink()
    sink_file: IO[bytes] = sink  # type: ignore[assignment]
    with zipfile.ZipFile(sink_file, mode="w") as archive:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            name = path.relative_to(directory).as_posix()
            info = zipfile.ZipInfo.from_file(path, arcname=name)
            stored = path.name.endswith(_STORED_SUFFIXES)
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            with path.open("rb") as source, archive.open(info, mode="w", force_zip64=True) as target:
                while block := source.read(_ZIP_CHUNK):
                    target.write(block)
                    if data := sink.take():
                        yield data
            if data := sink.take():
                yield data
    if data := sink.take():
        yield data
