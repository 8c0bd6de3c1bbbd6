"""Projects: creation, listing and who may see them."""

from __future__ import annotations

import functools
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.principal import Principal
from app.services import audit
from app.services.project_options import ProjectOptions, options_of, parse_options
from preference_store import projects as project_store
from preference_store import queue
from preference_store import users as user_store
from preference_store.engine import begin_write
from preference_store.models import ProjectKind
from preference_store.projects import ProjectProgress, ProjectRow

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")
MAX_OVERLAP = 50
PAIRWISE_RESPONSES = 2
"""Responses per item in a pairwise project."""
MAX_GUIDELINES_CHARS = 200_000


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
    options: dict[str, Any] | None = None,
) -> ProjectRow:
    """Create an annotation project (leads and admins); `options` as in ProjectOptions."""
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
    settings = parse_options(options or {}, kind=project_kind).model_dump(mode="json", exclude_defaults=True)
    _check_guidelines(guidelines)
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
            settings=settings,
            created_by_id=principal.user_id,
        )
        project_store.add_guidelines_version(
            session, project_id=project.id, version=project.guidelines_version, text=guidelines, note="",
            created_by_id=principal.user_id,
        )  # fmt: skip
        audit.record(
            session,
            principal=principal,
            action="project.create",
            project_id=project.id,
            target_type="project",
            target_id=slug,
            details={"kind": project_kind.value, "overlap": overlap, "settings": settings},
        )
        session.commit()
    except IntegrityError as error:
        session.rollback()
        raise Conflict("project_exists", f"A project with slug '{slug}' already exists.", field="slug") from error
    return project


