"""Calibration sessions: a group answers the same items blind, a lead reveals, agrees and keeps the figures.

Answers are not judgments: they live in their own table, so they never count toward
overlap, exports or the production quality reports. Each participant sees the responses in
an order drawn for them; everything stored is by response position, as judgments are.
Before the reveal nobody sees anyone else's answers (leads see progress only).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.principal import Principal
from app.quality.agreement import percent_agreement
from app.quality.bootstrap import bootstrap_ci
from app.quality.krippendorff import alpha_terms
from app.services import audit, gold
from app.services.annotation import Task, build_task, check_time_spent
from app.services.item_browser import ReadableVerdict, readable_verdict
from app.services.project_options import ProjectOptions, scale_key
from app.services.projects import cached_options, get_project
from app.services.verdicts import VerdictInput, build_verdict, shown_payload
from preference_store import calibration as store
from preference_store import items as item_store
from preference_store import projects as project_store
from preference_store.base import utcnow
from preference_store.calibration import AnswerRow, CalibrationItemRow, SessionRow
from preference_store.engine import begin_write
from preference_store.models import CalibrationState, ProjectKind
from preference_store.projects import ProjectRow

MAX_NAME_CHARS = 200
MAX_NOTES_CHARS = 10_000
MAX_NOTE_CHARS = 10_000
MAX_ITEMS = 200
MAX_PARTICIPANTS = 200
DEFAULT_AFTER_DAYS = 14
MAX_AFTER_DAYS = 90
MIN_ITEMS_FOR_CI = 3
"""Below this many items with two answers a bootstrap interval says nothing: none is given."""
BOOTSTRAP_RESAMPLES = 2_000


@dataclass(frozen=True, slots=True)
class SessionSummary:
    id: int
    name: str
    state: str
    created_at: datetime
    items: int
    participants: int
    answered: int


@dataclass(frozen=True, slots=True)
class ParticipantProgress:
    user_id: int
    name: str
    team: str | None
    answered: int
    total: int


@dataclass(frozen=True, slots=True)
class CountShare:
    """One value (a verdict, a score) and how many answers gave it."""

    value: str
    count: int


@dataclass(frozen=True, slots=True)
class VerdictCount:
    """One canonical verdict given to an item, how many answers gave it, and how it reads (no rationale)."""

    verdict: str
    count: int
    reads: ReadableVerdict


@dataclass(frozen=True, slots=True)
class CriterionHistogram:
    """A rubric criterion's scores for one response position."""

    criterion: str
    position: int
    counts: list[CountShare]


@dataclass(frozen=True, slots=True)
class AnswerView:
    annotator: str
    verdict: ReadableVerdict
    time_spent_ms: int | None
    agrees: bool | None
    """Equal to the agreed answer; None while none is recorded."""


@dataclass(frozen=True, slots=True)
class ItemReview:
    """One item after the reveal: its answers, their distribution and the agreed answer."""

    id: int
    external_id: str
    position: int
    positions: list[int]
    distribution: list[VerdictCount]
    """Answers per canonical verdict, most frequent first (verdicts in response positions)."""
    histograms: list[CriterionHistogram]
    answers: list[AnswerView]
    unanswered: int
    agreed: ReadableVerdict | None
    note: str
    is_gold: bool


@dataclass(frozen=True, slots=True)
class WindowAgreement:
    """Participants' production judgments in a window that equal the item's majority verdict."""

    since: datetime
    until: datetime
    judgments: int
    share: float | None


@dataclass(frozen=True, slots=True)
class Figures:
    """Agreement before (the blind round) and after (production judgments around the reveal)."""

    alpha: float | None
    alpha_low: float | None
    alpha_high: float | None
    percent_agreement: float | None
    agreed_share: float | None
    before: WindowAgreement | None
    after: WindowAgreement | None
    after_complete: bool
    """False while the "after" window is still running: its figure will change."""


