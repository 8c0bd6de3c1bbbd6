"""Gold items: leads set expected answers; annotators are scored, taught and paused by them.

A gold answer is given like a judgment, in labels A, B, C... that stand for the responses
in their stored order (response position 0 is A). Annotators never see a gold answer,
except as feedback after answering in a training or qualification project.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound, PermissionDenied, Problem
from app.principal import Principal
from app.services import audit
from app.services.notifications import notify_staff
from app.services.project_options import scale_key
from app.services.projects import cached_options, get_project
from app.services.schedule import DRAW_RANGE, keyed_draw
from app.services.verdicts import VerdictInput, build_verdict, shown_labels, shown_payload, verdict_input_of
from preference_store import gold as gold_store
from preference_store import items as item_store
from preference_store import judgments as judgment_store
from preference_store import projects as project_store
from preference_store import queue
from preference_store.base import utcnow
from preference_store.engine import begin_write
from preference_store.gold import GoldRow
from preference_store.projects import ProjectRow

MAX_EXPLANATION_CHARS = 10_000
MAX_BULK_ROWS = 10_000
GoldSource = Literal["lead", "calibration"]


@dataclass(frozen=True, slots=True)
class GoldInput:
    """One gold answer to set: the answer and its accepted alternatives in labels (A = position 0)."""

    external_id: str
    answer: VerdictInput
    accepted: list[VerdictInput] = field(default_factory=list)
    explanation: str = ""


@dataclass(frozen=True, slots=True)
class GoldView:
    """An item's gold answer as a lead sees it: labels are response positions (A = position 0)."""

    external_id: str
    verdict: str
    accepted_verdicts: list[str]
    answer: dict[str, Any]
    """The expected judgment in labels, as a judgment is submitted."""
    payload: dict[str, Any]
    explanation: str
    source: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class GoldFeedback:
    """What an annotator sees after answering a gold item in a training or qualification project."""

    external_id: str
    is_correct: bool
    expected: dict[str, Any]
    """The expected answer in the labels this annotator was shown."""
    given: dict[str, Any]
    explanation: str


def is_correct(gold: GoldRow, verdict_key: str) -> bool:
    """Whether a judgment's verdict key matches the gold answer or one of its accepted alternatives."""
    return verdict_key == gold.verdict or verdict_key in gold.accepted_verdicts


def gold_view(external_id: str, gold: GoldRow) -> GoldView:
    answer = answer_in_labels(gold.payload, list(range(_response_count(gold.payload))))
    return GoldView(
        external_id=external_id,
        verdict=gold.verdict,
        accepted_verdicts=list(gold.accepted_verdicts),
        answer=answer,
        payload=gold.payload,
        explanation=gold.explanation,
        source=gold.source,
        updated_at=gold.updated_at,
    )


def answer_in_labels(payload: dict[str, Any], shown_order: list[int]) -> dict[str, Any]:
    """A gold payload in the labels of one shown order (the stored choice is by position)."""
    shown = shown_payload(payload, shown_order)
    shown.pop("response_count", None)
    preferred = payload.get("preferred_position")
    if preferred is not None:
        shown["choice"] = shown_labels(len(shown_order))[shown_order.index(preferred)]
    return shown


def _response_count(payload: dict[str, Any]) -> int:
    # The payload keeps the item's response count so answers can be shown without the item.
    return int(payload.get("response_count", 2))


def _item_id(session: Session, *, project: ProjectRow, external_id: str) -> int:
    found = project_store.item_ids_by_external_id(session, project_id=project.id, external_ids=[external_id])
    if external_id not in found:
        raise NotFound("item_not_found", f"No item '{external_id}' in project '{project.slug}'.", field="external_id")
    return found[external_id]


def _staff_project(session: Session, *, principal: Principal, slug: str) -> ProjectRow:
    if not principal.is_staff:
        raise PermissionDenied("lead_role_required", "Only leads and admins see or set gold answers.")
    return get_project(session, principal=principal, slug=slug)


