"""Repeated items: an annotator's own judged item served again later, sides swapped (self-consistency).

A repeat looks and behaves like any task (same page, same API, a lease that lapses, skip,
an idempotent submit) but is stored in `repeat_assignment`, never as an assignment or a
judgment: it takes no overlap slot and no export, agreement, aggregation or leaderboard sees it.
See docs/repeats.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.principal import Principal
from app.services.projects import ProjectAccessCache, cached_options, project_by_id
from app.services.schedule import DRAW_RANGE, keyed_draw
from app.services.verdicts import VerdictInput, build_verdict
from preference_store import items as item_store
from preference_store import repeats as repeat_store
from preference_store.models import AssignmentState, ProjectKind
from preference_store.projects import ProjectRow
from preference_store.repeats import RepeatRow


@dataclass(frozen=True, slots=True)
class RepeatLease:
    """A repeat the annotator holds: shown like any task, under its public id."""

    public_id: int
    content: item_store.ItemContent
    shown_order: list[int]
    leased_until: datetime


@dataclass(frozen=True, slots=True)
class RepeatAnswer:
    """A stored repeat answer: the judgment id it is reported under, and whether it was new."""

    judgment_id: int
    created: bool


def repeat_turn(*, project: ProjectRow, annotator_id: int, served: int, rate: float) -> bool:
    """Whether the annotator's next task (after `served` tasks and repeats) is a repeat.

    A keyed hash of project, annotator and count, like the gold schedule (a different key,
    so the two are independent): reproducible, even at `rate`, not guessable.
    """
    return keyed_draw(project, f"repeat:{project.id}:{annotator_id}:{served}") / DRAW_RANGE < rate


def _pick(*, project: ProjectRow, annotator_id: int, served: int, candidates: int) -> int:
    """Which of the repeatable judgments (oldest first) this repeat serves."""
    return keyed_draw(project, f"pick:{project.id}:{annotator_id}:{served}") % candidates


def swapped(shown_order: list[int]) -> list[int]:
    """The order a repeat shows the responses in: the first showing's, sides swapped."""
    return list(reversed(shown_order))


def active(project: ProjectRow) -> bool:
    """Whether the project serves repeats (`repeat_lease` reads nothing otherwise)."""
    return cached_options(project).quality.repeat_rate > 0 and project.kind is ProjectKind.PAIRWISE


def repeat_lease(
    session: Session, *, project: ProjectRow, annotator_id: int, now: datetime, allow_new: bool
) -> RepeatLease | None:
    """The repeat the annotator holds, or a new one when this claim is a repeat turn; commits when it serves one.

    Costs nothing in a project without repeats. A new repeat is leased only to an annotator who
    holds no assignment, on the schedule's turn, when an old enough judgment is left to repeat.
    """
    if not active(project):
        return None
    rate = cached_options(project).quality.repeat_rate
    held = repeat_store.held_repeat(session, project_id=project.id, annotator_id=annotator_id)
    if held is not None:
        if held.leased_until > now:
            return _served(session, held)
        repeat_store.close_repeat(session, repeat_id=held.id, state=AssignmentState.EXPIRED, now=now)
    if not allow_new:
        return None
    served, holding = repeat_store.served_count(session, project_id=project.id, annotator_id=annotator_id)
    if holding or not repeat_turn(project=project, annotator_id=annotator_id, served=served, rate=rate):
        return None
    repeat_after = cached_options(project).quality.repeat_after
    candidates = repeat_store.count_candidates(
        session, project_id=project.id, annotator_id=annotator_id, repeat_after=repeat_after
    )
    if candidates == 0:
        return None
    index = _pick(project=project, annotator_id=annotator_id, served=served, candidates=candidates)
    candidate = repeat_store.candidate_at(
        session, project_id=project.id, annotator_id=annotator_id, repeat_after=repeat_after, index=index
    )
    public_id = repeat_store.borrowed_assignment_id(session, annotator_id=annotator_id)
    if candidate is None or public_id is None:
        return None
    try:
        with session.begin_nested():
            row: RepeatRow | None = repeat_store.insert_repeat(
                session,
                project_id=project.id,
                annotator_id=annotator_id,
                candidate=candidate,
                public_id=public_id,
                shown_order=swapped(candidate.shown_order),
                leased_until=now + timedelta(seconds=project.lease_seconds),
                now=now,
            )
    except IntegrityError:
        # A concurrent claim of the same annotator leased a repeat first: serve that one.
        row = repeat_store.held_repeat(session, project_id=project.id, annotator_id=annotator_id)
    return None if row is None else _served(session, row)