@dataclass(frozen=True, slots=True)
class SessionDetail:
    project_slug: str
    project_name: str
    kind: str
    id: int
    name: str
    notes: str
    state: str
    created_by: str | None
    created_at: datetime
    revealed_at: datetime | None
    closed_at: datetime | None
    after_days: int
    teams: list[str]
    participants: list[ParticipantProgress]
    external_ids: list[str]
    items: list[ItemReview]
    """Empty before the reveal: nobody sees answers while the round is blind."""
    figures: Figures | None


@dataclass(frozen=True, slots=True)
class ParticipantTask:
    """A participant's view: one item of the session (or none when all are answered)."""

    project: ProjectRow
    session_id: int
    session_name: str
    state: str
    index: int
    total: int
    answered: int
    task: Task | None
    calibration_item_id: int | None
    answer: dict[str, Any] | None
    """The participant's own stored answer in the labels they see, to revise it."""
    items: list[tuple[int, str, bool]]
    """Every item of the session: calibration item id, external id, answered by the caller."""


@dataclass(frozen=True, slots=True)
class AgreeForm:
    """An item laid out for the lead to record the agreed answer (labels A, B... = positions 0, 1...)."""

    project: ProjectRow
    session_id: int
    session_name: str
    calibration_item_id: int
    task: Task
    agreed: dict[str, Any] | None
    note: str


@dataclass(frozen=True, slots=True)
class Stored:
    """An answer stored; `next_item_id` is the caller's next unanswered item, if any."""

    answer_id: int
    next_item_id: int | None


def _clean(text: str, *, field: str, limit: int, required: bool = False) -> str:
    value = text.strip()
    if required and not value:
        raise InvalidInput(f"{field}_required", f"Give the session a {field}.", field=field)
    if len(value) > limit:
        raise InvalidInput(f"{field}_too_long", f"{field} is limited to {limit} characters.", field=field)
    return value


def _staff_session(
    session: Session, *, principal: Principal, slug: str, session_id: int
) -> tuple[ProjectRow, SessionRow]:
    principal.require_staff()
    project = get_project(session, principal=principal, slug=slug)
    return project, _session_of(session, project=project, session_id=session_id)


def _session_of(session: Session, *, project: ProjectRow, session_id: int) -> SessionRow:
    row = store.get_session(session, session_id=session_id)
    if row is None or row.project_id != project.id:
        raise NotFound("calibration_not_found", f"No calibration session {session_id} in '{project.slug}'.")
    return row


def _participant_session(
    session: Session, *, principal: Principal, slug: str, session_id: int
) -> tuple[ProjectRow, SessionRow]:
    """The project and session, for one of its participants (a participant need not be a project member)."""
    project = project_store.get_project_by_slug(session, slug=slug)
    if project is None:
        raise NotFound("project_not_found", f"No project '{slug}' for you.", field="slug")
    row = _session_of(session, project=project, session_id=session_id)
    if not store.is_participant(session, session_id=row.id, user_id=principal.id):
        raise PermissionDenied("not_a_participant", "You are not a participant of this calibration session.")
    return project, row