def _validated(
    session: Session, *, project: ProjectRow, item_id: int, row: GoldInput
) -> tuple[str, list[str], dict[str, Any], str]:
    """(verdict, accepted verdicts, payload, explanation), or InvalidInput naming each field."""
    content = item_store.load_item_content(session, item_id=item_id)
    if content is None:
        raise NotFound("item_not_found", f"No item '{row.external_id}'.", field="external_id")
    identity = sorted(response.position for response in content.responses)
    options = cached_options(project)
    problems: list[Problem] = []
    # A gold answer states the decision; strength and rationale are optional whatever the project asks.
    relaxed = options.model_copy(update={"rationale": "optional", "strength": options.strength})

    def build(answer: VerdictInput, where: str) -> tuple[str, dict[str, Any]] | None:
        answer_options = relaxed
        if answer.strength is None and options.strength:
            answer_options = relaxed.model_copy(update={"strength": False})
        try:
            verdict = build_verdict(answer, kind=project.kind, options=answer_options, shown_order=identity)
        except InvalidInput as error:
            for problem in error.problems or [Problem(error.message, field=error.field)]:
                problems.append(Problem(problem.message, field=f"{where}.{problem.field}" if problem.field else where))
            return None
        return verdict.key, verdict.payload

    main = build(row.answer, "answer")
    accepted: list[str] = []
    for index, alternative in enumerate(row.accepted):
        built = build(alternative, f"accepted.{index}")
        if built is not None and built[0] not in accepted and (main is None or built[0] != main[0]):
            accepted.append(built[0])
    explanation = row.explanation.strip()
    if len(explanation) > MAX_EXPLANATION_CHARS:
        problems.append(Problem(f"explanation is limited to {MAX_EXPLANATION_CHARS} characters.", field="explanation"))
    if problems or main is None:
        first = problems[0]
        raise InvalidInput("invalid_gold", first.message, field=first.field, problems=problems)
    payload = dict(main[1])
    payload["response_count"] = len(identity)
    return main[0], accepted, payload, explanation


def mark_gold(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    external_id: str,
    verdict_input: VerdictInput | None = None,
    payload: dict[str, Any] | None = None,
    accepted: list[VerdictInput] | None = None,
    explanation: str = "",
    source: GoldSource = "lead",
    now: datetime | None = None,
) -> GoldView:
    """Set (or replace) an item's gold answer, given in labels or as a stored payload by position."""
    if (verdict_input is None) == (payload is None):
        raise InvalidInput("answer_required", "Give the gold answer (verdict_input or payload).", field="answer")
    project = _staff_project(session, principal=principal, slug=slug)
    if verdict_input is None and payload is not None:
        count = _response_count(payload) if "response_count" in payload else _positions_in(payload)
        # A judgment's payload keeps the label its annotator saw; the position decides.
        shown = answer_in_labels(payload, list(range(count)))
        shown.pop("rationale", None)
        verdict_input = verdict_input_of(shown)
    assert verdict_input is not None
    begin_write(session)
    item_id = _item_id(session, project=project, external_id=external_id)
    before = gold_store.get_gold(session, item_id=item_id)
    row = GoldInput(external_id, verdict_input, list(accepted or []), explanation)
    view = _store(session, principal=principal, project=project, item_id=item_id, row=row, source=source, now=now)
    audit.record(
        session,
        principal=principal,
        action="gold.set",
        project_id=project.id,
        target_type="item",
        target_id=external_id,
        details={"before": _audited(before), "after": _audited(gold_store.get_gold(session, item_id=item_id))},
    )
    session.commit()
    return view


def _audited(gold: GoldRow | None) -> dict[str, Any] | None:
    """What the audit log keeps of a gold answer."""
    if gold is None:
        return None
    return {"verdict": gold.verdict, "accepted": gold.accepted_verdicts, "explanation": gold.explanation}


def _positions_in(payload: dict[str, Any]) -> int:
    positions = [int(p) for p in payload.get("scores", {})]
    positions += [p for group in payload.get("ranking", []) for p in group]
    return max(positions) + 1 if positions else 2


def _store(
    session: Session,
    *,
    principal: Principal,
    project: ProjectRow,
    item_id: int,
    row: GoldInput,
    source: GoldSource,
    now: datetime | None,
) -> GoldView:
    verdict, accepted, stored, explanation = _validated(session, project=project, item_id=item_id, row=row)
    now = now or utcnow()
    gold_store.upsert_gold(
        session,
        item_id=item_id,
        project_id=project.id,
        verdict=verdict,
        accepted_verdicts=accepted,
        payload=stored,
        explanation=explanation,
        source=source,
        created_by_id=principal.user_id,
        now=now,
    )
    gold = gold_store.get_gold(session, item_id=item_id)
    assert gold is not None
    return gold_view(row.external_id, gold)


