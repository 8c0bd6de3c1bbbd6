"""Exports: which project, who may export it, and the rows it yields."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from app.principal import Principal
from app.services.projects import get_project
from export.dpo import DpoOptions, build_dpo_rows
from preference_store.judgments import iter_judged_items
from preference_store.projects import ProjectRow

EXPORT_KINDS = ("dpo",)


def authorize_export(session: Session, *, principal: Principal, slug: str) -> ProjectRow:
    """The project to export, if the caller is a lead or admin."""
    principal.require_staff()
    return get_project(session, principal=principal, slug=slug)


def dpo_rows(session: Session, *, project_id: int, options: DpoOptions | None = None) -> Iterator[dict[str, Any]]:
    """Stream the project's DPO rows; the session must stay open while they are read."""
    return build_dpo_rows(iter_judged_items(session, project_id=project_id), options)