def create_session(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    name: str,
    notes: str = "",
    teams: Sequence[str] = (),
    emails: Sequence[str] = (),
    after_days: int = DEFAULT_AFTER_DAYS,
    now: datetime | None = None,
) -> SessionDetail:
    """Start a blind session for the members of `teams` and the users with `emails` (leads)."""
    principal.require_staff()
    name = _clean(name, field="name", limit=MAX_NAME_CHARS, required=True)
    notes = _clean(notes, field="notes", limit=MAX_NOTES_CHARS)
    if not 1 <= after_days <= MAX_AFTER_DAYS:
        raise InvalidInput("invalid_after_days", f"after_days runs from 1 to {MAX_AFTER_DAYS}.", field="after_days")
    team_names = sorted({team.strip() for team in teams if team.strip()})
    wanted_emails = sorted({email.strip().lower() for email in emails if email.strip()})
    if not team_names and not wanted_emails:
        raise InvalidInput("group_required", "Pick at least one team or annotator.", field="teams")
    begin_write(session)
    project = get_project(session, principal=principal, slug=slug)
    found_teams = store.team_ids_by_name(session, names=team_names)
    missing_teams = [team for team in team_names if team not in found_teams]
    if missing_teams:
        raise InvalidInput("unknown_team", f"No team {', '.join(missing_teams)}.", field="teams")
    found_users = store.user_ids_by_email(session, emails=wanted_emails)
    missing_users = [email for email in wanted_emails if email not in found_users]
    if missing_users:
        raise InvalidInput("unknown_user", f"No user with email {', '.join(missing_users)}.", field="emails")
    people = store.active_user_ids(session, user_ids=list(found_users.values()), team_ids=list(found_teams.values()))
    if not people:
        raise InvalidInput("group_empty", "These teams have no active members.", field="teams")
    if len(people) > MAX_PARTICIPANTS:
        raise InvalidInput("too_many_participants", f"At most {MAX_PARTICIPANTS} participants.", field="teams")
    session_id = store.insert_session(
        session,
        project_id=project.id,
        name=name,
        notes=notes,
        created_by_id=principal.user_id,
        team_ids=sorted(found_teams.values()),
        after_days=after_days,
        now=now or utcnow(),
    )
    store.add_participants(session, session_id=session_id, user_ids=people)
    session.commit()
    return _detail(session, project, _session_of(session, project=project, session_id=session_id))


def add_items(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    session_id: int,
    external_ids: Sequence[str] = (),
    random_disagreements: int = 0,
) -> int:
    """Add items by external id and/or `random_disagreements` random items whose judgments disagree (leads).

    Only while the session is blind; returns how many items were added (ones already in the
    session are skipped). Every participant gets each new item with its own random order.
    """
    wanted = list(dict.fromkeys(one.strip() for one in external_ids if one.strip()))
    if random_disagreements < 0 or random_disagreements > MAX_ITEMS:
        raise InvalidInput(
            "invalid_random_count", f"random_disagreements runs from 0 to {MAX_ITEMS}.", field="random_disagreements"
        )
    if not wanted and not random_disagreements:
        raise InvalidInput("items_required", "Name items by external id or ask for random ones.", field="external_ids")
    begin_write(session)
    project, row = _staff_session(session, principal=principal, slug=slug, session_id=session_id)
    if store.locked_state(session, session_id=row.id, shared=True) is not CalibrationState.BLIND:
        raise Conflict("calibration_not_blind", "Items can only be added while the session is blind.")
    found = project_store.item_ids_by_external_id(session, project_id=project.id, external_ids=wanted)
    missing = [one for one in wanted if one not in found]
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise InvalidInput("unknown_items", f"No item {shown} in '{slug}'.", field="external_ids")
    present = store.item_ids_in_session(session, session_id=row.id)
    new_ids = [found[one] for one in wanted if found[one] not in present]
    if random_disagreements:
        new_ids += store.random_disagreement_items(
            session, project_id=project.id, count=random_disagreements, exclude_item_ids=sorted(present | set(new_ids))
        )
    if len(present) + len(new_ids) > MAX_ITEMS:
        raise InvalidInput("too_many_items", f"A session holds at most {MAX_ITEMS} items.", field="external_ids")
    if not new_ids:
        session.rollback()
        return 0
    calibration_ids = store.insert_items(session, session_id=row.id, item_ids=new_ids, first_position=len(present))
    positions = store.response_positions(session, item_ids=new_ids)
    people = store.participants(session, session_id=row.id)
    draw = random.SystemRandom()
    slots = [
        {
            "session_id": row.id,
            "calibration_item_id": calibration_id,
            "annotator_id": person.user_id,
            "shown_order": draw.sample(positions[item_id], len(positions[item_id])),
        }
        for calibration_id, item_id in zip(calibration_ids, new_ids, strict=True)
        for person in people
    ]
    store.insert_answer_slots(session, slots=slots)
    session.commit()
    return len(new_ids)


