"""Arbitration: disputed items enter a queue, a lead records the final verdict, exports use it.

An item is disputed when its last judgment is in and either its agreement (the modal
verdict's share of its judgments, see `measure`) is below the project's `min_agreement`,
or it has a gold answer its majority verdict is not accepted by. Adaptive overlap first
gives a disputed item `extra_annotators` more judgments, once; a case opens when it is
still disputed after them. Raw judgments are never changed: the verdict lives on the case.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.principal import Principal
from app.services import audit, item_browser
from app.services.project_options import STRENGTHS, ArbitrationOptions, ProjectOptions, scale_key
from app.services.projects import cached_options, get_project
from app.services.verdicts import MAX_RATIONALE_CHARS, VerdictInput, build_verdict
from preference_store import arbitration as store
from preference_store import browse, queue
from preference_store import judgments as judgment_store
from preference_store.base import utcnow
from preference_store.models import ArbitrationReason, ArbitrationState, ProjectKind
from preference_store.projects import ProjectRow

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
REASONS = tuple(reason.value for reason in ArbitrationReason)
STATES = tuple(state.value for state in ArbitrationState)
_EPSILON = 1e-9


# ---- agreement: pure ----


@dataclass(frozen=True, slots=True)
class Agreement:
    """How far an item's judgments agree."""

    share: float
    """The modal decision's share of the judgments (rubric without a choice: mean over criteria)."""
    majority: str | None
    """The most frequent full verdict key (first given on a tie); None without judgments."""


def decision_key(kind: ProjectKind, verdict: str) -> str:
    """The part of a verdict key agreement is measured on.

    Pairwise: the whole key (preferred position, tie or both_bad; strength left out). Rubric
    with an overall choice: the choice. Ranking: the top choice (or all_bad).
    """
    if kind is ProjectKind.RUBRIC:
        return verdict.split("|", 1)[0]
    if kind is ProjectKind.RANKING:
        return "all_bad" if verdict.startswith("all_bad") else verdict.split(">", 1)[0]
    return verdict


def measure(kind: ProjectKind, verdicts: list[str], payloads: list[dict[str, Any]]) -> Agreement:
    """Agreement of one item's judgments (verdict keys and payloads in parallel).

    Rubric judgments without an overall choice agree criterion by criterion: the share is the
    mean, over every (response, criterion) scored, of the modal score's share.
    """
    if not verdicts:
        return Agreement(0.0, None)
    majority = Counter(verdicts).most_common(1)[0][0]
    if kind is ProjectKind.RUBRIC and not any(verdict.startswith(("p", "tie", "both_bad")) for verdict in verdicts):
        return Agreement(_criteria_share(payloads), majority)
    keys = Counter(decision_key(kind, verdict) for verdict in verdicts)
    return Agreement(keys.most_common(1)[0][1] / len(verdicts), majority)


def _criteria_share(payloads: list[dict[str, Any]]) -> float:
    given: dict[tuple[str, str], list[str]] = {}
    for payload in payloads:
        for position, scores in (payload.get("scores") or {}).items():
            for name, value in scores.items():
                given.setdefault((position, name), []).append(repr(value))
    shares = [Counter(values).most_common(1)[0][1] / len(values) for values in given.values() if values]
    return sum(shares) / len(shares) if shares else 1.0


def _disputed(agreement: Agreement, options: ArbitrationOptions, gold: set[str] | None) -> ArbitrationReason | None:
    if gold is not None and agreement.majority is not None and agreement.majority not in gold:
        return ArbitrationReason.AGAINST_GOLD
    if agreement.share + _EPSILON < options.min_agreement:
        return ArbitrationReason.LOW_AGREEMENT
    return None


@dataclass(frozen=True, slots=True)
class Settled:
    """What the opening rule did with a complete item: `opened`, `extended` or `agreed`."""

    outcome: str
    case_id: int | None = None
    added_slots: int = 0


