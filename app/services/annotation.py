"""The annotation loop: lease the next item, store the verdict."""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.principal import Principal
from app.services import arbitration, gold, qualification, repeats
from app.services.projects import (
    PAIRWISE_RESPONSES,
    ProjectAccessCache,
    cached_options,
    get_project,
    project_by_id,
)
from app.services.verdicts import VerdictInput, build_verdict, shown_labels
from preference_store import gold as gold_store
from preference_store import items as item_store
from preference_store import judgments as judgment_store
from preference_store import queue, single_statement
from preference_store.base import utcnow
from preference_store.engine import begin_write, commit_reads, is_deadlock
from preference_store.models import AssignmentState, ProjectKind
from preference_store.projects import ProjectRow

MAX_TIME_SPENT_MS = 24 * 3600 * 1000
DEADLOCK_ATTEMPTS = 3
_T = TypeVar("_T")
MAX_SKIP_REASON_CHARS = 500


@dataclass(frozen=True, slots=True)
class ShownResponse:
    """A response as the annotator sees it: by label, never by model or position."""

    label: str
    content: str
    sensitive: bool = False


@dataclass(frozen=True, slots=True)
class Task:
    """One leased item, ready to show."""

    assignment_id: int
    project_slug: str
    project_name: str
    kind: ProjectKind
    external_id: str
    messages: list[dict[str, Any]]
    responses: list[ShownResponse]
    language: str | None
    sensitive: bool
    """The prompt (and so every response) is flagged sensitive."""
    leased_until: datetime
    guidelines_version: int


@dataclass(frozen=True, slots=True)
class StoredJudgment:
    """The outcome of a submission; `created` is False when it repeated a stored one."""

    judgment_id: int
    assignment_id: int
    created: bool
    gold_feedback: bool = False
    """The item was gold in a training or qualification project: show the expected answer next."""


class DailyCapReached(Conflict):
    def __init__(self, cap: int) -> None:
        super().__init__("daily_cap_reached", f"You reached today's limit of {cap} judgments in this project.")
        self.cap = cap


class LeaseReaper:
    """When a claim also sweeps its project's expired leases: at most every few seconds.

    Leases run for minutes, so a sweep a few seconds late costs nothing, while a sweep on
    every claim is a statement on the hot path.
    """

    def __init__(self, interval_seconds: float) -> None:
        self._interval = timedelta(seconds=interval_seconds)
        self._next_sweep: dict[int, datetime] = {}
        self._lock = threading.Lock()

    def due(self, project_id: int, now: datetime) -> bool:
        with self._lock:
            if now < self._next_sweep.get(project_id, now):
                return False
            self._next_sweep[project_id] = now + self._interval
            return True


