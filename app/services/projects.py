"""Projects: creation, listing and who may see them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.principal import Principal
from preference_store import projects as project_store
from preference_store import users as user_store
from preference_store.engine import begin_write
from preference_store.models import ProjectKind
from preference_store.projects import ProjectProgress, ProjectRow

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")
MAX_OVERLAP = 50
SUPPORTED_KINDS = frozenset({ProjectKind.PAIRWISE})


@dataclass(frozen=True, slots=True)
class ProjectSummary:
    """A project as listed on the home page."""

    slug: str
    name: str
    kind: str
    overlap: int
    progress: ProjectProgress | None


def create_project(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    name: str,
    kind: str = ProjectKind.PAIRWISE.value,
    overlap: int = 1,
    guidelines: str = "",
    lease_seconds: int = 1800,
) -> ProjectRow:
    """Create an annotation project (leads and admins)."""
    principal.require_staff()
    slug = slug.strip().lower()
    if not _SLUG.match(slug):
        raise InvalidInput(
            "invalid_slug", "A slug is 3-64 lowercase letters, digits and dashes, e.g. 'th-safety-2026'.", field="slug"
        )
    if not name.strip():
        raise InvalidInput("invalid_name", "A project needs a name.", field="name")
    try:
        project_kind = ProjectKind(kind)
    except ValueError as error:
        choices = ", ".join(k.value for k in ProjectKind)
        raise InvalidInput("invalid_kind", f"kind must be one of {choices}.", field="kind") from error
    if project_kind not in SUPPORTED_KINDS:
        raise InvalidInput(
            "kind_not_supported", f"{project_kind.value} projects are not available yet; use pairwise.", field="kind"
        )
    if not 1 <= overlap <= MAX_OVERLAP:
        raise InvalidInput("invalid_overlap", f"overlap must be between 1 and {MAX_OVERLAP}.", field="overlap")
    if lease_seconds < 30:
        raise InvalidInput("invalid_lease", "lease_seconds must be at least 30.", field="lease_seconds")
    begin_write(session)
    if project_store.get_project_by_slug(session, slug=slug) is not None:
        raise Conflict("project_exists", f"A project with slug '{slug}' already exists.", field="slug")
    try:
        project = project_store.create_project(
            session,
            slug=slug,
            name=name.strip(),
            kind=project_kind,
            overlap=overlap,
            guidelines=guidelines,
            lease_seconds=lease_seconds,
            settings={},
            created_by_id=principal.user_id,
        )
        session.commit()
    except IntegrityError as error:
        session.rollback()
        raise Conflict("project_exists", f"A project with slug '{slug}' already exists.", field="slug") from error
    return project


def get_project(session: Session, *, principal: Principal, slug: str) -> ProjectRow:
    """The project, if the caller may work on it; annotators only see their own projects."""
    project = project_store.get_project_by_slug(session, slug=slug)
    if project is None or (
        not principal.is_staff and not project_store.is_member(session, project_id=project.id, user_id=principal.id)
    ):
        raise NotFound("project_not_found", f"No project '{slug}' for you.", field="slug")
    return project


def list_projects(session: Session, *, principal: Principal) -> list[ProjectSummary]:
    """Projects the caller can work on, with progress for leads."""
    rows = project_store.list_projects(session, member_id=None if principal.is_staff else principal.id)
    return [
        ProjectSummary(
            slug=row.slug,
            name=row.name,
            kind=row.kind.value,
            overlap=row.overlap,
            progress=project_store.project_progress(session, project_id=row.id) if principal.is_staff else None,
        )
        for row in rows
    ]


def add_members(session: Session, *, principal: Principal, slug: str, emails: list[str]) -> int:
    """Give users access to a project; returns how many were added."""
    principal.require_staff()
    begin_write(session)
    project = get_project(session, principal=principal, slug=slug)
    found = user_store.get_users_by_emails(session, emails=emails)
    missing = sorted({email.strip().lower() for email in emails} - found.keys())
    if missing:
        raise InvalidInput("unknown_user", f"No user with email {', '.join(missing)}.", field="emails")
    added = project_store.add_members(session, project_id=project.id, user_ids=[user.id for user in found.values()])
    session.commit()
    return added