def _settle(
    session: Session,
    *,
    project: ProjectRow,
    options: ArbitrationOptions,
    item_id: int,
    votes: list[store.ItemVote],
    gold: set[str] | None,
    now: datetime,
) -> Settled:
    agreement = measure(project.kind, [vote.verdict for vote in votes], [vote.payload for vote in votes])
    reason = _disputed(agreement, options, gold)
    if reason is None:
        return Settled("agreed")
    count = len(votes)
    # Gold items are served to every annotator outside the overlap queue: no slots to add.
    extendable = gold is None and options.extra_annotators and count <= project.overlap
    if reason is ArbitrationReason.LOW_AGREEMENT and extendable:
        room = options.extra_annotators if options.max_overlap is None else options.max_overlap - count
        extra = min(options.extra_annotators, room)
        if extra > 0 and queue.add_slots(session, item_id=item_id, count=extra):
            return Settled("extended", added_slots=extra)
    case_id = store.open_case(
        session,
        project_id=project.id,
        item_id=item_id,
        reason=reason,
        agreement=agreement.share,
        judgments=count,
        extended_by=max(count - project.overlap, 0),
        opened_by_id=None,
        now=now,
    )
    return Settled("opened", case_id=case_id) if case_id is not None else Settled("agreed")


def after_judgment(
    session: Session, *, project: ProjectRow, item_id: int, now: datetime, seen: tuple[int | None, bool] | None = None
) -> Settled | None:
    """The submit hook: when the item's last judgment just came in, open a case or add annotators.

    Cheap when it does nothing: one primary-key read (none with `seen`, what the submission's
    statement read of the item: `store.item_is_complete`); one more statement after the item's
    last judgment. Does not commit (the submission does).
    """
    options = cached_options(project).arbitration
    if not options.active(project.overlap) or not store.item_is_complete(session, item_id=item_id, seen=seen):
        return None
    unsettled = store.unsettled_votes(session, project_id=project.id, item_id=item_id)
    if unsettled is None:
        return None
    votes, gold = unsettled
    return _settle(session, project=project, options=options, item_id=item_id, votes=votes, gold=gold, now=now)


def judgment_hook_idle(project: ProjectRow) -> bool:
    """Whether `after_judgment` does nothing in this project, whatever the item."""
    return not cached_options(project).arbitration.active(project.overlap)


# ---- use cases ----


@dataclass(frozen=True, slots=True)
class ScanSummary:
    items_checked: int
    opened: int
    extended: int


def scan_project(session: Session, *, principal: Principal, slug: str, now: datetime | None = None) -> ScanSummary:
    """Apply the opening rule to every complete item without a case (items judged before arbitration was on)."""
    project = _staff_project(session, principal=principal, slug=slug)
    options = cached_options(project).arbitration
    now = now or utcnow()
    gold = store.gold_of_project(session, project_id=project.id)
    outcomes: Counter[str] = Counter()
    complete = list(store.iter_complete_unarbitrated(session, project_id=project.id))
    for item_id, votes in complete:
        settled = _settle(
            session, project=project, options=options, item_id=item_id, votes=votes, gold=gold.get(item_id), now=now
        )
        outcomes[settled.outcome] += 1
    session.commit()
    return ScanSummary(items_checked=len(complete), opened=outcomes["opened"], extended=outcomes["extended"])


def _staff_project(session: Session, *, principal: Principal, slug: str) -> ProjectRow:
    principal.require_staff()
    return get_project(session, principal=principal, slug=slug)


@dataclass(frozen=True, slots=True)
class CaseSummary:
    """A case as one row of the queue."""

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


@dataclass(frozen=True, slots=True)
class QueuePage:
    project_slug: str
    project_name: str
    kind: str
    counts: dict[str, int]
    filters: store.CaseFilters
    cases: list[CaseSummary]
    next_after: str | None
    """Pass as `after` for the next page; None on the last page."""
    facets: item_browser.Facets | None