def mark_gold_bulk(session: Session, *, principal: Principal, slug: str, rows: list[GoldInput]) -> int:
    """Set many gold answers in one transaction, or none: every row's problems are reported."""
    project = _staff_project(session, principal=principal, slug=slug)
    if len(rows) > MAX_BULK_ROWS:
        raise InvalidInput("too_many_rows", f"At most {MAX_BULK_ROWS} gold answers at once.", field="rows")
    begin_write(session)
    ids = project_store.item_ids_by_external_id(
        session, project_id=project.id, external_ids=[row.external_id for row in rows]
    )
    problems: list[Problem] = []
    seen: set[str] = set()
    for number, row in enumerate(rows):
        if row.external_id in seen:
            problems.append(Problem(f"Item '{row.external_id}' appears twice.", field="external_id", row=number))
            continue
        seen.add(row.external_id)
        if row.external_id not in ids:
            problems.append(Problem(f"No item '{row.external_id}' in this project.", field="external_id", row=number))
            continue
        try:
            _validated(session, project=project, item_id=ids[row.external_id], row=row)
        except InvalidInput as error:
            problems.extend(Problem(p.message, field=p.field, row=number) for p in error.problems)
    if problems:
        session.rollback()
        first = problems[0]
        raise InvalidInput("invalid_gold", first.message, field=first.field, row=first.row, problems=problems)
    for row in rows:
        item_id = ids[row.external_id]
        _store(session, principal=principal, project=project, item_id=item_id, row=row, source="lead", now=None)
    audit.record(
        session,
        principal=principal,
        action="gold.set",
        project_id=project.id,
        target_type="items",
        target_id=f"{len(rows)} items",
        details={"rows": len(rows), "external_ids": [row.external_id for row in rows[:100]]},
    )
    session.commit()
    return len(rows)


def get_gold_answer(session: Session, *, principal: Principal, slug: str, external_id: str) -> GoldView | None:
    """An item's gold answer (leads and admins), or None."""
    project = _staff_project(session, principal=principal, slug=slug)
    item_id = _item_id(session, project=project, external_id=external_id)
    gold = gold_store.get_gold(session, item_id=item_id)
    return None if gold is None else gold_view(external_id, gold)


def list_gold_answers(session: Session, *, principal: Principal, slug: str) -> list[GoldView]:
    """Every gold answer of the project (leads and admins)."""
    project = _staff_project(session, principal=principal, slug=slug)
    return [gold_view(external_id, gold) for external_id, gold in gold_store.list_gold(session, project_id=project.id)]


def remove_gold(session: Session, *, principal: Principal, slug: str, external_id: str) -> bool:
    """Remove an item's gold answer; the item goes back to the overlap queue. False if it had none."""
    project = _staff_project(session, principal=principal, slug=slug)
    begin_write(session)
    item_id = _item_id(session, project=project, external_id=external_id)
    before = gold_store.get_gold(session, item_id=item_id)
    removed = gold_store.delete_gold(session, item_id=item_id, overlap=project.overlap)
    if removed:
        audit.record(
            session,
            principal=principal,
            action="gold.remove",
            project_id=project.id,
            target_type="item",
            target_id=external_id,
            details={"before": _audited(before)},
        )
    session.commit()
    return removed


def gold_turn(*, project: ProjectRow, annotator_id: int, served: int, rate: float) -> bool:
    """Whether the annotator's next task (after `served` tasks) is a gold item.

    A hash of project, annotator and count: reproducible, spread evenly at `rate`, and
    not guessable from the clock or from what other annotators get.
    """
    if rate >= 1:
        return True
    return keyed_draw(project, f"{project.id}:{annotator_id}:{served}") / DRAW_RANGE < rate


def gold_rate(project: ProjectRow) -> float:
    """The share of tasks served from gold: every task first in training and qualification projects."""
    options = cached_options(project)
    return 1.0 if options.purpose != "production" else options.gold.mix_rate