def list_sessions(session: Session, *, principal: Principal, slug: str) -> list[SessionSummary]:
    """The project's sessions, newest first (leads)."""
    principal.require_staff()
    project = get_project(session, principal=principal, slug=slug)
    return [
        SessionSummary(
            row.id, row.name, row.state.value, row.created_at, counts.items, counts.participants, counts.answered
        )
        for row, counts in store.list_sessions(session, project_id=project.id)
    ]


def team_choices(session: Session, *, principal: Principal) -> list[str]:
    """Every team's name, for the new-session form (leads)."""
    principal.require_staff()
    return store.all_team_names(session)


def waiting_for_me(session: Session, *, principal: Principal) -> list[store.WaitingSession]:
    """Blind sessions where the caller has items left to answer (for the home page)."""
    return store.waiting_sessions(session, user_id=principal.id)


def get_session(session: Session, *, principal: Principal, slug: str, session_id: int) -> SessionDetail:
    """The lead's view: progress while blind; distributions, answers and figures once revealed."""
    project, row = _staff_session(session, principal=principal, slug=slug, session_id=session_id)
    return _detail(session, project, row)


def _detail(session: Session, project: ProjectRow, row: SessionRow) -> SessionDetail:
    options = cached_options(project)
    items = store.session_items(session, session_id=row.id)
    answers = store.answers(session, session_id=row.id)
    people = store.participants(session, session_id=row.id)
    answered = Counter(answer.annotator_id for answer in answers if answer.verdict is not None)
    totals = Counter(answer.annotator_id for answer in answers)
    revealed = row.state is not CalibrationState.BLIND
    return SessionDetail(
        project_slug=project.slug,
        project_name=project.name,
        kind=project.kind.value,
        id=row.id,
        name=row.name,
        notes=row.notes,
        state=row.state.value,
        created_by=row.created_by_name,
        created_at=row.created_at,
        revealed_at=row.revealed_at,
        closed_at=row.closed_at,
        after_days=row.after_days,
        teams=store.team_names(session, team_ids=row.team_ids),
        participants=[
            ParticipantProgress(p.user_id, p.name, p.team_name, answered[p.user_id], totals[p.user_id]) for p in people
        ],
        external_ids=[item.external_id for item in items],
        items=_reviews(project, options, items, answers) if revealed else [],
        figures=_figures(session, project, row, [p.user_id for p in people]) if revealed else None,
    )


def _reviews(
    project: ProjectRow, options: ProjectOptions, items: list[CalibrationItemRow], answers: list[AnswerRow]
) -> list[ItemReview]:
    by_item: dict[int, list[AnswerRow]] = {}
    for answer in answers:
        by_item.setdefault(answer.calibration_item_id, []).append(answer)
    reviews = []
    for item in items:
        given = [answer for answer in by_item.get(item.id, []) if answer.verdict is not None]
        positions = sorted(by_item[item.id][0].shown_order) if by_item.get(item.id) else []

        def readable(payload: dict[str, Any], verdict: str, positions: list[int] = positions) -> ReadableVerdict:
            return readable_verdict(payload, verdict, kind=project.kind, options=options, positions=positions)

        counts = Counter(answer.verdict for answer in given)
        example = {answer.verdict: answer for answer in reversed(given)}
        reviews.append(
            ItemReview(
                id=item.id,
                external_id=item.external_id,
                position=item.position,
                positions=positions,
                distribution=[
                    VerdictCount(
                        str(verdict),
                        count,
                        replace(readable(example[verdict].payload or {}, str(verdict)), rationale=None),
                    )
                    for verdict, count in counts.most_common()
                ],
                histograms=_histograms(options, given, positions) if project.kind is ProjectKind.RUBRIC else [],
                answers=[
                    AnswerView(
                        annotator=answer.annotator_name,
                        verdict=readable(answer.payload or {}, answer.verdict or ""),
                        time_spent_ms=answer.time_spent_ms,
                        agrees=None if item.agreed_verdict is None else answer.verdict == item.agreed_verdict,
                    )
                    for answer in given
                ],
                unanswered=len(by_item.get(item.id, [])) - len(given),
                agreed=readable(item.agreed_payload or {}, item.agreed_verdict) if item.agreed_verdict else None,
                note=item.note,
                is_gold=item.is_gold,
            )
        )
    return reviews