def case_filters(
    *, state: str | None = "open", reason: str | None = None, language: str = "", market: str = "", category: str = ""
) -> store.CaseFilters:
    """Check filter values (empty strings mean no filter)."""
    if state and state not in STATES and state != "all":
        raise InvalidInput("invalid_state", f"state must be one of {', '.join(STATES)} or all.", field="state")
    if reason and reason not in REASONS:
        raise InvalidInput("invalid_reason", f"reason must be one of {', '.join(REASONS)}.", field="reason")
    return store.CaseFilters(
        state=ArbitrationState(state) if state and state != "all" else None,
        reason=ArbitrationReason(reason) if reason else None,
        language=language.strip() or None,
        market=market.strip() or None,
        category=category.strip() or None,
    )


def _cursor(after: str | None) -> tuple[datetime, int] | None:
    if not after:
        return None
    moment, _, case_id = after.rpartition("_")
    try:
        return datetime.fromisoformat(moment), int(case_id)
    except ValueError as error:
        raise InvalidInput("invalid_after", "after must be a next_after value.", field="after") from error


def _summary(row: store.CaseRow) -> CaseSummary:
    return CaseSummary(
        id=row.id,
        external_id=row.external_id,
        reason=row.reason.value,
        state=row.state.value,
        agreement=row.agreement,
        judgments=row.judgments,
        extended_by=row.extended_by,
        language=_text(row.metadata, "language"),
        market=_text(row.metadata, "market"),
        category=_text(row.metadata, "category"),
        opened_at=row.opened_at,
        resolved_at=row.resolved_at,
        verdict=row.verdict,
    )