def next_task(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    now: datetime | None = None,
    cache: ProjectAccessCache | None = None,
    reaper: LeaseReaper | None = None,
    shuffle: random.Random | None = None,
) -> Task | None:
    """Lease the caller's next item in the project (or return the one they hold).

    Returns None when nothing is left for the caller; raises DailyCapReached when the
    project's daily cap stops them (a lease they already hold is still served). A new
    lease's response order is drawn from `shuffle` when given (a seeded generator makes a
    scripted batch, like the demo's, the same on every seeding), else from the system's
    randomness.
    """
    now = now or utcnow()
    begin_write(session)
    project = get_project(session, principal=principal, slug=slug, cache=cache)
    if project.is_archived:
        raise Conflict("project_archived", f"Project '{slug}' is archived.")
    options = cached_options(project)
    qualification.check_may_annotate(session, principal=principal, project=project, options=options)
    rate = gold.gold_rate(project)

    def gold_turn(served: int) -> bool:
        return gold.gold_turn(project=project, annotator_id=principal.id, served=served, rate=rate)

    under_cap = options.daily_cap is None or (
        judgment_store.count_since(session, annotator_id=principal.id, project_id=project.id, since=start_of_day(now))
        < options.daily_cap
    )
    if under_cap and in_one_statement(session) and not repeats.active(project):
        task = _next_task_in_one_statement(
            session,
            principal=principal,
            project=project,
            now=now,
            reaper=reaper,
            gold_turn=gold_turn if rate else None,
            shuffle=shuffle,
        )
        if task is not None:
            return task
    # Lapsed leases go back in transactions of their own: the claim below may wait for rows
    # other claims hold, which it must never do while holding rows itself.
    if queue.release_lapsed(session, project_id=project.id, annotator_id=principal.id, now=now):
        session.commit()
        begin_write(session)
    if reaper is None or reaper.due(project.id, now):
        _sweep_lapsed(session, project_id=project.id, now=now)
    repeat = repeats.repeat_lease(session, project=project, annotator_id=principal.id, now=now, allow_new=under_cap)
    if repeat is not None:
        return build_task(
            project,
            repeat.content,
            assignment_id=repeat.public_id,
            shown_order=repeat.shown_order,
            leased_until=repeat.leased_until,
            guidelines_version=project.guidelines_version,
        )

    def claim() -> tuple[queue.Lease | None, item_store.ItemContent | None]:
        lease = queue.claim_next(
            session,
            project_id=project.id,
            annotator_id=principal.id,
            response_count=PAIRWISE_RESPONSES if project.kind is ProjectKind.PAIRWISE else None,
            lease_seconds=project.lease_seconds,
            now=now,
            reap_expired=False,
            languages=principal.user.languages if options.route_by_language else None,
            allow_new=under_cap,
            gold_turn=gold_turn if rate > 0 else None,
            rng=shuffle,
        )
        return lease, item_store.load_item_content(session, item_id=lease.item_id) if lease else None

    lease, content = _committed_retrying_deadlocks(session, claim)
    if lease is None:
        if not under_cap and options.daily_cap is not None:
            raise DailyCapReached(options.daily_cap)
        return None
    if content is None:
        if lease.passed_from is not None:
            _flag_passed_items(session, project_id=project.id, from_rank=lease.passed_from, to_rank=lease.queue_rank)
        raise NotFound("item_not_found", "The leased item no longer exists.")
    return _task_of_lease(session, project, lease, content)


def _task_of_lease(session: Session, project: ProjectRow, lease: queue.Lease, content: item_store.ItemContent) -> Task:
    """A new or held lease as its task, once the open items its claim passed over are flagged reopened."""
    if lease.passed_from is not None:
        _flag_passed_items(session, project_id=project.id, from_rank=lease.passed_from, to_rank=lease.queue_rank)
    return build_task(
        project,
        content,
        assignment_id=lease.assignment_id,
        shown_order=lease.shown_order,
        leased_until=lease.leased_until,
        guidelines_version=project.guidelines_version,
    )


def in_one_statement(session: Session) -> bool:
    """Whether the annotation loop's common case runs as one statement per call (PostgreSQL)."""
    return session.get_bind().dialect.name == "postgresql"


def _next_task_in_one_statement(
    session: Session,
    *,
    principal: Principal,
    project: ProjectRow,
    now: datetime,
    reaper: LeaseReaper | None,
    gold_turn: Callable[[int], bool] | None,
    shuffle: random.Random | None,
) -> Task | None:
    """`next_task`'s common case in one statement (`single_statement.claim_with_content`).

    None when it is not that case: a gold turn, a lease that ran out, no free item (the
    general path then waits for a held one or says nothing is left).
    """
    if reaper is None or reaper.due(project.id, now):
        _sweep_lapsed(session, project_id=project.id, now=now)
    if gold_turn is not None:
        served, gold_item = gold_store.next_gold_item(session, project_id=project.id, annotator_id=principal.id)
        if gold_item is not None and gold_turn(served):
            return None
    pairwise = project.kind is ProjectKind.PAIRWISE
    with single_statement.statements_that_commit(session):
        outcome = single_statement.claim_with_content(
            session,
            project_id=project.id,
            annotator_id=principal.id,
            lease_seconds=project.lease_seconds,
            now=now,
            languages=principal.user.languages if cached_options(project).route_by_language else None,
            shown_order=queue.shuffled_order(PAIRWISE_RESPONSES, shuffle) if pairwise else None,
        )
    if outcome.lease is None or outcome.content is None:
        return None
    return _task_of_lease(session, project, outcome.lease, outcome.content)