def _histograms(options: ProjectOptions, given: list[AnswerRow], positions: list[int]) -> list[CriterionHistogram]:
    histograms = []
    for criterion in options.rubric:
        for position in positions:
            counts = Counter(
                scale_key(scores[criterion.name])
                for answer in given
                if criterion.name in (scores := (answer.payload or {}).get("scores", {}).get(str(position), {}))
            )
            histograms.append(
                CriterionHistogram(
                    criterion=criterion.name,
                    position=position,
                    counts=[
                        CountShare(scale_key(value), counts[scale_key(value)]) for value in criterion.scale.values()
                    ],
                )
            )
    return histograms


@dataclass(frozen=True, slots=True)
class BlindAgreement:
    """Krippendorff's alpha (nominal, over canonical verdicts) with its bootstrap interval, and percent agreement."""

    alpha: float | None
    alpha_low: float | None
    alpha_high: float | None
    percent_agreement: float | None


def blind_agreement(verdicts: Sequence[Sequence[str | None]]) -> BlindAgreement:
    """Agreement of an items x participants table of verdicts (None: not answered)."""
    categories = sorted({verdict for row in verdicts for verdict in row if verdict is not None})
    code = {verdict: index for index, verdict in enumerate(categories)}
    matrix = np.array(
        [[np.nan if verdict is None else code[verdict] for verdict in row] for row in verdicts], dtype=np.float64
    )
    pairable = int((np.sum(~np.isnan(matrix), axis=1) >= 2).sum()) if matrix.size else 0
    if pairable == 0:
        return BlindAgreement(None, None, None, None)
    terms = alpha_terms(matrix)
    alpha = _finite(terms.value())
    low = high = None
    if alpha is not None and pairable >= MIN_ITEMS_FOR_CI:
        interval = bootstrap_ci(terms, n_resamples=BOOTSTRAP_RESAMPLES, seed=0)
        low, high = _finite(interval.low), _finite(interval.high)
    return BlindAgreement(alpha, low, high, _finite(percent_agreement(matrix)))


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def _verdict_table(items: list[CalibrationItemRow], answers: list[AnswerRow]) -> list[list[str | None]]:
    people = sorted({answer.annotator_id for answer in answers})
    column = {person: index for index, person in enumerate(people)}
    row_of = {item.id: index for index, item in enumerate(items)}
    table: list[list[str | None]] = [[None] * len(people) for _ in items]
    for answer in answers:
        table[row_of[answer.calibration_item_id]][column[answer.annotator_id]] = answer.verdict
    return table


def _figures(session: Session, project: ProjectRow, row: SessionRow, people: list[int]) -> Figures:
    before = after = None
    complete = False
    if row.revealed_at is not None and people:
        span = timedelta(days=row.after_days)
        now = utcnow()
        before = _window_agreement(session, project, people, row.revealed_at - span, row.revealed_at)
        after = _window_agreement(session, project, people, row.revealed_at, row.revealed_at + span)
        complete = now >= row.revealed_at + span
    return Figures(
        alpha=row.blind_alpha,
        alpha_low=row.blind_alpha_low,
        alpha_high=row.blind_alpha_high,
        percent_agreement=row.blind_percent_agreement,
        agreed_share=row.agreed_share,
        before=before,
        after=after,
        after_complete=complete,
    )


