"""JSON API v1: the arbitration queue, one case with every judgment, final verdicts (leads and admins)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas import ScoreValue, Strength
from app.api.v1 import ERRORS
from app.deps import ApiCall
from app.services import arbitration
from app.services.arbitration import CaseSummary, Outcome
from app.services.verdicts import MAX_RATIONALE_CHARS, VerdictInput

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["arbitration"])


class VerdictIn(BaseModel):
    """The final verdict, responses named A, B, C... in stored position order (A is position 0).

    pairwise: choice (and optional strength); rubric: scores (and choice when the project asks
    for an overall choice); ranking: ranking (best first, ties grouped) or all_bad.
    """

    model_config = ConfigDict(extra="forbid")

    choice: Literal["A", "B", "tie", "both_bad"] | None = None
    strength: Strength | None = None
    scores: dict[str, dict[str, ScoreValue]] = Field(default_factory=dict)
    ranking: list[list[str]] = Field(default_factory=list)
    all_bad: bool = False
    rationale: str = Field(max_length=MAX_RATIONALE_CHARS + 100, description="Why this is the final verdict.")


class DismissIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rationale: str | None = Field(default=None, max_length=MAX_RATIONALE_CHARS + 100)


class CaseOut(BaseModel):
    id: int
    external_id: str
    reason: str
    state: str
    agreement: float | None
    judgments: int
    extended_by: int
    language: str | None
    market: str | None
    category: str | None
    opened_at: datetime
    resolved_at: datetime | None
    verdict: str | None


class QueueOut(BaseModel):
    counts: dict[str, int]
    cases: list[CaseOut]
    next_after: str | None


class OutcomeOut(BaseModel):
    case: CaseOut
    next_case_id: int | None


class OpenedOut(BaseModel):
    case_id: int
    created: bool


def _case(view: CaseSummary) -> CaseOut:
    return CaseOut.model_validate(view, from_attributes=True)


def _outcome(outcome: Outcome) -> OutcomeOut:
    return OutcomeOut(case=_case(outcome.case), next_case_id=outcome.next_id)


@router.get("/projects/{slug}/arbitration")
def list_cases(
    slug: str,
    call: ApiCall,
    state: str = "open",
    reason: str | None = None,
    language: str = "",
    market: str = "",
    category: str = "",
    after: str | None = None,
    limit: int = arbitration.DEFAULT_PAGE_SIZE,
) -> QueueOut:
    """Cases oldest opened first; `state` open (default), resolved, dismissed or all; pass `next_after` as `after`."""
    filters = arbitration.case_filters(state=state, reason=reason, language=language, market=market, category=category)
    page = arbitration.list_queue(
        call.session, principal=call.principal, slug=slug, filters=filters, after=after, limit=limit, with_facets=False
    )
    return QueueOut(counts=page.counts, cases=[_case(case) for case in page.cases], next_after=page.next_after)


@router.get("/projects/{slug}/arbitration/{case_id}")
def get_case(slug: str, case_id: int, call: ApiCall) -> dict[str, Any]:
    """A case with every judgment (positions as stored), each annotator's record, the gold answer and the verdict."""
    detail = arbitration.case_detail(call.session, principal=call.principal, slug=slug, case_id=case_id)
    item = detail.item
    return {
        "case": _case(detail.case).model_dump(mode="json"),
        "item": {
            "external_id": item.external_id,
            "messages": item.messages,
            "responses": [asdict(response) for response in item.responses],
            "metadata": item.metadata,
        },
        "judgments": [
            {
                "judgment_id": judgment.judgment_id,
                "annotator": judgment.annotator_name,
                "team": judgment.annotator_team,
                "created_at": judgment.created_at.isoformat(),
                "time_spent_ms": judgment.time_spent_ms,
                "guidelines_version": judgment.guidelines_version,
                "verdict": asdict(judgment.verdict),
                "annotator_history": asdict(detail.histories[judgment.judgment_id])
                if judgment.judgment_id in detail.histories
                else None,
            }
            for judgment in item.judgments
        ],
        "gold": asdict(detail.gold) if detail.gold else None,
        "final_verdict": asdict(detail.verdict) if detail.verdict else None,
        "rationale": detail.rationale,
    }


@router.post("/projects/{slug}/arbitration/{case_id}/verdict")
def record_verdict(slug: str, case_id: int, body: VerdictIn, call: ApiCall) -> OutcomeOut:
    """Record (or change) the final verdict of a case; the item's judgments stay as they are."""
    outcome = arbitration.record_verdict(
        call.session,
        principal=call.principal,
        slug=slug,
        case_id=case_id,
        submitted=VerdictInput(**body.model_dump()),
    )
    return _outcome(outcome)


@router.post("/projects/{slug}/arbitration/{case_id}/dismiss")
def dismiss(slug: str, case_id: int, body: DismissIn, call: ApiCall) -> OutcomeOut:
    """Close an open case without a verdict: the item is exported by the usual aggregation."""
    outcome = arbitration.dismiss_case(
        call.session, principal=call.principal, slug=slug, case_id=case_id, rationale=body.rationale
    )
    return _outcome(outcome)


@router.post("/projects/{slug}/items/{external_id:path}/arbitration", status_code=201)
def open_case(slug: str, external_id: str, call: ApiCall) -> OpenedOut:
    """Open a case for an item by hand (reason `manual`); an item that has a case keeps it (`created` false)."""
    opened = arbitration.open_manually(call.session, principal=call.principal, slug=slug, external_id=external_id)
    return OpenedOut(case_id=opened.case_id, created=opened.created)
