"""JSON API v1: questions about a project's guidelines, the leads' answers and the answered log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.api.v1 import ERRORS
from app.deps import ApiCall
from app.services import clarifications
from app.services.clarifications import ClarificationView

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["clarifications"])


class QuestionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(max_length=clarifications.MAX_QUESTION_CHARS + 100)
    external_id: str | None = Field(default=None, max_length=200, description="The item it was raised from.")
    guidelines_version: int | None = Field(default=None, description="The version read (default: the current one).")


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: str = Field(max_length=clarifications.MAX_ANSWER_CHARS + 100)


class AbsorbIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[int] = Field(max_length=clarifications.MAX_ABSORB_IDS)
    version: int = Field(description="The guidelines version that took the answers in.")


class ClarificationOut(BaseModel):
    id: int
    project_slug: str
    item_external_id: str | None
    asked_by: str | None
    question: str
    asked_at: datetime
    guidelines_version: int
    state: str
    answer: str | None
    answered_by: str | None
    answered_at: datetime | None
    absorbed_in_version: int | None


class Scope(StrEnum):
    ALL = "all"
    MINE = "mine"
    ANSWERED = "answered"


def _out(view: ClarificationView) -> ClarificationOut:
    return ClarificationOut.model_validate(view, from_attributes=True)


@router.post("/projects/{slug}/clarifications", status_code=201)
def ask(slug: str, body: QuestionIn, call: ApiCall) -> ClarificationOut:
    """Ask a question about the guidelines; the same question sent again within seconds is stored once."""
    view = clarifications.ask(
        call.session,
        principal=call.principal,
        slug=slug,
        question=body.question,
        external_id=body.external_id,
        guidelines_version=body.guidelines_version,
        cache=call.context.project_cache,
    )
    return _out(view)


@router.get("/projects/{slug}/clarifications")
def list_clarifications(
    slug: str,
    call: ApiCall,
    scope: Scope | None = None,
    state: str | None = None,
    q: str | None = None,
    guidelines_version: int | None = None,
    before: int | None = None,
    limit: int = clarifications.DEFAULT_PAGE_SIZE,
) -> list[ClarificationOut]:
    """Newest first. `scope`: all (leads; their default), mine (annotators' default) or answered (the log).

    `q` matches part of the question or the answer; `guidelines_version` the version asked
    under or the one that absorbed it; pass the last id as `before` for the next page.
    """
    filters = clarifications.clarification_filters(state=state, q=q, guidelines_version=guidelines_version)
    chosen = scope or (Scope.ALL if call.principal.is_staff else Scope.MINE)
    if chosen is Scope.ALL:
        views = clarifications.list_all(
            call.session, principal=call.principal, slug=slug, filters=filters, before_id=before, limit=limit
        )
    elif chosen is Scope.MINE:
        views = clarifications.my_questions(
            call.session, principal=call.principal, slug=slug, filters=filters, before_id=before, limit=limit
        )
    else:
        views = clarifications.answered_log(
            call.session, principal=call.principal, slug=slug, filters=filters, before_id=before, limit=limit
        )
    return [_out(view) for view in views]


@router.post("/projects/{slug}/clarifications/absorb")
def absorb(slug: str, body: AbsorbIn, call: ApiCall) -> list[ClarificationOut]:
    """Leads: mark answered clarifications as absorbed by a guidelines version published after them."""
    views = clarifications.absorb(
        call.session, principal=call.principal, slug=slug, clarification_ids=body.ids, version=body.version
    )
    return [_out(view) for view in views]


@router.post("/projects/{slug}/clarifications/{clarification_id}/answer")
def answer(slug: str, clarification_id: int, body: AnswerIn, call: ApiCall) -> ClarificationOut:
    """Leads: answer a question, or replace the answer given."""
    view = clarifications.answer(
        call.session, principal=call.principal, slug=slug, clarification_id=clarification_id, text=body.answer
    )
    return _out(view)


@router.post("/projects/{slug}/clarifications/{clarification_id}/dismiss")
def dismiss(slug: str, clarification_id: int, call: ApiCall) -> ClarificationOut:
    """Leads: close an open question without an answer."""
    view = clarifications.dismiss(call.session, principal=call.principal, slug=slug, clarification_id=clarification_id)
    return _out(view)
