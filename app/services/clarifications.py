"""Policy clarifications: annotators ask about the guidelines, leads answer, the answers form a log.

Annotators see their own questions (with answers) and the answered log of their projects;
open and dismissed questions of other people stay with the leads. Each question records the
guidelines version its asker saw; a later version can be marked as having absorbed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.principal import Principal
from app.services import audit
from app.services.projects import ProjectAccessCache, get_project
from preference_store import clarifications as store
from preference_store import projects as project_store
from preference_store.base import utcnow
from preference_store.clarifications import ClarificationQuery, ClarificationRow
from preference_store.engine import begin_write
from preference_store.models import ClarificationState
from preference_store.projects import ProjectRow

MIN_QUESTION_CHARS = 5
MAX_QUESTION_CHARS = 2000
MAX_ANSWER_CHARS = 10_000
MAX_SEARCH_CHARS = 200
MAX_ABSORB_IDS = 500
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
DUPLICATE_WINDOW = timedelta(seconds=30)
"""The same question from the same person on the same item within this window is stored once."""
STATES = tuple(state.value for state in ClarificationState)


@dataclass(frozen=True, slots=True)
class ClarificationView:
    """A clarification as pages and the API show it."""

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


@dataclass(frozen=True, slots=True)
class ClarificationFilters:
    """What a list asks for; empty values mean any."""

    state: str | None = None
    q: str | None = None
    guidelines_version: int | None = None


def clarification_filters(
    *, state: str | None = None, q: str | None = None, guidelines_version: int | None = None
) -> ClarificationFilters:
    """Checked filters from request values (blank strings mean any)."""
    state = (state or "").strip() or None
    if state is not None and state not in STATES:
        raise InvalidInput("invalid_state", f"state must be one of {', '.join(STATES)}.", field="state")
    q = (q or "").strip() or None
    if q is not None and len(q) > MAX_SEARCH_CHARS:
        raise InvalidInput("query_too_long", f"Search for at most {MAX_SEARCH_CHARS} characters.", field="q")
    if guidelines_version is not None and guidelines_version < 1:
        raise InvalidInput("invalid_version", "guidelines_version starts at 1.", field="guidelines_version")
    return ClarificationFilters(state=state, q=q, guidelines_version=guidelines_version)


def _view(project: ProjectRow, row: ClarificationRow) -> ClarificationView:
    return ClarificationView(
        id=row.id,
        project_slug=project.slug,
        item_external_id=row.item_external_id,
        asked_by=row.asked_by_name,
        question=row.question,
        asked_at=row.asked_at,
        guidelines_version=row.guidelines_version,
        state=row.state.value,
        answer=row.answer,
        answered_by=row.answered_by_name,
        answered_at=row.answered_at,
        absorbed_in_version=row.absorbed_in_version,
    )


def _clean_question(question: str) -> str:
    text = question.strip()
    if len(text) < MIN_QUESTION_CHARS:
        raise InvalidInput(
            "question_too_short", f"Write a question of at least {MIN_QUESTION_CHARS} characters.", field="question"
        )
    if len(text) > MAX_QUESTION_CHARS:
        raise InvalidInput(
            "question_too_long", f"A question is limited to {MAX_QUESTION_CHARS} characters.", field="question"
        )
    return text


def ask(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    question: str,
    external_id: str | None = None,
    guidelines_version: int | None = None,
    cache: ProjectAccessCache | None = None,
) -> ClarificationView:
    """Raise a question about the project's guidelines, optionally from one of its items.

    `guidelines_version` is the version the asker read (the current one when None). The
    same question sent again by the same person within a few seconds is stored once.
    """
    text = _clean_question(question)
    begin_write(session)
    project = get_project(session, principal=principal, slug=slug, cache=cache)
    version = project.guidelines_version if guidelines_version is None else guidelines_version
    if not 1 <= version <= project.guidelines_version:
        raise InvalidInput(
            "invalid_version",
            f"guidelines_version runs from 1 to {project.guidelines_version}.",
            field="guidelines_version",
        )
    item_id: int | None = None
    if external_id:
        found = project_store.item_ids_by_external_id(session, project_id=project.id, external_ids=[external_id])
        if external_id not in found:
            raise NotFound("item_not_found", f"No item '{external_id}' in '{slug}'.", field="external_id")
        item_id = found[external_id]
    asker = principal.user_id
    if asker is not None:
        store.lock_asker(session, user_id=asker)
    clarification_id = store.recent_same_question(
        session,
        project_id=project.id,
        asked_by_id=asker,
        item_id=item_id,
        question=text,
        since=utcnow() - DUPLICATE_WINDOW,
    )
    if clarification_id is None:
        clarification_id = store.insert_clarification(
            session,
            project_id=project.id,
            item_id=item_id,
            asked_by_id=asker,
            question=text,
            guidelines_version=version,
        )
    row = store.get_clarification(session, clarification_id=clarification_id)
    session.commit()
    assert row is not None
    return _view(project, row)


def _own_row(session: Session, *, project: ProjectRow, clarification_id: int) -> ClarificationRow:
    row = store.get_clarification(session, clarification_id=clarification_id)
    if row is None or row.project_id != project.id:
        raise NotFound("clarification_not_found", f"No clarification {clarification_id} in '{project.slug}'.")
    return row


def get_one(session: Session, *, principal: Principal, slug: str, clarification_id: int) -> ClarificationView:
    """One clarification of the project, whatever its state (leads)."""
    principal.require_staff()
    project = get_project(session, principal=principal, slug=slug)
    return _view(project, _own_row(session, project=project, clarification_id=clarification_id))


def answer(session: Session, *, principal: Principal, slug: str, clarification_id: int, text: str) -> ClarificationView:
    """Answer a question, or change the answer already given (leads); a dismissed one is answered too."""
    principal.require_staff()
    reply = text.strip()
    if not reply:
        raise InvalidInput("answer_required", "Write an answer.", field="answer")
    if len(reply) > MAX_ANSWER_CHARS:
        raise InvalidInput("answer_too_long", f"An answer is limited to {MAX_ANSWER_CHARS} characters.", field="answer")
    begin_write(session)
    project = get_project(session, principal=principal, slug=slug)
    before = _own_row(session, project=project, clarification_id=clarification_id)
    store.set_answer(
        session, clarification_id=clarification_id, answer=reply, answered_by_id=principal.user_id, at=utcnow()
    )
    row = store.get_clarification(session, clarification_id=clarification_id)
    audit.record(
        session,
        principal=principal,
        action="clarification.answer",
        project_id=project.id,
        target_type="clarification",
        target_id=clarification_id,
        details={"before": before.answer, "answer": reply},
    )
    session.commit()
    assert row is not None
    return _view(project, row)


def dismiss(session: Session, *, principal: Principal, slug: str, clarification_id: int) -> ClarificationView:
    """Close an open question without an answer (leads): a duplicate, or not about the guidelines."""
    principal.require_staff()
    begin_write(session)
    project = get_project(session, principal=principal, slug=slug)
    _own_row(session, project=project, clarification_id=clarification_id)
    if not store.set_dismissed(
        session, clarification_id=clarification_id, dismissed_by_id=principal.user_id, at=utcnow()
    ):
        session.rollback()
        raise Conflict("clarification_not_open", "Only an open question can be dismissed.")
    row = store.get_clarification(session, clarification_id=clarification_id)
    session.commit()
    assert row is not None
    return _view(project, row)


def absorb(
    session: Session, *, principal: Principal, slug: str, clarification_ids: Sequence[int], version: int
) -> list[ClarificationView]:
    """Mark answered clarifications as absorbed by a guidelines version published after they were asked (leads)."""
    principal.require_staff()
    ids = list(dict.fromkeys(clarification_ids))
    if not ids:
        raise InvalidInput("ids_required", "Name at least one clarification.", field="ids")
    if len(ids) > MAX_ABSORB_IDS:
        raise InvalidInput("too_many_ids", f"At most {MAX_ABSORB_IDS} clarifications at once.", field="ids")
    begin_write(session)
    project = get_project(session, principal=principal, slug=slug)
    if not 1 <= version <= project.guidelines_version:
        raise InvalidInput("invalid_version", f"version runs from 1 to {project.guidelines_version}.", field="version")
    found = store.states_of(session, project_id=project.id, clarification_ids=ids)
    missing = [str(one) for one in ids if one not in found]
    if missing:
        raise NotFound("clarification_not_found", f"No clarification {', '.join(missing)} in '{slug}'.", field="ids")
    for one in ids:
        state, asked_under = found[one]
        if state is not ClarificationState.ANSWERED:
            raise InvalidInput(
                "clarification_not_answered", f"Clarification {one} has no answer to absorb.", field="ids"
            )
        if version <= asked_under:
            raise InvalidInput(
                "version_not_later",
                f"Clarification {one} was asked under version {asked_under}: pick a later version.",
                field="version",
            )
    store.set_absorbed(session, project_id=project.id, clarification_ids=ids, version=version)
    rows = [store.get_clarification(session, clarification_id=one) for one in ids]
    session.commit()
    return [_view(project, row) for row in rows if row is not None]


def _query(
    filters: ClarificationFilters,
    *,
    asked_by_id: int | None = None,
    before_id: int | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> ClarificationQuery:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput("invalid_limit", f"limit runs from 1 to {MAX_PAGE_SIZE}.", field="limit")
    return ClarificationQuery(
        states=(ClarificationState(filters.state),) if filters.state else (),
        asked_by_id=asked_by_id,
        text=filters.q,
        guidelines_version=filters.guidelines_version,
        before_id=before_id,
        limit=limit,
    )


def _listed(session: Session, project: ProjectRow, query: ClarificationQuery) -> list[ClarificationView]:
    return [_view(project, row) for row in store.list_clarifications(session, project_id=project.id, query=query)]


def list_all(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    filters: ClarificationFilters,
    before_id: int | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> list[ClarificationView]:
    """Every clarification of the project matching the filters, newest first (leads)."""
    principal.require_staff()
    project = get_project(session, principal=principal, slug=slug)
    return _listed(session, project, _query(filters, before_id=before_id, limit=limit))


def open_questions(
    session: Session, *, principal: Principal, slug: str, limit: int = MAX_PAGE_SIZE
) -> list[ClarificationView]:
    """The project's open questions, oldest first: the leads' to-do list."""
    principal.require_staff()
    project = get_project(session, principal=principal, slug=slug)
    query = ClarificationQuery(states=(ClarificationState.OPEN,), oldest_first=True, limit=limit)
    return _listed(session, project, query)


def open_count(session: Session, *, principal: Principal, slug: str) -> int:
    """How many questions of the project wait for an answer (leads)."""
    principal.require_staff()
    project = get_project(session, principal=principal, slug=slug)
    return store.count_by_state(session, project_id=project.id, state=ClarificationState.OPEN)


def my_questions(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    filters: ClarificationFilters | None = None,
    before_id: int | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cache: ProjectAccessCache | None = None,
) -> list[ClarificationView]:
    """The caller's own questions in the project, with their answers, newest first."""
    project = get_project(session, principal=principal, slug=slug, cache=cache)
    if principal.user_id is None:
        return []
    query = _query(filters or ClarificationFilters(), asked_by_id=principal.user_id, before_id=before_id, limit=limit)
    return _listed(session, project, query)


def answered_log(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    filters: ClarificationFilters | None = None,
    before_id: int | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cache: ProjectAccessCache | None = None,
) -> list[ClarificationView]:
    """The project's answered clarifications, newest first: readable by everyone on the project."""
    project = get_project(session, principal=principal, slug=slug, cache=cache)
    filters = filters or ClarificationFilters()
    if filters.state not in (None, ClarificationState.ANSWERED.value):
        return []
    query = _query(replace(filters, state=ClarificationState.ANSWERED.value), before_id=before_id, limit=limit)
    return _listed(session, project, query)