def build_task(
    project: ProjectRow,
    content: item_store.ItemContent,
    *,
    assignment_id: int,
    shown_order: list[int],
    leased_until: datetime,
    guidelines_version: int,
) -> Task:
    """An item as its annotator sees it: responses in the assignment's order, sensitive ones marked."""
    options = cached_options(project)
    by_position = {response.position: response for response in content.responses}
    language = content.metadata.get("language")
    sensitive = content.is_sensitive or content.metadata.get("category") in options.sensitive_categories
    return Task(
        assignment_id=assignment_id,
        project_slug=project.slug,
        project_name=project.name,
        kind=project.kind,
        external_id=content.external_id,
        messages=content.messages,
        responses=[
            ShownResponse(
                label=label,
                content=by_position[position].content,
                sensitive=sensitive or by_position[position].metadata.get("sensitive") is True,
            )
            for label, position in zip(shown_labels(len(shown_order)), shown_order, strict=True)
        ],
        language=language if isinstance(language, str) else None,
        sensitive=sensitive,
        leased_until=leased_until,
        guidelines_version=guidelines_version,
    )


def _sweep_lapsed(session: Session, *, project_id: int, now: datetime) -> None:
    # One lease per transaction, so a sweep never holds one row while it waits for another
    # (a skip or a submission holds its assignment, then wants the item's queue row).
    lapsed = queue.lapsed_leases(session, project_id=project_id, now=now)
    if not lapsed:
        return
    session.commit()
    for assignment_id, item_id in lapsed:
        begin_write(session)
        queue.expire_lease(session, assignment_id=assignment_id, item_id=item_id, now=now)
        session.commit()
    begin_write(session)


