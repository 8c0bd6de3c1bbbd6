"""The leads' item browser: a project's items with filters, and one item with every judgment.

Staff only: annotators never see other people's judgments. Verdicts are shown in stored
response positions ("Response 1" is position 0), never in the labels one annotator saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.principal import Principal
from app.services.project_options import ProjectOptions, scale_key
from app.services.projects import cached_options, get_project
from preference_store import browse
from preference_store import items as item_store
from preference_store import judgments as judgment_store
from preference_store.browse import ItemFilters, ItemState
from preference_store.models import ProjectKind
from preference_store.projects import ProjectRow

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
EXCERPT_CHARS = 140
STATES = tuple(state.value for state in ItemState)
MAX_QUERY_CHARS = 200


@dataclass(frozen=True, slots=True)
class VerdictShare:
    """One distinct verdict on an item and how many judgments gave it."""

    verdict: str
    count: int


@dataclass(frozen=True, slots=True)
class ItemSummary:
    """An item as one row of the list."""

    external_id: str
    language: str | None
    market: str | None
    category: str | None
    judgments: int
    overlap: int
    verdicts: list[VerdictShare]
    has_disagreement: bool
    state: str
    prompt_excerpt: str
    sensitive: bool


@dataclass(frozen=True, slots=True)
class Facets:
    """The values the filter dropdowns offer, as found in the project's items."""

    languages: list[str]
    markets: list[str]
    categories: list[str]


@dataclass(frozen=True, slots=True)
class ItemPage:
    project_slug: str
    project_name: str
    kind: str
    overlap: int
    filters: ItemFilters
    limit: int
    items: list[ItemSummary]
    next_after: int | None
    """Pass as `after` for the next page; None on the last page."""
    facets: Facets | None


@dataclass(frozen=True, slots=True)
class DetailResponse:
    position: int
    model_name: str
    content: str
    sensitive: bool


@dataclass(frozen=True, slots=True)
class ResponseLabels:
    position: int
    labels: list[str]


@dataclass(frozen=True, slots=True)
class ScoreLine:
    """One rubric criterion: the score given to each response, in position order (None: not scored)."""

    criterion: str
    scores: list[str | None]


@dataclass(frozen=True, slots=True)
class Rewrite:
    position: int
    content: str


@dataclass(frozen=True, slots=True)
class ReadableVerdict:
    """A stored verdict in response positions; which fields are set depends on the kind."""

    verdict: str
    outcome: str | None
    """pairwise (and rubric with an overall choice): preferred, tie or both_bad."""
    preferred_position: int | None
    strength: str | None
    labels: list[ResponseLabels]
    scores: list[ScoreLine]
    ranking: list[list[int]]
    """Best first; a group holds tied positions."""
    all_bad: bool
    rationale: str | None
    rewrite: Rewrite | None


@dataclass(frozen=True, slots=True)
class EarlierVersion:
    revision: int
    verdict: ReadableVerdict
    time_spent_ms: int | None
    guidelines_version: int
    made_at: datetime
    replaced_at: datetime


@dataclass(frozen=True, slots=True)
class JudgmentDetail:
    judgment_id: int
    annotator_name: str
    annotator_team: str | None
    created_at: datetime
    revised_at: datetime | None
    revision: int
    time_spent_ms: int | None
    guidelines_version: int
    verdict: ReadableVerdict
    history: list[EarlierVersion]
    """Earlier versions, oldest first."""


@dataclass(frozen=True, slots=True)
class ItemDetail:
    project_slug: str
    project_name: str
    kind: str
    overlap: int
    external_id: str
    language: str | None
    market: str | None
    category: str | None
    sensitive: bool
    metadata: dict[str, Any]
    messages: list[dict[str, Any]]
    responses: list[DetailResponse]
    judgments: list[JudgmentDetail]
    distinct_verdicts: int