def _served(session: Session, row: RepeatRow) -> RepeatLease | None:
    content = item_store.load_item_content(session, item_id=row.item_id)
    if content is None:
        return None
    session.commit()
    return RepeatLease(row.public_id, content, row.shown_order, row.leased_until)


def _not_found(public_id: int) -> NotFound:
    # Word for word the error of an unknown assignment: a repeat's id must not stand out.
    return NotFound("assignment_not_found", f"No assignment {public_id} for you.", field="assignment_id")


def submit_repeat(
    session: Session,
    *,
    principal: Principal,
    public_id: int,
    submitted: VerdictInput,
    time_spent_ms: int | None,
    now: datetime,
    cache: ProjectAccessCache | None = None,
) -> RepeatAnswer:
    """Store the answer to a repeat once (NotFound when the caller holds no repeat under `public_id`)."""
    row = repeat_store.repeat_by_public_id(session, annotator_id=principal.id, public_id=public_id)
    project = None if row is None else project_by_id(session, project_id=row.project_id, cache=cache)
    if row is None or project is None:
        raise _not_found(public_id)
    verdict = build_verdict(submitted, kind=project.kind, options=cached_options(project), shown_order=row.shown_order)
    reported = repeat_store.borrowed_judgment_id(session, annotator_id=principal.id) or public_id
    answered = repeat_store.answer_repeat(
        session,
        repeat_id=row.id,
        payload=verdict.payload,
        verdict=verdict.key,
        time_spent_ms=time_spent_ms,
        answer_public_id=reported,
        now=now,
    )
    if answered:
        session.commit()
        return RepeatAnswer(reported, created=True)
    session.rollback()
    # Read again: a concurrent double submit may have answered it since.
    stored = repeat_store.repeat_by_public_id(session, annotator_id=principal.id, public_id=public_id)
    if stored is not None and stored.state is AssignmentState.SUBMITTED and stored.answer_public_id is not None:
        if stored.payload == verdict.payload:
            return RepeatAnswer(stored.answer_public_id, created=False)
        raise Conflict(
            "already_judged",
            "This assignment already has a different judgment; change it as a revision.",
            field="assignment_id",
        )
    raise Conflict(
        "assignment_closed",
        "This assignment expired or was skipped and its item went to someone else.",
        field="assignment_id",
    )


def skip_repeat(session: Session, *, principal: Principal, public_id: int, reason: str, now: datetime) -> None:
    """Give a held repeat back with a reason, like any skipped task (NotFound when there is none)."""
    row = repeat_store.repeat_by_public_id(session, annotator_id=principal.id, public_id=public_id)
    if row is None:
        raise _not_found(public_id)
    skipped = repeat_store.close_repeat(
        session, repeat_id=row.id, state=AssignmentState.SKIPPED, now=now, skip_reason=reason
    )
    if not skipped:
        session.rollback()
        raise Conflict("assignment_closed", "Only an item you currently hold can be skipped.", field="assignment_id")
    session.commit()


def answered_today(session: Session, *, project: ProjectRow, annotator_id: int, since: datetime) -> int:
    """Repeats the annotator answered since `since` (0, without a query, where repeats are off)."""
    if cached_options(project).quality.repeat_rate <= 0:
        return 0
    return repeat_store.answered_since(session, project_id=project.id, annotator_id=annotator_id, since=since)