def start_of_day(now: datetime) -> datetime:
    """Midnight UTC of `now`'s day: daily caps and counts run on UTC days."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _flag_passed_items(session: Session, *, project_id: int, from_rank: int, to_rank: int) -> None:
    # One short transaction per item: waiting for a row another claim holds while holding
    # none ourselves can never be part of a deadlock.
    passed = queue.open_items_between(session, project_id=project_id, from_rank=from_rank, to_rank=to_rank)
    commit_reads(session)
    for item_id in passed:
        _committed_retrying_deadlocks(session, functools.partial(queue.mark_reopened, session, item_id=item_id))


def _committed_retrying_deadlocks(session: Session, work: Callable[[], _T]) -> _T:
    """Run `work` and commit; run it again when PostgreSQL broke a deadlock by aborting it.

    For work that has written nothing before it can wait on a lock: a claim (PostgreSQL may
    keep the lock of a row its re-check dropped, so two waiting claims can deadlock) and the
    reopen flag of an item passed over.
    """
    for _attempt in range(DEADLOCK_ATTEMPTS - 1):
        try:
            result = work()
            session.commit()
            return result
        except DBAPIError as error:
            session.rollback()
            if not is_deadlock(error):
                raise
            begin_write(session)
    result = work()
    session.commit()
    return result


def submit_judgment(
    session: Session,
    *,
    principal: Principal,
    assignment_id: int,
    submitted: VerdictInput,
    time_spent_ms: int | None = None,
    now: datetime | None = None,
    cache: ProjectAccessCache | None = None,
) -> StoredJudgment:
    """Store a verdict once; an identical resubmission returns the stored one."""
    check_time_spent(time_spent_ms)
    now = now or utcnow()
    if in_one_statement(session):
        return _submit_in_few_statements(
            session,
            principal=principal,
            assignment_id=assignment_id,
            submitted=submitted,
            time_spent_ms=time_spent_ms,
            now=now,
            cache=cache,
        )
    begin_write(session)
    return _submit_in_transaction(
        session,
        principal=principal,
        assignment=queue.get_assignment(session, assignment_id=assignment_id),
        assignment_id=assignment_id,
        submitted=submitted,
        time_spent_ms=time_spent_ms,
        now=now,
        cache=cache,
    )


def _submit_in_few_statements(
    session: Session,
    *,
    principal: Principal,
    assignment_id: int,
    submitted: VerdictInput,
    time_spent_ms: int | None,
    now: datetime,
    cache: ProjectAccessCache | None,
) -> StoredJudgment:
    """PostgreSQL: the assignment read, then the lease closed and the judgment stored in one statement.

    Where no submit hook can act (`gold.judgment_hook_idle`, `arbitration.judgment_hook_idle`),
    both run outside a transaction; else the statement and the hooks share one. A lease that
    is no longer live goes to the general path, which says why (or stores late work).
    """
    with single_statement.statements_that_commit(session):
        assignment = queue.get_assignment(session, assignment_id=assignment_id)
        mine = assignment is not None and assignment.annotator_id == principal.id
        project = project_by_id(session, project_id=assignment.project_id, cache=cache) if assignment and mine else None
        hooks_idle = (
            project is not None and gold.judgment_hook_idle(project) and arbitration.judgment_hook_idle(project)
        )
        if project is not None and assignment is not None and hooks_idle:
            stored = _close_and_store(
                session,
                project=project,
                assignment=assignment,
                submitted=submitted,
                time_spent_ms=time_spent_ms,
                now=now,
            )
            if stored is not None:
                return StoredJudgment(stored.judgment_id, assignment.id, created=True)
    if project is not None and assignment is not None and not hooks_idle:
        stored = _close_and_store(
            session, project=project, assignment=assignment, submitted=submitted, time_spent_ms=time_spent_ms, now=now
        )
        if stored is not None:
            item_id = assignment.item_id
            was_gold = gold.after_gold_judgment(
                session, project=project, annotator_id=principal.id, item_id=item_id, now=now, is_gold=stored.is_gold
            )
            seen = (stored.open_slots, stored.other_live_lease)
            arbitration.after_judgment(session, project=project, item_id=item_id, now=now, seen=seen)
            session.commit()
            feedback = was_gold and cached_options(project).purpose != "production"
            return StoredJudgment(stored.judgment_id, assignment.id, created=True, gold_feedback=feedback)
        session.rollback()
    return _submit_in_transaction(
        session,
        principal=principal,
        assignment=assignment,
        assignment_id=assignment_id,
        submitted=submitted,
        time_spent_ms=time_spent_ms,
        now=now,
        cache=cache,
    )


def _close_and_store(
    session: Session,
    *,
    project: ProjectRow,
    assignment: queue.AssignmentRow,
    submitted: VerdictInput,
    time_spent_ms: int | None,
    now: datetime,
) -> single_statement.StoredInOne | None:
    verdict = build_verdict(
        submitted, kind=project.kind, options=cached_options(project), shown_order=assignment.shown_order
    )
    return single_statement.close_and_store(
        session,
        assignment_id=assignment.id,
        annotator_id=assignment.annotator_id,
        payload=verdict.payload,
        verdict=verdict.key,
        time_spent_ms=time_spent_ms,
        guidelines_version=project.guidelines_version,
        left_position=assignment.shown_order[0] if assignment.shown_order else None,
        now=now,
    )


def _submit_in_transaction(
    session: Session,
    *,
    principal: Principal,
    assignment: queue.AssignmentRow | None,
    assignment_id: int,
    submitted: VerdictInput,
    time_spent_ms: int | None,
    now: datetime,
    cache: ProjectAccessCache | None,
) -> StoredJudgment:
    """The general path: every case (repeats, resubmissions, late work) in one write transaction."""
    begin_write(session)
    if assignment is None or assignment.annotator_id != principal.id:
        # Not one of the caller's assignments: a repeat travels under such an id (else NotFound).
        answer = repeats.submit_repeat(
            session,
            principal=principal,
            public_id=assignment_id,
            submitted=submitted,
            time_spent_ms=time_spent_ms,
            now=now,
            cache=cache,
        )
        return StoredJudgment(answer.judgment_id, assignment_id, created=answer.created)
    project = project_by_id(session, project_id=assignment.project_id, cache=cache)
    if project is None:
        raise NotFound("assignment_not_found", f"No assignment {assignment_id} for you.", field="assignment_id")
    verdict = build_verdict(
        submitted, kind=project.kind, options=cached_options(project), shown_order=assignment.shown_order
    )
    closed = queue.close_lease(
        session, assignment_id=assignment.id, annotator_id=principal.id, state=AssignmentState.SUBMITTED, now=now
    )
    if not closed:
        existing = queue.judgment_for_assignment(session, assignment_id=assignment.id)
        if existing is not None:
            session.rollback()
            judgment_id, stored = existing
            if stored == verdict.payload:
                return StoredJudgment(judgment_id, assignment.id, created=False)
            raise Conflict(
                "already_judged",
                "This assignment already has a different judgment; change it as a revision.",
                field="assignment_id",
            )
        revived = queue.revive_expired_for_submission(
            session, assignment_id=assignment.id, annotator_id=principal.id, item_id=assignment.item_id, now=now
        )
        if not revived:
            session.rollback()
            raise Conflict(
                "assignment_closed",
                "This assignment expired or was skipped and its item went to someone else.",
                field="assignment_id",
            )
    judgment_id = queue.insert_judgment(
        session,
        assignment=assignment,
        payload=verdict.payload,
        verdict=verdict.key,
        time_spent_ms=time_spent_ms,
        guidelines_version=project.guidelines_version,
        now=now,
    )
    was_gold = gold.after_gold_judgment(
        session, project=project, annotator_id=principal.id, item_id=assignment.item_id, now=now
    )
    arbitration.after_judgment(session, project=project, item_id=assignment.item_id, now=now)
    session.commit()
    feedback = was_gold and cached_options(project).purpose != "production"
    return StoredJudgment(judgment_id, assignment.id, created=True, gold_feedback=feedback)


def submit_pairwise(
    session: Session,
    *,
    principal: Principal,
    assignment_id: int,
    choice: str,
    rationale: str | None = None,
    time_spent_ms: int | None = None,
    now: datetime | None = None,
    cache: ProjectAccessCache | None = None,
) -> StoredJudgment:
    """A plain pairwise verdict: A, B, tie or both_bad, with an optional rationale."""
    return submit_judgment(
        session,
        principal=principal,
        assignment_id=assignment_id,
        submitted=VerdictInput(choice=choice, rationale=rationale),
        time_spent_ms=time_spent_ms,
        now=now,
        cache=cache,
    )


def skip_assignment(
    session: Session, *, principal: Principal, assignment_id: int, reason: str, now: datetime | None = None
) -> None:
    """Give a leased item back with a reason; it is never served to this annotator again."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("reason_required", "Say why you skip this item.", field="reason")
    if len(reason) > MAX_SKIP_REASON_CHARS:
        raise InvalidInput(
            "reason_too_long", f"A skip reason is limited to {MAX_SKIP_REASON_CHARS} characters.", field="reason"
        )
    now = now or utcnow()
    begin_write(session)
    assignment = queue.get_assignment(session, assignment_id=assignment_id)
    if assignment is None or assignment.annotator_id != principal.id:
        repeats.skip_repeat(session, principal=principal, public_id=assignment_id, reason=reason, now=now)
        return
    if not queue.skip_lease(session, assignment=assignment, reason=reason, now=now):
        session.rollback()
        raise Conflict("assignment_closed", "Only an item you currently hold can be skipped.", field="assignment_id")
    session.commit()


def check_time_spent(time_spent_ms: int | None) -> None:
    """Refuse a time on task that cannot be one (negative, or over a day)."""
    if time_spent_ms is not None and not 0 <= time_spent_ms <= MAX_TIME_SPENT_MS:
        raise InvalidInput("invalid_time_spent", "time_spent_ms must be between 0 and 24 hours.", field="time_spent_ms")