def item_filters(
    *,
    language: str | None = None,
    market: str | None = None,
    category: str | None = None,
    state: str | None = None,
    has_disagreement: bool | None = None,
    q: str | None = None,
) -> ItemFilters:
    """Check filter values (empty strings mean no filter) and build the filters."""
    if state and state not in STATES:
        raise InvalidInput("invalid_state", f"state must be one of {', '.join(STATES)}.", field="state")
    if q and len(q) > MAX_QUERY_CHARS:
        raise InvalidInput("invalid_query", f"q is limited to {MAX_QUERY_CHARS} characters.", field="q")
    return ItemFilters(
        language=language or None,
        market=market or None,
        category=category or None,
        state=ItemState(state) if state else None,
        has_disagreement=has_disagreement,
        q=q.strip() or None if q else None,
    )


def _staff_project(session: Session, *, principal: Principal, slug: str) -> ProjectRow:
    principal.require_staff()
    return get_project(session, principal=principal, slug=slug)


def list_items(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    filters: ItemFilters,
    after: int | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    with_facets: bool = True,
) -> ItemPage:
    """A page of the project's items matching the filters, in id order (leads and admins).

    Three queries whatever the page size (project, page, judgment counts), plus one
    grouped query per facet when `with_facets`.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput("invalid_limit", f"limit must be between 1 and {MAX_PAGE_SIZE}.", field="limit")
    if after is not None and after < 0:
        raise InvalidInput("invalid_after", "after must be an item id from next_after.", field="after")
    project = _staff_project(session, principal=principal, slug=slug)
    options = cached_options(project)
    rows = browse.list_items(session, project_id=project.id, filters=filters, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    counts = browse.verdict_counts(session, project_id=project.id, item_ids=[row.id for row in page])
    facets = None
    if with_facets:
        found = {key: browse.facet_values(session, project_id=project.id, key=key) for key in browse.FACETS}
        facets = Facets(languages=found["language"], markets=found["market"], categories=found["category"])
    return ItemPage(
        project_slug=project.slug,
        project_name=project.name,
        kind=project.kind.value,
        overlap=project.overlap,
        filters=filters,
        limit=limit,
        items=[_summary(row, counts.get(row.id, []), project, options) for row in page],
        next_after=page[-1].id if more and page else None,
        facets=facets,
    )


def _summary(
    row: browse.ItemListRow, counts: list[browse.VerdictCount], project: ProjectRow, options: ProjectOptions
) -> ItemSummary:
    judgments = sum(count.count for count in counts)
    if judgments == 0:
        state = ItemState.OPEN
    elif row.open_slots > 0 or row.has_lease:
        state = ItemState.IN_PROGRESS
    else:
        state = ItemState.COMPLETE
    return ItemSummary(
        external_id=row.external_id,
        language=_text(row.metadata, "language"),
        market=_text(row.metadata, "market"),
        category=_text(row.metadata, "category"),
        judgments=judgments,
        overlap=project.overlap,
        verdicts=[VerdictShare(count.verdict, count.count) for count in counts],
        has_disagreement=len(counts) > 1,
        state=state.value,
        prompt_excerpt=prompt_excerpt(row.messages),
        sensitive=_is_sensitive(row.is_sensitive, row.metadata, options),
    )


def _text(metadata: dict[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    return None if value is None or value == "" else str(value)


def _is_sensitive(flagged: bool, metadata: dict[str, Any], options: ProjectOptions) -> bool:
    return flagged or metadata.get("category") in options.sensitive_categories


def prompt_excerpt(messages: list[dict[str, Any]], *, chars: int = EXCERPT_CHARS) -> str:
    """The last user turn as one short line of plain text."""
    turns = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"] or list(messages)
    text = " ".join(str(turns[-1].get("content", "")).split()) if turns else ""
    return text if len(text) <= chars else text[: chars - 1].rstrip() + "…"


def item_detail(session: Session, *, principal: Principal, slug: str, external_id: str) -> ItemDetail:
    """One item with its responses and every judgment, its annotator and its history (leads and admins)."""
    project = _staff_project(session, principal=principal, slug=slug)
    options = cached_options(project)
    item_id = browse.item_id_by_external_id(session, project_id=project.id, external_id=external_id)
    content = item_store.load_item_content(session, item_id=item_id) if item_id is not None else None
    if content is None:
        raise NotFound("item_not_found", f"No item '{external_id}' in project '{slug}'.", field="external_id")
    rows = judgment_store.judgments_of_item(session, item_id=content.id)
    history = judgment_store.revisions_of(session, judgment_ids=[row.id for row in rows])
    people = browse.annotators(session, user_ids=[row.annotator_id for row in rows])
    sensitive = _is_sensitive(content.is_sensitive, content.metadata, options)
    positions = [response.position for response in content.responses]
    judgments = []
    for row in rows:
        person = people.get(row.annotator_id)
        judgments.append(
            JudgmentDetail(
                judgment_id=row.id,
                annotator_name=person.name if person else f"#{row.annotator_id}",
                annotator_team=person.team if person else None,
                created_at=row.created_at,
                revised_at=row.revised_at,
                revision=row.revision,
                time_spent_ms=row.time_spent_ms,
                guidelines_version=row.guidelines_version,
                verdict=readable_verdict(
                    row.payload, row.verdict, kind=project.kind, options=options, positions=positions
                ),
                history=[
                    EarlierVersion(
                        revision=old.revision,
                        verdict=readable_verdict(
                            old.payload, old.verdict, kind=project.kind, options=options, positions=positions
                        ),
                        time_spent_ms=old.time_spent_ms,
                        guidelines_version=old.guidelines_version,
                        made_at=old.made_at,
                        replaced_at=old.replaced_at,
                    )
                    for old in history.get(row.id, [])
                ],
            )
        )
    return ItemDetail(
        project_slug=project.slug,
        project_name=project.name,
        kind=project.kind.value,
        overlap=project.overlap,
        external_id=content.external_id,
        language=_text(content.metadata, "language"),
        market=_text(content.metadata, "market"),
        category=_text(content.metadata, "category"),
        sensitive=sensitive,
        metadata=content.metadata,
        messages=content.messages,
        responses=[
            DetailResponse(
                position=response.position,
                model_name=response.model_name,
                content=response.content,
                sensitive=sensitive or response.metadata.get("sensitive") is True,
            )
            for response in content.responses
        ],
        judgments=judgments,
        distinct_verdicts=len({row.verdict for row in rows}),
    )


def readable_verdict(
    payload: dict[str, Any], verdict: str, *, kind: ProjectKind, options: ProjectOptions, positions: list[int]
) -> ReadableVerdict:
    """A stored payload laid out for reading, in stored response positions."""
    choice = payload.get("choice")
    preferred = payload.get("preferred_position")
    outcome = None
    if choice is not None:
        outcome = "preferred" if preferred is not None else str(choice)
    rewrite = payload.get("rewrite")
    return ReadableVerdict(
        verdict=verdict,
        outcome=outcome,
        preferred_position=preferred,
        strength=payload.get("strength"),
        labels=[
            ResponseLabels(int(position), list(values))
            for position, values in sorted((payload.get("labels") or {}).items(), key=lambda entry: int(entry[0]))
        ],
        scores=_score_lines(payload.get("scores") or {}, options, positions) if kind is ProjectKind.RUBRIC else [],
        ranking=[list(group) for group in payload.get("ranking") or []],
        all_bad=bool(payload.get("all_bad", False)),
        rationale=payload.get("rationale"),
        rewrite=Rewrite(int(rewrite["position"]), str(rewrite["content"])) if rewrite else None,
    )


def _score_lines(scores: dict[str, dict[str, Any]], options: ProjectOptions, positions: list[int]) -> list[ScoreLine]:
    names = [criterion.name for criterion in options.rubric]
    # Criteria dropped from the rubric since keep their scores on the page.
    names += sorted({name for given in scores.values() for name in given} - set(names))
    return [
        ScoreLine(
            criterion=name,
            scores=[
                scale_key(scores[str(position)][name]) if name in scores.get(str(position), {}) else None
                for position in positions
            ],
        )
        for name in names
    ]
