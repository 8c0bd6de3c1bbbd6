"""Export jobs: the rows that track exports written in the background."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from preference_store.models import ExportJob, ExportJobState, Project

_J = cast(Table, ExportJob.__table__)
_P = cast(Table, Project.__table__)
UNFINISHED = (ExportJobState.QUEUED, ExportJobState.RUNNING)


@dataclass(frozen=True, slots=True)
class ExportJobRow:
    """One export job as the services read it."""

    id: int
    project_id: int
    project_slug: str
    requested_by_id: int | None
    kind: str
    parameters: dict[str, Any]
    state: ExportJobState
    items_read: int
    split_rows: dict[str, int] | None
    content_hash: str | None
    error: str | None
    output_path: str | None
    worker: str | None
    created_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None


_COLUMNS = (
    _J.c.id,
    _J.c.project_id,
    _P.c.slug,
    _J.c.requested_by_id,
    _J.c.kind,
    _J.c.parameters,
    _J.c.state,
    _J.c.items_read,
    _J.c.split_rows,
    _J.c.content_hash,
    _J.c.error,
    _J.c.output_path,
    _J.c.worker,
    _J.c.created_at,
    _J.c.started_at,
    _J.c.heartbeat_at,
    _J.c.finished_at,
)
_SELECT = select(*_COLUMNS).join(_P, _P.c.id == _J.c.project_id)


def _row(row: Any) -> ExportJobRow:
    values = list(row)
    values[6] = ExportJobState(values[6])
    values[5] = dict(values[5] or {})
    values[8] = None if values[8] is None else {str(name): int(count) for name, count in values[8].items()}
    return ExportJobRow(*values)


def insert_job(
    session: Session,
    *,
    project_id: int,
    requested_by_id: int | None,
    kind: str,
    parameters: dict[str, Any],
    worker: str,
    at: datetime,
) -> int:
    """Insert a queued job and return its id."""
    result = session.execute(
        insert(_J)
        .values(
            project_id=project_id,
            requested_by_id=requested_by_id,
            kind=kind,
            parameters=parameters,
            state=ExportJobState.QUEUED.value,
            items_read=0,
            worker=worker,
            created_at=at,
        )
        .returning(_J.c.id)
    )
    return int(result.scalar_one())


def get_job(session: Session, *, job_id: int) -> ExportJobRow | None:
    """The job with this id, or None."""
    row = session.execute(_SELECT.where(_J.c.id == job_id)).first()
    return None if row is None else _row(row)


def list_jobs(session: Session, *, project_id: int, limit: int) -> list[ExportJobRow]:
    """A project's jobs, newest first."""
    rows = session.execute(_SELECT.where(_J.c.project_id == project_id).order_by(_J.c.id.desc()).limit(limit))
    return [_row(row) for row in rows]


def start_job(session: Session, *, job_id: int, output_path: str, at: datetime) -> bool:
    """Move a queued job to running; False when it is no longer queued."""
    result = session.execute(
        update(_J)
        .where(_J.c.id == job_id, _J.c.state == ExportJobState.QUEUED.value)
        .values(state=ExportJobState.RUNNING.value, output_path=output_path, started_at=at, heartbeat_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_progress(session: Session, *, job_id: int, items_read: int, at: datetime) -> None:
    """Store how many items a running job has read."""
    session.execute(
        update(_J)
        .where(_J.c.id == job_id, _J.c.state == ExportJobState.RUNNING.value)
        .values(items_read=items_read, heartbeat_at=at)
    )


def finish_job(
    session: Session,
    *,
    job_id: int,
    items_read: int,
    split_rows: dict[str, int],
    content_hash: str,
    at: datetime,
) -> bool:
    """Mark a running job done with its result; False when it was not running any more."""
    result = session.execute(
        update(_J)
        .where(_J.c.id == job_id, _J.c.state == ExportJobState.RUNNING.value)
        .values(
            state=ExportJobState.DONE.value,
            items_read=items_read,
            split_rows=split_rows,
            content_hash=content_hash,
            finished_at=at,
            heartbeat_at=at,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def fail_jobs(session: Session, *, job_ids: list[int], error: str, at: datetime) -> int:
    """Mark unfinished jobs failed with `error`; returns how many were."""
    if not job_ids:
        return 0
    result = session.execute(
        update(_J)
        .where(_J.c.id.in_(job_ids), _J.c.state.in_([state.value for state in UNFINISHED]))
        .values(state=ExportJobState.FAILED.value, error=error, finished_at=at)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def unfinished_jobs(session: Session) -> list[ExportJobRow]:
    """Every queued or running job, oldest first."""
    rows = session.execute(_SELECT.where(_J.c.state.in_([state.value for state in UNFINISHED])).order_by(_J.c.id))
    return [_row(row) for row in rows]