def _window_agreement(
    session: Session, project: ProjectRow, people: list[int], since: datetime, until: datetime
) -> WindowAgreement:
    own, everyone = store.votes_around(session, project_id=project.id, annotator_ids=people, since=since, until=until)
    return WindowAgreement(since, until, len(own), agreement_with_majority(own, everyone))


def agreement_with_majority(own: Sequence[store.JudgmentVote], everyone: Sequence[store.JudgmentVote]) -> float | None:
    """Share of `own` votes equal to their item's majority verdict over `everyone` (tied items are left out)."""
    tallies: dict[int, Counter[str]] = {}
    for vote in everyone:
        tallies.setdefault(vote.item_id, Counter())[vote.verdict] += 1
    majority: dict[int, str] = {}
    for item_id, tally in tallies.items():
        top = tally.most_common(2)
        if len(top) == 1 or top[0][1] > top[1][1]:
            majority[item_id] = top[0][0]
    counted = [vote.verdict == majority[vote.item_id] for vote in own if vote.item_id in majority]
    return sum(counted) / len(counted) if counted else None


def reveal(
    session: Session, *, principal: Principal, slug: str, session_id: int, now: datetime | None = None
) -> SessionDetail:
    """End the blind round (leads): the answers become visible and the round's agreement is kept."""
    begin_write(session)
    project, row = _staff_session(session, principal=principal, slug=slug, session_id=session_id)
    if store.locked_state(session, session_id=row.id, shared=False) is not CalibrationState.BLIND:
        raise Conflict("calibration_not_blind", "This session was already revealed.")
    items = store.session_items(session, session_id=row.id)
    if not items:
        raise Conflict("calibration_empty", "Add items before revealing the session.")
    figures = blind_agreement(_verdict_table(items, store.answers(session, session_id=row.id)))
    changed = store.change_state(
        session,
        session_id=row.id,
        from_state=CalibrationState.BLIND,
        to_state=CalibrationState.REVEALED,
        values={
            "revealed_at": now or utcnow(),
            "blind_alpha": figures.alpha,
            "blind_alpha_low": figures.alpha_low,
            "blind_alpha_high": figures.alpha_high,
            "blind_percent_agreement": figures.percent_agreement,
        },
    )
    if not changed:
        session.rollback()
        raise Conflict("calibration_not_blind", "This session was already revealed.")
    audit.record(
        session,
        principal=principal,
        action="calibration.reveal",
        project_id=project.id,
        target_type="calibration_session",
        target_id=row.id,
        details={"name": row.name, "items": len(items), "blind_alpha": figures.alpha},
    )
    session.commit()
    return _detail(session, project, _session_of(session, project=project, session_id=row.id))


def _item_of(session: Session, *, session_id: int, calibration_item_id: int) -> CalibrationItemRow:
    item = next(
        (one for one in store.session_items(session, session_id=session_id) if one.id == calibration_item_id), None
    )
    if item is None:
        raise NotFound("calibration_item_not_found", f"No item {calibration_item_id} in this session.", field="item")
    return item


def agree_form(
    session: Session, *, principal: Principal, slug: str, session_id: int, calibration_item_id: int
) -> AgreeForm:
    """An item shown in response order (A = position 0) for the lead to record the agreed answer."""
    project, row = _staff_session(session, principal=principal, slug=slug, session_id=session_id)
    item = _item_of(session, session_id=row.id, calibration_item_id=calibration_item_id)
    content = item_store.load_item_content(session, item_id=item.item_id)
    if content is None:
        raise NotFound("item_not_found", "The item no longer exists.")
    order = sorted(response.position for response in content.responses)
    task = build_task(
        project,
        content,
        assignment_id=item.id,
        shown_order=order,
        leased_until=utcnow(),
        guidelines_version=project.guidelines_version,
    )
    agreed = shown_payload(item.agreed_payload, order) if item.agreed_payload else None
    return AgreeForm(project, row.id, row.name, item.id, task, agreed, item.note)


