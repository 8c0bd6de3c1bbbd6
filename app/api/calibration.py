"""JSON API v1: calibration sessions (leads create, reveal, agree and close; participants answer blind)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas import JudgmentIn
from app.api.v1 import ERRORS
from app.deps import ApiCall
from app.services import calibration
from app.services.calibration import ItemReview, SessionDetail
from app.services.verdicts import VerdictInput

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["calibration"])


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=calibration.MAX_NAME_CHARS + 100)
    notes: str = Field(default="", max_length=calibration.MAX_NOTES_CHARS + 100)
    teams: list[str] = Field(default_factory=list, max_length=50, description="Team names: all active members join.")
    emails: list[str] = Field(default_factory=list, max_length=calibration.MAX_PARTICIPANTS)
    after_days: int = Field(default=calibration.DEFAULT_AFTER_DAYS, description="The before/after window in days.")


class ItemsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_ids: list[str] = Field(default_factory=list, max_length=calibration.MAX_ITEMS)
    random_disagreements: int = Field(
        default=0, description="Also add this many random items whose judgments disagree."
    )


class AgreeIn(JudgmentIn):
    """The agreed answer, with responses named A, B... in stored position order (A = position 0)."""

    note: str = Field(default="", max_length=calibration.MAX_NOTE_CHARS + 100)


class GoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    explanation: str | None = Field(default=None, max_length=10_000, description="Default: the item's note.")


class AddedOut(BaseModel):
    added: int


class StoredOut(BaseModel):
    answer_id: int
    next_item_id: int | None


class SessionSummaryOut(BaseModel):
    id: int
    name: str
    state: str
    items: int
    participants: int
    answered: int


def _verdict(body: JudgmentIn) -> VerdictInput:
    return VerdictInput(**body.model_dump(exclude={"time_spent_ms", "note"}))


@router.post("/projects/{slug}/calibration-sessions", status_code=201)
def create(slug: str, body: SessionIn, call: ApiCall) -> dict[str, Any]:
    """Start a blind calibration session for teams and/or annotators (leads)."""
    detail = calibration.create_session(
        call.session,
        principal=call.principal,
        slug=slug,
        name=body.name,
        notes=body.notes,
        teams=body.teams,
        emails=body.emails,
        after_days=body.after_days,
    )
    return asdict(detail)


@router.get("/projects/{slug}/calibration-sessions")
def list_sessions(slug: str, call: ApiCall) -> list[SessionSummaryOut]:
    """The project's sessions, newest first (leads)."""
    rows = calibration.list_sessions(call.session, principal=call.principal, slug=slug)
    return [SessionSummaryOut.model_validate(row, from_attributes=True) for row in rows]


@router.get("/projects/{slug}/calibration-sessions/{session_id}")
def get(slug: str, session_id: int, call: ApiCall) -> dict[str, Any]:
    """A session (leads): progress while blind; distributions, answers and figures once revealed."""
    return asdict(calibration.get_session(call.session, principal=call.principal, slug=slug, session_id=session_id))


@router.post("/projects/{slug}/calibration-sessions/{session_id}/items")
def add_items(slug: str, session_id: int, body: ItemsIn, call: ApiCall) -> AddedOut:
    """Add items while the session is blind (leads)."""
    added = calibration.add_items(
        call.session,
        principal=call.principal,
        slug=slug,
        session_id=session_id,
        external_ids=body.external_ids,
        random_disagreements=body.random_disagreements,
    )
    return AddedOut(added=added)


@router.get("/projects/{slug}/calibration-sessions/{session_id}/my-items")
def my_items(slug: str, session_id: int, call: ApiCall, item: int | None = None) -> dict[str, Any]:
    """The caller's item (the first unanswered one by default) in the labels they see, with their own answer."""
    task = calibration.my_task(
        call.session, principal=call.principal, slug=slug, session_id=session_id, calibration_item_id=item
    )
    shown = asdict(task)
    shown["project"] = {"slug": task.project.slug, "name": task.project.name, "kind": task.project.kind.value}
    return shown


@router.put("/projects/{slug}/calibration-sessions/{session_id}/items/{item_id}/answer")
def answer(slug: str, session_id: int, item_id: int, body: JudgmentIn, call: ApiCall) -> StoredOut:
    """Store or revise the caller's blind answer, in the labels of their own task."""
    stored = calibration.answer(
        call.session,
        principal=call.principal,
        slug=slug,
        session_id=session_id,
        calibration_item_id=item_id,
        submitted=_verdict(body),
        time_spent_ms=body.time_spent_ms,
    )
    return StoredOut(answer_id=stored.answer_id, next_item_id=stored.next_item_id)


@router.post("/projects/{slug}/calibration-sessions/{session_id}/reveal")
def reveal(slug: str, session_id: int, call: ApiCall) -> dict[str, Any]:
    """End the blind round and keep its agreement (leads)."""
    return asdict(calibration.reveal(call.session, principal=call.principal, slug=slug, session_id=session_id))


@router.put("/projects/{slug}/calibration-sessions/{session_id}/items/{item_id}/agreed")
def agree(slug: str, session_id: int, item_id: int, body: AgreeIn, call: ApiCall) -> dict[str, Any]:
    """Record the agreed answer and a note for an item, after the reveal (leads)."""
    review: ItemReview = calibration.agree(
        call.session,
        principal=call.principal,
        slug=slug,
        session_id=session_id,
        calibration_item_id=item_id,
        submitted=_verdict(body),
        note=body.note,
    )
    return asdict(review)


@router.post("/projects/{slug}/calibration-sessions/{session_id}/items/{item_id}/gold")
def make_gold(slug: str, session_id: int, item_id: int, body: GoldIn, call: ApiCall) -> dict[str, Any]:
    """Turn the item's agreed answer into its gold answer (leads)."""
    review = calibration.make_gold(
        call.session,
        principal=call.principal,
        slug=slug,
        session_id=session_id,
        calibration_item_id=item_id,
        explanation=body.explanation,
    )
    return asdict(review)


@router.post("/projects/{slug}/calibration-sessions/{session_id}/close")
def close(slug: str, session_id: int, call: ApiCall) -> dict[str, Any]:
    """Close a revealed session, keeping the share of answers equal to the agreed ones (leads)."""
    detail: SessionDetail = calibration.close(call.session, principal=call.principal, slug=slug, session_id=session_id)
    return asdict(detail)
