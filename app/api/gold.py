"""JSON API v1: gold answers (leads and admins), resuming paused annotators, notifications."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas import ScoreValue, Strength
from app.api.v1 import ERRORS
from app.deps import ApiCall
from app.errors import NotFound
from app.services import gold, notifications, qualification
from app.services.gold import GoldInput, GoldView
from app.services.verdicts import VerdictInput

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["gold"])


class AnswerIn(BaseModel):
    """A judgment in labels that stand for response positions: A is position 0, B position 1..."""

    model_config = ConfigDict(extra="forbid")

    choice: Literal["A", "B", "tie", "both_bad"] | None = None
    strength: Strength | None = None
    labels: dict[str, list[str]] = Field(default_factory=dict)
    scores: dict[str, dict[str, ScoreValue]] = Field(default_factory=dict)
    ranking: list[list[str]] = Field(default_factory=list, examples=[[["B"], ["A", "C"]]])
    all_bad: bool = False

    def verdict_input(self) -> VerdictInput:
        return VerdictInput(**self.model_dump())


class GoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: AnswerIn
    accepted: list[AnswerIn] = Field(default_factory=list, max_length=20, description="Answers also counted right.")
    explanation: str = Field(default="", max_length=gold.MAX_EXPLANATION_CHARS + 100)


class GoldRowIn(GoldIn):
    external_id: str = Field(min_length=1, max_length=200)


class GoldOut(BaseModel):
    external_id: str
    verdict: str
    accepted_verdicts: list[str]
    answer: dict[str, Any]
    explanation: str
    source: str
    updated_at: datetime


class BulkOut(BaseModel):
    marked: int


class ResumedOut(BaseModel):
    resumed: bool


class NotificationOut(BaseModel):
    id: int
    kind: str
    message: str
    created_at: datetime
    read_at: datetime | None
    project_slug: str | None
    subject_user_id: int | None
    subject_name: str | None


class NotificationsOut(BaseModel):
    unread: int
    notifications: list[NotificationOut]


class MarkReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[int] | None = Field(default=None, max_length=1000, description="None marks every notification read.")


def _out(view: GoldView) -> GoldOut:
    return GoldOut.model_validate(view, from_attributes=True)


@router.get("/projects/{slug}/gold")
def list_gold(slug: str, call: ApiCall) -> list[GoldOut]:
    """Leads: every gold answer of the project."""
    return [_out(view) for view in gold.list_gold_answers(call.session, principal=call.principal, slug=slug)]


@router.post("/projects/{slug}/gold")
def mark_gold_bulk(slug: str, body: list[GoldRowIn], call: ApiCall) -> BulkOut:
    """Leads: set many gold answers at once; if any row is wrong nothing is stored and every problem is listed."""
    rows = [
        GoldInput(
            external_id=row.external_id,
            answer=row.answer.verdict_input(),
            accepted=[alternative.verdict_input() for alternative in row.accepted],
            explanation=row.explanation,
        )
        for row in body
    ]
    return BulkOut(marked=gold.mark_gold_bulk(call.session, principal=call.principal, slug=slug, rows=rows))


@router.get("/projects/{slug}/items/{external_id:path}/gold")
def get_gold(slug: str, external_id: str, call: ApiCall) -> GoldOut:
    """Leads: an item's gold answer (404 when it has none)."""
    view = gold.get_gold_answer(call.session, principal=call.principal, slug=slug, external_id=external_id)
    if view is None:
        raise NotFound("gold_not_found", f"Item '{external_id}' has no gold answer.", field="external_id")
    return _out(view)


@router.put("/projects/{slug}/items/{external_id:path}/gold")
def put_gold(slug: str, external_id: str, body: GoldIn, call: ApiCall) -> GoldOut:
    """Leads: set or replace an item's gold answer; the item leaves the overlap queue."""
    view = gold.mark_gold(
        call.session,
        principal=call.principal,
        slug=slug,
        external_id=external_id,
        verdict_input=body.answer.verdict_input(),
        accepted=[alternative.verdict_input() for alternative in body.accepted],
        explanation=body.explanation,
    )
    return _out(view)


@router.delete("/projects/{slug}/items/{external_id:path}/gold", status_code=204)
def delete_gold(slug: str, external_id: str, call: ApiCall) -> Response:
    """Leads: remove an item's gold answer; it goes back to the overlap queue."""
    if not gold.remove_gold(call.session, principal=call.principal, slug=slug, external_id=external_id):
        raise NotFound("gold_not_found", f"Item '{external_id}' has no gold answer.", field="external_id")
    return Response(status_code=204)


@router.post("/projects/{slug}/members/{user_id}/resume")
def resume_member(slug: str, user_id: int, call: ApiCall) -> ResumedOut:
    """Leads: let an annotator paused on the gold floor work in the project again."""
    resumed = qualification.resume_member(call.session, principal=call.principal, slug=slug, user_id=user_id)
    return ResumedOut(resumed=resumed)


@router.get("/notifications")
def list_notifications(call: ApiCall) -> NotificationsOut:
    """Leads: the latest notifications, newest first."""
    found = notifications.my_notifications(call.session, principal=call.principal)
    return NotificationsOut(
        unread=found.unread,
        notifications=[NotificationOut.model_validate(n, from_attributes=True) for n in found.notifications],
    )


@router.post("/notifications/read")
def mark_read(body: MarkReadIn, call: ApiCall) -> dict[str, int]:
    """Leads: mark notifications read."""
    return {"marked": notifications.mark_read(call.session, principal=call.principal, notification_ids=body.ids)}