def agree(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    session_id: int,
    calibration_item_id: int,
    submitted: VerdictInput,
    note: str = "",
    now: datetime | None = None,
) -> ItemReview:
    """Record (or change) an item's agreed answer and note after the reveal (leads).

    `submitted` names responses A, B... in stored position order (A is position 0).
    """
    note = _clean(note, field="note", limit=MAX_NOTE_CHARS)
    begin_write(session)
    project, row = _staff_session(session, principal=principal, slug=slug, session_id=session_id)
    if store.locked_state(session, session_id=row.id, shared=True) is not CalibrationState.REVEALED:
        raise Conflict("calibration_not_revealed", "Agreed answers are recorded after the reveal, before closing.")
    item = _item_of(session, session_id=row.id, calibration_item_id=calibration_item_id)
    order = sorted(store.response_positions(session, item_ids=[item.item_id]).get(item.item_id, []))
    verdict = build_verdict(submitted, kind=project.kind, options=cached_options(project), shown_order=order)
    store.set_agreed(
        session,
        calibration_item_id=item.id,
        verdict=verdict.key,
        payload=verdict.payload,
        note=note,
        now=now or utcnow(),
    )
    session.commit()
    return _review(session, project, row.id, item.id)


def _review(session: Session, project: ProjectRow, session_id: int, calibration_item_id: int) -> ItemReview:
    items = [one for one in store.session_items(session, session_id=session_id) if one.id == calibration_item_id]
    answers = [
        one for one in store.answers(session, session_id=session_id) if one.calibration_item_id == calibration_item_id
    ]
    return _reviews(project, cached_options(project), items, answers)[0]


def make_gold(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    session_id: int,
    calibration_item_id: int,
    explanation: str | None = None,
) -> ItemReview:
    """Turn an item's agreed answer into the item's gold answer (leads); the note is the explanation by default."""
    begin_write(session)
    project, row = _staff_session(session, principal=principal, slug=slug, session_id=session_id)
    if row.state is CalibrationState.BLIND:
        raise Conflict("calibration_not_revealed", "Reveal the session before making gold.")
    item = _item_of(session, session_id=row.id, calibration_item_id=calibration_item_id)
    if item.agreed_verdict is None or item.agreed_payload is None:
        raise Conflict("no_agreed_answer", "Record the agreed answer before making the item gold.", field="item")
    store.set_gold(session, calibration_item_id=item.id)
    explained = item.note if explanation is None else explanation
    audit.record(
        session,
        principal=principal,
        action="calibration.gold",
        project_id=project.id,
        target_type="calibration_item",
        target_id=item.id,
        details={"session_id": row.id, "external_id": item.external_id, "explanation": explained},
    )
    # mark_gold commits the flag and the event above with the gold answer, in one transaction.
    gold.mark_gold(
        session,
        principal=principal,
        slug=slug,
        external_id=item.external_id,
        payload=item.agreed_payload,
        explanation=item.note if explanation is None else explanation,
        source="calibration",
    )
    return _review(session, project, row.id, item.id)


def close(
    session: Session, *, principal: Principal, slug: str, session_id: int, now: datetime | None = None
) -> SessionDetail:
    """Close a revealed session (leads), keeping the share of blind answers equal to the agreed answers."""
    begin_write(session)
    project, row = _staff_session(session, principal=principal, slug=slug, session_id=session_id)
    agreed = {item.id: item.agreed_verdict for item in store.session_items(session, session_id=row.id)}
    hits = [
        answer.verdict == agreed[answer.calibration_item_id]
        for answer in store.answers(session, session_id=row.id)
        if answer.verdict is not None and agreed.get(answer.calibration_item_id) is not None
    ]
    changed = store.change_state(
        session,
        session_id=row.id,
        from_state=CalibrationState.REVEALED,
        to_state=CalibrationState.CLOSED,
        values={"closed_at": now or utcnow(), "agreed_share": sum(hits) / len(hits) if hits else None},
    )
    if not changed:
        session.rollback()
        raise Conflict("calibration_not_revealed", "Only a revealed session can be closed.")
    session.commit()
    return _detail(session, project, _session_of(session, project=project, session_id=row.id))