def after_gold_judgment(
    session: Session,
    *,
    project: ProjectRow,
    annotator_id: int,
    item_id: int,
    now: datetime,
    is_gold: bool | None = None,
) -> bool:
    """After a judgment (before its commit): True if it was of a gold item; pauses below the floor.

    `is_gold`: whether the item is gold, when the submission already read it.
    """
    if judgment_hook_idle(project):
        return False
    options = cached_options(project)
    if not (gold_store.is_gold_item(session, item_id=item_id) if is_gold is None else is_gold):
        return False
    floor = options.gold.floor
    if floor is None:
        return True
    window = options.gold.window
    since = gold_store.resumed_at(session, project_id=project.id, user_id=annotator_id)
    recent = gold_store.recent_gold_results(
        session, project_id=project.id, annotator_id=annotator_id, limit=window, since=since
    )
    if len(recent) < window:
        return True
    right = sum(1 for verdict, gold, accepted in recent if verdict == gold or verdict in accepted)
    accuracy = right / len(recent)
    if accuracy < floor:
        reason = f"Gold accuracy {accuracy:.0%} over the last {window} gold items is below the floor of {floor:.0%}."
        if gold_store.set_pause(session, project_id=project.id, user_id=annotator_id, paused_at=now, reason=reason):
            notify_staff(
                session,
                project_id=project.id,
                subject_user_id=annotator_id,
                kind="annotator_paused",
                message=reason,
                now=now,
            )
    return True


def judgment_hook_idle(project: ProjectRow) -> bool:
    """Whether `after_gold_judgment` does nothing in this project, whatever the item."""
    options = cached_options(project)
    return options.purpose == "production" and options.gold.floor is None


def gold_feedback(session: Session, *, principal: Principal, assignment_id: int) -> GoldFeedback | None:
    """The expected answer after the caller answered a gold item in a training or qualification project."""
    assignment = queue.get_assignment(session, assignment_id=assignment_id)
    if assignment is None or assignment.annotator_id != principal.id:
        raise NotFound("assignment_not_found", f"No assignment {assignment_id} for you.", field="assignment_id")
    project = project_store.get_project_by_id(session, project_id=assignment.project_id)
    if project is None or cached_options(project).purpose == "production":
        return None
    gold = gold_store.get_gold(session, item_id=assignment.item_id)
    judged = queue.judgment_for_assignment(session, assignment_id=assignment_id)
    if gold is None or judged is None:
        return None
    judgment = judgment_store.get_judgment(session, judgment_id=judged[0])
    content = item_store.load_item_content(session, item_id=assignment.item_id)
    if judgment is None or content is None:
        return None
    order = assignment.shown_order
    expected = answer_in_labels(gold.payload, order)
    return GoldFeedback(
        external_id=content.external_id,
        is_correct=is_correct(gold, judgment.verdict),
        expected=expected,
        given=shown_payload(judgment.payload, order),
        explanation=gold.explanation,
    )


@dataclass(frozen=True, slots=True)
class GoldCard:
    """The lead's gold answer card of one item: what the form asks, and the answer set."""

    slug: str
    external_id: str
    kind: str
    labels: list[str]
    """A label per response, in stored order (A is response 1)."""
    strength: bool
    criteria: list[tuple[str, list[str]]]
    """Rubric criteria with the form values of their scale."""
    gold: GoldView | None


def gold_card(session: Session, *, principal: Principal, slug: str, external_id: str) -> GoldCard:
    """What the lead's item page shows and asks about the item's gold answer."""
    project = _staff_project(session, principal=principal, slug=slug)
    item_id = _item_id(session, project=project, external_id=external_id)
    content = item_store.load_item_content(session, item_id=item_id)
    count = len(content.responses) if content is not None else 0
    stored = gold_store.get_gold(session, item_id=item_id)
    options = cached_options(project)
    return GoldCard(
        slug=project.slug,
        external_id=external_id,
        kind=project.kind.value,
        labels=shown_labels(count),
        strength=options.strength,
        criteria=[(c.name, [scale_key(v) for v in c.scale.values()]) for c in options.rubric],
        gold=None if stored is None else gold_view(external_id, stored),
    )
