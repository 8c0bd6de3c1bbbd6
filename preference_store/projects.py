"""Projects and their members."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, exists, func, insert, select, update
from sqlalchemy.orm import Session

from preference_store.models import (
    GuidelinesVersion,
    Item,
    ItemQueue,
    Judgment,
    Project,
    ProjectKind,
    ProjectMember,
)


@dataclass(frozen=True, slots=True)
class ProjectRow:
    """A project's settings as the services need them."""

    id: int
    slug: str
    name: str
    kind: ProjectKind
    guidelines: str
    guidelines_version: int
    overlap: int
    lease_seconds: int
    settings: dict[str, Any]
    is_archived: bool


@dataclass(frozen=True, slots=True)
class ProjectProgress:
    items: int
    judgments: int
    open_slots: int


_P = cast(Table, Project.__table__)
_M = cast(Table, ProjectMember.__table__)
_PROJECT_COLUMNS = (
    _P.c.id,
    _P.c.slug,
    _P.c.name,
    _P.c.kind,
    _P.c.guidelines,
    _P.c.guidelines_version,
    _P.c.overlap,
    _P.c.lease_seconds,
    _P.c.settings,
    _P.c.is_archived,
)
_BY_SLUG = select(*_PROJECT_COLUMNS).where(_P.c.slug == bindparam("slug"))
_BY_ID = select(*_PROJECT_COLUMNS).where(_P.c.id == bindparam("project_id"))
_IS_MEMBER = select(exists().where(_M.c.project_id == bindparam("project_id"), _M.c.user_id == bindparam("user_id")))


def _to_row(row: Any) -> ProjectRow:
    return ProjectRow(
        id=row[0],
        slug=row[1],
        name=row[2],
        kind=ProjectKind(row[3]),
        guidelines=row[4],
        guidelines_version=row[5],
        overlap=row[6],
        lease_seconds=row[7],
        settings=dict(row[8] or {}),
        is_archived=row[9],
    )


def get_project_by_slug(session: Session, *, slug: str) -> ProjectRow | None:
    """The project with this slug, or None."""
    row = session.connection().execute(_BY_SLUG, {"slug": slug}).first()
    return None if row is None else _to_row(row)


def create_project(
    session: Session,
    *,
    slug: str,
    name: str,
    kind: ProjectKind,
    overlap: int,
    guidelines: str,
    lease_seconds: int,
    settings: dict[str, Any],
    created_by_id: int | None,
) -> ProjectRow:
    """Insert a project and return it."""
    project = Project(
        slug=slug,
        name=name,
        kind=kind,
        overlap=overlap,
        guidelines=guidelines,
        lease_seconds=lease_seconds,
        settings=settings,
        created_by_id=created_by_id,
    )
    session.add(project)
    session.flush()
    return ProjectRow(
        id=project.id,
        slug=slug,
        name=name,
        kind=kind,
        guidelines=guidelines,
        guidelines_version=project.guidelines_version,
        overlap=overlap,
        lease_seconds=lease_seconds,
        settings=settings,
        is_archived=False,
    )


def list_projects(session: Session, *, member_id: int | None = None) -> list[ProjectRow]:
    """Active projects, all of them or only those `member_id` belongs to."""
    statement = select(*_PROJECT_COLUMNS).where(Project.is_archived.is_(False)).order_by(Project.name)
    if member_id is not None:
        statement = statement.join(ProjectMember, ProjectMember.project_id == Project.id).where(
            ProjectMember.user_id == member_id
        )
    return [_to_row(row) for row in session.execute(statement)]


def is_member(session: Session, *, project_id: int, user_id: int) -> bool:
    """Whether the user is a member of the project."""
    return bool(session.connection().execute(_IS_MEMBER, {"project_id": project_id, "user_id": user_id}).scalar())


def add_members(session: Session, *, project_id: int, user_ids: list[int]) -> int:
    """Add users to a project, ignoring those already in it; returns how many were added."""
    present = set(
        session.scalars(
            select(ProjectMember.user_id).where(
                ProjectMember.project_id == project_id, ProjectMember.user_id.in_(user_ids)
            )
        )
    )
    new = [user_id for user_id in dict.fromkeys(user_ids) if user_id not in present]
    if new:
        session.execute(insert(ProjectMember), [{"project_id": project_id, "user_id": u} for u in new])
    return len(new)


def project_progress(session: Session, *, project_ids: list[int]) -> dict[int, ProjectProgress]:
    """Counts of items, judgments and open slots per project, three grouped queries in all."""
    if not project_ids:
        return {}
    items = _grouped(
        session, select(Item.project_id, func.count()).where(Item.project_id.in_(project_ids)).group_by(Item.project_id)
    )
    judgments = _grouped(
        session,
        select(Judgment.project_id, func.count())
        .where(Judgment.project_id.in_(project_ids))
        .group_by(Judgment.project_id),
    )
    open_slots = _grouped(
        session,
        select(ItemQueue.project_id, func.sum(ItemQueue.open_slots))
        .where(ItemQueue.project_id.in_(project_ids))
        .group_by(ItemQueue.project_id),
    )
    return {
        project_id: ProjectProgress(
            items=items.get(project_id, 0),
            judgments=judgments.get(project_id, 0),
            open_slots=open_slots.get(project_id, 0),
        )
        for project_id in project_ids
    }


def _grouped(session: Session, statement: Any) -> dict[int, int]:
    return {int(key): int(value or 0) for key, value in session.execute(statement)}


def get_project_by_id(session: Session, *, project_id: int) -> ProjectRow | None:
    """The project with this id, or None."""
    row = session.connection().execute(_BY_ID, {"project_id": project_id}).first()
    return None if row is None else _to_row(row)


@dataclass(frozen=True, slots=True)
class GuidelinesVersionRow:
    version: int
    text: str
    note: str
    created_at: datetime


def add_guidelines_version(
    session: Session, *, project_id: int, version: int, text: str, note: str, created_by_id: int | None
) -> None:
    """Keep a version of a project's guidelines."""
    session.execute(
        insert(GuidelinesVersion).values(
            project_id=project_id, version=version, text=text, note=note, created_by_id=created_by_id
        )
    )


def set_current_guidelines(session: Session, *, project_id: int, version: int, text: str) -> None:
    """Make a version the one annotators see and judgments record."""
    session.execute(update(Project).where(Project.id == project_id).values(guidelines=text, guidelines_version=version))


def guidelines_versions(session: Session, *, project_id: int) -> list[GuidelinesVersionRow]:
    """Every version of the project's guidelines, newest first."""
    rows = session.execute(
        select(GuidelinesVersion.version, GuidelinesVersion.text, GuidelinesVersion.note, GuidelinesVersion.created_at)
        .where(GuidelinesVersion.project_id == project_id)
        .order_by(GuidelinesVersion.version.desc())
    )
    return [GuidelinesVersionRow(*row) for row in rows]


def update_settings(session: Session, *, project_id: int, settings: dict[str, Any]) -> None:
    """Replace a project's settings."""
    session.execute(update(Project).where(Project.id == project_id).values(settings=settings))


def item_ids_by_external_id(session: Session, *, project_id: int, external_ids: list[str]) -> dict[str, int]:
    """Item ids of the project for the external ids that exist."""
    found: dict[str, int] = {}
    for start in range(0, len(external_ids), 500):
        rows = session.execute(
            select(Item.external_id, Item.id).where(
                Item.project_id == project_id, Item.external_id.in_(external_ids[start : start + 500])
            )
        )
        found.update((external_id, item_id) for external_id, item_id in rows)
    return found