def my_task(
    session: Session, *, principal: Principal, slug: str, session_id: int, calibration_item_id: int | None = None
) -> ParticipantTask:
    """The caller's item of the session: the one asked for, else the first unanswered one."""
    project, row = _participant_session(session, principal=principal, slug=slug, session_id=session_id)
    items = store.session_items(session, session_id=row.id)
    mine = {
        answer.calibration_item_id: answer
        for answer in store.answers(session, session_id=row.id, annotator_id=principal.id)
    }
    listed = [(item.id, item.external_id, mine[item.id].verdict is not None) for item in items if item.id in mine]
    answered = sum(1 for _, _, done in listed if done)
    if calibration_item_id is None:
        calibration_item_id = next((one for one, _, done in listed if not done), None)
    elif calibration_item_id not in mine:
        raise NotFound("calibration_item_not_found", f"No item {calibration_item_id} in this session.", field="item")
    base = ParticipantTask(
        project=project,
        session_id=row.id,
        session_name=row.name,
        state=row.state.value,
        index=0,
        total=len(listed),
        answered=answered,
        task=None,
        calibration_item_id=None,
        answer=None,
        items=listed,
    )
    if calibration_item_id is None or row.state is not CalibrationState.BLIND:
        return base
    slot = mine[calibration_item_id]
    item = next(one for one in items if one.id == calibration_item_id)
    content = item_store.load_item_content(session, item_id=item.item_id)
    if content is None:
        raise NotFound("item_not_found", "The item no longer exists.")
    task = build_task(
        project,
        content,
        assignment_id=slot.id,
        shown_order=slot.shown_order,
        leased_until=utcnow(),
        guidelines_version=project.guidelines_version,
    )
    index = next(position for position, entry in enumerate(listed) if entry[0] == calibration_item_id)
    shown = shown_payload(slot.payload, slot.shown_order) if slot.payload is not None else None
    return ParticipantTask(
        project=project,
        session_id=row.id,
        session_name=row.name,
        state=row.state.value,
        index=index + 1,
        total=len(listed),
        answered=answered,
        task=task,
        calibration_item_id=calibration_item_id,
        answer=shown,
        items=listed,
    )


def answer(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    session_id: int,
    calibration_item_id: int,
    submitted: VerdictInput,
    time_spent_ms: int | None = None,
    now: datetime | None = None,
) -> Stored:
    """Store or revise the caller's blind answer to one item; only while the session is blind."""
    check_time_spent(time_spent_ms)
    begin_write(session)
    project, row = _participant_session(session, principal=principal, slug=slug, session_id=session_id)
    if store.locked_state(session, session_id=row.id, shared=True) is not CalibrationState.BLIND:
        raise Conflict("calibration_not_blind", "This session was revealed: answers can no longer change.")
    mine = store.answers(session, session_id=row.id, annotator_id=principal.id)
    slot = next((one for one in mine if one.calibration_item_id == calibration_item_id), None)
    if slot is None:
        raise NotFound("calibration_item_not_found", f"No item {calibration_item_id} in this session.", field="item")
    verdict = build_verdict(submitted, kind=project.kind, options=cached_options(project), shown_order=slot.shown_order)
    store.set_answer(
        session,
        answer_id=slot.id,
        payload=verdict.payload,
        verdict=verdict.key,
        time_spent_ms=time_spent_ms,
        now=now or utcnow(),
    )
    session.commit()
    order = [one.calibration_item_id for one in mine]
    after = order[order.index(calibration_item_id) + 1 :] + order[: order.index(calibration_item_id)]
    pending = {one.calibration_item_id for one in mine if one.verdict is None and one.id != slot.id}
    return Stored(slot.id, next((one for one in after if one in pending), None))