class ProjectAccessCache:
    """Projects and memberships read recently, trusted for a few seconds in this process.

    The annotation loop asks for both on every call; a change to a project or to its
    members is seen within `ttl_seconds`.
    """

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._projects: dict[str | int, tuple[float, ProjectRow]] = {}
        self._members: dict[tuple[int, int], tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def project(self, key: str | int) -> ProjectRow | None:
        entry = self._projects.get(key)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    def put_project(self, project: ProjectRow) -> None:
        if self._ttl > 0:
            expires = time.monotonic() + self._ttl
            with self._lock:
                self._trim(self._projects)
                self._projects[project.slug] = self._projects[project.id] = (expires, project)

    def forget(self, project: ProjectRow) -> None:
        """Drop a project that just changed, so this process reads it again."""
        with self._lock:
            self._projects.pop(project.slug, None)
            self._projects.pop(project.id, None)

    def is_member(self, project_id: int, user_id: int) -> bool | None:
        entry = self._members.get((project_id, user_id))
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    def put_member(self, project_id: int, user_id: int, is_member: bool) -> None:
        if self._ttl > 0:
            with self._lock:
                self._trim(self._members)
                self._members[(project_id, user_id)] = (time.monotonic() + self._ttl, is_member)

    @staticmethod
    def _trim(entries: dict[Any, Any]) -> None:
        if len(entries) > 50_000:
            entries.clear()


def get_project(
    session: Session, *, principal: Principal, slug: str, cache: ProjectAccessCache | None = None
) -> ProjectRow:
    """The project, if the caller may work on it; annotators only see their own projects."""
    project = cache.project(slug) if cache else None
    if project is None:
        project = project_store.get_project_by_slug(session, slug=slug)
        if project is not None and cache:
            cache.put_project(project)
    if project is None or not _may_work_on(session, principal=principal, project=project, cache=cache):
        raise NotFound("project_not_found", f"No project '{slug}' for you.", field="slug")
    return project


def project_by_id(session: Session, *, project_id: int, cache: ProjectAccessCache | None = None) -> ProjectRow | None:
    """A project by id (no access check: the caller holds something of it already)."""
    project = cache.project(project_id) if cache else None
    if project is None:
        project = project_store.get_project_by_id(session, project_id=project_id)
        if project is not None and cache:
            cache.put_project(project)
    return project


def _may_work_on(
    session: Session, *, principal: Principal, project: ProjectRow, cache: ProjectAccessCache | None
) -> bool:
    if principal.is_staff:
        return True
    member = cache.is_member(project.id, principal.id) if cache else None
    if member is None:
        member = project_store.is_member(session, project_id=project.id, user_id=principal.id)
        if cache:
            cache.put_member(project.id, principal.id, member)
    return member


def list_projects(session: Session, *, principal: Principal) -> list[ProjectSummary]:
    """Projects the caller can work on, with progress for leads."""
    rows = project_store.list_projects(session, member_id=None if principal.is_staff else principal.id)
    progress = (
        project_store.project_progress(session, project_ids=[row.id for row in rows]) if principal.is_staff else {}
    )
    return [
        ProjectSummary(
            slug=row.slug, name=row.name, kind=row.kind.value, overlap=row.overlap, progress=progress.get(row.id)
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
    audit.record(
        session,
        principal=principal,
        action="member.add",
        project_id=project.id,
        target_type="project",
        target_id=project.slug,
        details={"emails": sorted(found), "added": added},
    )
    session.commit()
    return added


def cached_options(project: ProjectRow) -> ProjectOptions:
    """The project's options, parsed once per distinct settings value."""
    return _options_from_json(orjson.dumps(project.settings, option=orjson.OPT_SORT_KEYS))


@functools.lru_cache(maxsize=256)
def _options_from_json(settings_json: bytes) -> ProjectOptions:
    return options_of(orjson.loads(settings_json))


def update_options(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    changes: dict[str, Any],
    cache: ProjectAccessCache | None = None,
) -> ProjectRow:
    """Change some of a project's options (leads); the rest keep their values."""
    principal.require_staff()
    begin_write(session)
    project = get_project(session, principal=principal, slug=slug)
    merged = {**cached_options(project).model_dump(mode="json"), **changes}
    settings = parse_options(merged, kind=project.kind).model_dump(mode="json", exclude_defaults=True)
    project_store.update_settings(session, project_id=project.id, settings=settings)
    audit.record(
        session,
        principal=principal,
        action="project.update",
        project_id=project.id,
        target_type="project",
        target_id=project.slug,
        details={"before": project.settings, "after": settings},
    )
    session.commit()
    if cache:
        cache.forget(project)
    return project_store.get_project_by_id(session, project_id=project.id) or project


def _check_guidelines(text: str) -> None:
    if len(text) > MAX_GUIDELINES_CHARS:
        raise InvalidInput(
            "guidelines_too_long", f"Guidelines are limited to {MAX_GUIDELINES_CHARS} characters.", field="guidelines"
        )


def update_guidelines(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    text: str,
    note: str = "",
    cache: ProjectAccessCache | None = None,
) -> ProjectRow:
    """Publish a new version of a project's guidelines; judgments from now on record it.

    Pass the process's `cache` so that its next tasks and judgments carry the new version
    at once (other processes see it when their cached copy expires).
    """
    principal.require_staff()
    _check_guidelines(text)
    begin_write(session)
    project = get_project(session, principal=principal, slug=slug)
    version = project.guidelines_version + 1
    project_store.add_guidelines_version(
        session, project_id=project.id, version=version, text=text, note=note.strip(), created_by_id=principal.user_id
    )
    project_store.set_current_guidelines(session, project_id=project.id, version=version, text=text)
    audit.record(
        session,
        principal=principal,
        action="guidelines.update",
        project_id=project.id,
        target_type="guidelines",
        target_id=version,
        details={"version": version, "previous": project.guidelines_version, "note": note.strip(), "chars": len(text)},
    )
    session.commit()
    if cache:
        cache.forget(project)
    return project_store.get_project_by_id(session, project_id=project.id) or project


def guidelines_history(
    session: Session, *, principal: Principal, slug: str
) -> list[project_store.GuidelinesVersionRow]:
    """Every version of a project's guidelines, newest first."""
    project = get_project(session, principal=principal, slug=slug)
    return project_store.guidelines_versions(session, project_id=project.id)


def set_priority(session: Session, *, principal: Principal, slug: str, external_ids: list[str], priority: int) -> int:
    """Move items in the serving order; returns how many were found."""
    principal.require_staff()
    if abs(priority) > queue.PRIORITY_LIMIT:
        raise InvalidInput(
            "invalid_priority",
            f"priority runs from -{queue.PRIORITY_LIMIT} to {queue.PRIORITY_LIMIT}.",
            field="priority",
        )
    begin_write(session)
    project = get_project(session, principal=principal, slug=slug)
    item_ids = project_store.item_ids_by_external_id(session, project_id=project.id, external_ids=external_ids)
    missing = sorted(set(external_ids) - item_ids.keys())
    if missing:
        session.rollback()
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise InvalidInput("unknown_items", f"No item {shown} in '{slug}'.", field="external_ids")
    updated = queue.set_priority(session, project_id=project.id, item_ids=list(item_ids.values()), priority=priority)
    session.commit()
    return updated
