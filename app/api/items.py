"""JSON API v1 for leads: browse a project's items and read every judgment of one item."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from app.api.v1 import ERRORS
from app.deps import ApiCall
from app.services import item_browser

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["items"])


class VerdictShareOut(BaseModel):
    verdict: str
    count: int


class ItemSummaryOut(BaseModel):
    external_id: str
    language: str | None
    market: str | None
    category: str | None
    judgments: int
    overlap: int
    verdicts: list[VerdictShareOut]
    has_disagreement: bool
    state: str
    prompt_excerpt: str
    sensitive: bool


class FacetsOut(BaseModel):
    languages: list[str]
    markets: list[str]
    categories: list[str]


class FiltersOut(BaseModel):
    language: str | None
    market: str | None
    category: str | None
    state: str | None
    has_disagreement: bool | None
    q: str | None


class ItemPageOut(BaseModel):
    project_slug: str
    kind: str
    overlap: int
    filters: FiltersOut
    limit: int
    items: list[ItemSummaryOut]
    next_after: int | None
    facets: FacetsOut | None


class ResponseOut(BaseModel):
    position: int
    model_name: str
    content: str
    sensitive: bool


class ResponseLabelsOut(BaseModel):
    position: int
    labels: list[str]


class ScoreLineOut(BaseModel):
    criterion: str
    scores: list[str | None]


class RewriteOut(BaseModel):
    position: int
    content: str


class ReadableVerdictOut(BaseModel):
    """A verdict in stored response positions (0 is the first response)."""

    verdict: str
    outcome: str | None
    preferred_position: int | None
    strength: str | None
    labels: list[ResponseLabelsOut]
    scores: list[ScoreLineOut]
    ranking: list[list[int]]
    all_bad: bool
    rationale: str | None
    rewrite: RewriteOut | None


class EarlierVersionOut(BaseModel):
    revision: int
    verdict: ReadableVerdictOut
    time_spent_ms: int | None
    guidelines_version: int
    made_at: datetime
    replaced_at: datetime


class ItemJudgmentOut(BaseModel):
    judgment_id: int
    annotator_name: str
    annotator_team: str | None
    created_at: datetime
    revised_at: datetime | None
    revision: int
    time_spent_ms: int | None
    guidelines_version: int
    verdict: ReadableVerdictOut
    history: list[EarlierVersionOut]


class ItemDetailOut(BaseModel):
    project_slug: str
    kind: str
    overlap: int
    external_id: str
    language: str | None
    market: str | None
    category: str | None
    sensitive: bool
    metadata: dict[str, Any]
    messages: list[dict[str, Any]]
    responses: list[ResponseOut]
    judgments: list[ItemJudgmentOut]
    distinct_verdicts: int


@router.get("/projects/{slug}/items")
def list_items(
    slug: str,
    call: ApiCall,
    language: str | None = None,
    market: str | None = None,
    category: str | None = None,
    state: str | None = None,
    has_disagreement: bool | None = None,
    q: str | None = None,
    after: int | None = None,
    limit: int = item_browser.DEFAULT_PAGE_SIZE,
    facets: bool = False,
) -> ItemPageOut:
    """Leads: the project's items in id order, filtered; pass `next_after` back as `after` for the next page.

    `state` is open (no judgment yet), in_progress or complete; `has_disagreement` true keeps
    items with at least two distinct verdicts, false those judged with one; `q` matches part
    of the external id; `facets=true` adds the languages, markets and categories found.
    """
    filters = item_browser.item_filters(
        language=language, market=market, category=category, state=state, has_disagreement=has_disagreement, q=q
    )
    page = item_browser.list_items(
        call.session, principal=call.principal, slug=slug, filters=filters, after=after, limit=limit, with_facets=facets
    )
    return ItemPageOut(
        project_slug=page.project_slug,
        kind=page.kind,
        overlap=page.overlap,
        filters=FiltersOut(
            language=filters.language,
            market=filters.market,
            category=filters.category,
            state=filters.state.value if filters.state else None,
            has_disagreement=filters.has_disagreement,
            q=filters.q,
        ),
        limit=page.limit,
        items=[ItemSummaryOut.model_validate(item, from_attributes=True) for item in page.items],
        next_after=page.next_after,
        facets=FacetsOut.model_validate(page.facets, from_attributes=True) if page.facets else None,
    )


@router.get("/projects/{slug}/items/{external_id:path}")
def item_detail(slug: str, external_id: str, call: ApiCall) -> ItemDetailOut:
    """Leads: one item with its responses and every judgment, its annotator and its earlier versions."""
    detail = item_browser.item_detail(call.session, principal=call.principal, slug=slug, external_id=external_id)
    return ItemDetailOut.model_validate(detail, from_attributes=True)