def _text(metadata: dict[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    return None if value is None or value == "" else str(value)


def list_queue(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    filters: store.CaseFilters,
    after: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    with_facets: bool = True,
) -> QueuePage:
    """A page of the project's cases, oldest opened first, with counts per state (leads and admins)."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput("invalid_limit", f"limit must be between 1 and {MAX_PAGE_SIZE}.", field="limit")
    project = _staff_project(session, principal=principal, slug=slug)
    rows = store.list_cases(session, project_id=project.id, filters=filters, after=_cursor(after), limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    facets = None
    if with_facets:
        found = {key: browse.facet_values(session, project_id=project.id, key=key) for key in browse.FACETS}
        facets = item_browser.Facets(languages=found["language"], markets=found["market"], categories=found["category"])
    last = page[-1] if page else None
    return QueuePage(
        project_slug=project.slug,
        project_name=project.name,
        kind=project.kind.value,
        counts=store.count_by_state(session, project_id=project.id),
        filters=filters,
        cases=[_summary(row) for row in page],
        next_after=f"{last.opened_at.isoformat()}_{last.id}" if more and last else None,
        facets=facets,
    )


@dataclass(frozen=True, slots=True)
class AnnotatorHistory:
    """An annotator's record in the project, shown beside each of their judgments."""

    judgments: int
    agreement_rate: float | None
    """Share of their judgments (on items judged twice or more) that agree with the item's majority."""
    gold_judged: int
    gold_accuracy: float | None


@dataclass(frozen=True, slots=True)
class Criterion:
    name: str
    values: list[str]


@dataclass(frozen=True, slots=True)
class CaseDetail:
    """A case with its item, every judgment, each annotator's record, the gold answer and the verdict form."""

    case: CaseSummary
    item: item_browser.ItemDetail
    histories: dict[int, AnnotatorHistory]
    """By judgment id."""
    verdict: item_browser.ReadableVerdict | None
    rationale: str | None
    gold: item_browser.ReadableVerdict | None
    gold_explanation: str
    previous_id: int | None
    next_id: int | None
    strengths: list[str]
    criteria: list[Criterion]
    overall_choice: bool


def case_detail(session: Session, *, principal: Principal, slug: str, case_id: int) -> CaseDetail:
    """One case for the lead who settles it (leads and admins)."""
    project = _staff_project(session, principal=principal, slug=slug)
    row = _case(session, project=project, case_id=case_id)
    item = item_browser.item_detail(session, principal=principal, slug=slug, external_id=row.external_id)
    options = cached_options(project)
    positions = [response.position for response in item.responses]
    annotator_of = {
        judgment.id: judgment.annotator_id
        for judgment in judgment_store.judgments_of_item(session, item_id=row.item_id)
    }
    records = store.annotator_records(session, project_id=project.id, annotator_ids=sorted(set(annotator_of.values())))
    histories = {}
    for judgment_id, annotator_id in annotator_of.items():
        record = records.get(annotator_id)
        if record is None:
            continue
        histories[judgment_id] = AnnotatorHistory(
            judgments=record.judgments,
            agreement_rate=record.agreeing / record.compared if record.compared else None,
            gold_judged=record.gold_judged,
            gold_accuracy=record.gold_correct / record.gold_judged if record.gold_judged else None,
        )
    gold = store.gold_answer(session, item_id=row.item_id)
    previous_id, next_id = store.neighbours(session, project_id=project.id, opened_at=row.opened_at, case_id=row.id)

    def readable(payload: dict[str, Any], verdict: str) -> item_browser.ReadableVerdict:
        return item_browser.readable_verdict(payload, verdict, kind=project.kind, options=options, positions=positions)

    return CaseDetail(
        case=_summary(row),
        item=item,
        histories=histories,
        verdict=readable(row.payload, row.verdict or "") if row.payload is not None else None,
        rationale=row.rationale,
        gold=readable(gold[1], gold[0]) if gold else None,
        gold_explanation=gold[2] if gold else "",
        previous_id=previous_id,
        next_id=next_id,
        strengths=list(STRENGTHS),
        criteria=[
            Criterion(criterion.name, [scale_key(value) for value in criterion.scale.values()])
            for criterion in options.rubric
        ],
        overall_choice=options.rubric_overall_choice and len(positions) == 2,
    )


def _case(session: Session, *, project: ProjectRow, case_id: int) -> store.CaseRow:
    row = store.get_case(session, project_id=project.id, case_id=case_id)
    if row is None:
        raise NotFound("case_not_found", f"No arbitration case {case_id} in project '{project.slug}'.", field="case_id")
    return row


def _rationale(text: str | None, *, required: bool) -> str | None:
    rationale = (text or "").strip() or None
    if rationale is None and required:
        raise InvalidInput("rationale_required", "Say why this is the final verdict.", field="rationale")
    if rationale is not None and len(rationale) > MAX_RATIONALE_CHARS:
        raise InvalidInput(
            "rationale_too_long", f"rationale is limited to {MAX_RATIONALE_CHARS} characters.", field="rationale"
        )
    return rationale


@dataclass(frozen=True, slots=True)
class Outcome:
    """A case after a lead acted on it, and the open case to go to next (None: queue empty)."""

    case: CaseSummary
    next_id: int | None


def record_verdict(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    case_id: int,
    submitted: VerdictInput,
    now: datetime | None = None,
) -> Outcome:
    """Record the final verdict of a case: responses named A, B, C... in stored position order.

    The verdict is checked like an annotator's (`build_verdict` with the identity order),
    except that strength is optional and labels and rewrites do not apply; the rationale
    is required.
    """
    project = _staff_project(session, principal=principal, slug=slug)
    row = _case(session, project=project, case_id=case_id)
    if row.state is ArbitrationState.DISMISSED:
        raise Conflict("case_dismissed", "This case was dismissed.", field="case_id")
    rationale = _rationale(submitted.rationale, required=True)
    if submitted.labels or submitted.rewrite:
        raise InvalidInput("invalid_verdict", "A final verdict takes no labels or rewrite.", field="labels")
    options = cached_options(project)
    positions = _positions(session, item_id=row.item_id)
    verdict = build_verdict(
        VerdictInput(
            choice=submitted.choice,
            strength=submitted.strength or None,
            scores=submitted.scores,
            ranking=submitted.ranking,
            all_bad=submitted.all_bad,
        ),
        kind=project.kind,
        options=_arbiter_options(options, with_strength=bool(submitted.strength)),
        shown_order=positions,
    )
    payload = {**verdict.payload, "rationale": rationale}
    now = now or utcnow()
    if not store.resolve(
        session,
        case_id=row.id,
        verdict=verdict.key,
        payload=payload,
        rationale=rationale or "",
        resolved_by_id=principal.id,
        now=now,
    ):
        session.rollback()
        raise Conflict("case_closed", "This case was dismissed meanwhile.", field="case_id")
    audit.record(
        session,
        principal=principal,
        action="arbitration.verdict",
        project_id=project.id,
        target_type="arbitration_case",
        target_id=row.id,
        details={
            "before": {"state": row.state.value, "verdict": row.verdict},
            "verdict": verdict.key,
            "rationale": rationale,
        },
    )
    session.commit()
    return _outcome(session, project=project, case_id=row.id)


def _arbiter_options(options: ProjectOptions, *, with_strength: bool) -> ProjectOptions:
    return options.model_copy(update={"rationale": "optional", "strength": with_strength, "rewrite": False})


def _positions(session: Session, *, item_id: int) -> list[int]:
    return store.response_positions(session, item_id=item_id)


def dismiss_case(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    case_id: int,
    rationale: str | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Close an open case without a verdict: its item is exported by the usual aggregation."""
    project = _staff_project(session, principal=principal, slug=slug)
    row = _case(session, project=project, case_id=case_id)
    text = _rationale(rationale, required=False)
    if not store.dismiss(session, case_id=row.id, rationale=text, resolved_by_id=principal.id, now=now or utcnow()):
        session.rollback()
        raise Conflict("case_not_open", "Only an open case can be dismissed.", field="case_id")
    audit.record(
        session,
        principal=principal,
        action="arbitration.dismiss",
        project_id=project.id,
        target_type="arbitration_case",
        target_id=row.id,
        details={"rationale": text},
    )
    session.commit()
    return _outcome(session, project=project, case_id=row.id)


def _outcome(session: Session, *, project: ProjectRow, case_id: int) -> Outcome:
    row = _case(session, project=project, case_id=case_id)
    return Outcome(_summary(row), store.first_open(session, project_id=project.id))


@dataclass(frozen=True, slots=True)
class Opened:
    case_id: int
    created: bool


def open_manually(
    session: Session, *, principal: Principal, slug: str, external_id: str, now: datetime | None = None
) -> Opened:
    """Open a case for an item by hand (reason `manual`); an item that has one keeps it."""
    project = _staff_project(session, principal=principal, slug=slug)
    item_id = browse.item_id_by_external_id(session, project_id=project.id, external_id=external_id)
    if item_id is None:
        raise NotFound("item_not_found", f"No item '{external_id}' in project '{slug}'.", field="external_id")
    existing = store.case_id_for_item(session, project_id=project.id, item_id=item_id)
    if existing is not None:
        return Opened(existing, created=False)
    votes = store.item_votes(session, project_id=project.id, item_id=item_id)
    agreement = measure(project.kind, [vote.verdict for vote in votes], [vote.payload for vote in votes])
    case_id = store.open_case(
        session,
        project_id=project.id,
        item_id=item_id,
        reason=ArbitrationReason.MANUAL,
        agreement=agreement.share if votes else None,
        judgments=len(votes),
        extended_by=max(len(votes) - project.overlap, 0),
        opened_by_id=principal.id or None,
        now=now or utcnow(),
    )
    if case_id is None:
        session.rollback()
        raced = store.case_id_for_item(session, project_id=project.id, item_id=item_id)
        if raced is None:
            raise Conflict("case_not_opened", "The case could not be opened; retry.", field="external_id")
        return Opened(raced, created=False)
    session.commit()
    return Opened(case_id, created=True)


def case_summary(session: Session, *, principal: Principal, slug: str, case_id: int) -> CaseSummary:
    """One case as a queue row (for the JSON API)."""
    project = _staff_project(session, principal=principal, slug=slug)
    return _summary(_case(session, project=project, case_id=case_id))
