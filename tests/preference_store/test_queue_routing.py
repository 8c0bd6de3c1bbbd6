"""Which items the queue serves whom, in which order: language routing, priority, daily caps, skips."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.errors import PrefstackError
from app.principal import Principal
from app.services import accounts, annotation, importing, projects
from app.services.annotation import DailyCapReached
from preference_store import queue
from preference_store.base import utcnow
from preference_store.models import Assignment, AssignmentState, ItemQueue, Role
from tests.conftest import People, native_item
from tests.preference_store.test_queue import _plan

SLUG = "routing"


def _item(external_id: str, *, language: str | None = None, priority: int | None = None) -> dict[str, Any]:
    item = native_item(external_id)
    metadata: dict[str, Any] = {"market": "TH"}
    if language is not None:
        metadata["language"] = language
    item["metadata"] = metadata
    if priority is not None:
        item["priority"] = priority
    return item


def _project(
    session: Session, operator: Principal, items: list[dict[str, Any]], *, overlap: int = 1, **options: Any
) -> None:
    projects.create_project(session, principal=operator, slug=SLUG, name="Routing", overlap=overlap, options=options)
    _import(session, operator, items)


def _import(session: Session, operator: Principal, items: list[dict[str, Any]]) -> None:
    importing.import_items(session, principal=operator, slug=SLUG, rows=list(enumerate(items, start=1)))


def _annotator(session: Session, operator: Principal, people: People, email: str, **kwargs: Any) -> Principal:
    people.make(email, Role.ANNOTATOR, **kwargs)
    projects.add_members(session, principal=operator, slug=SLUG, emails=[email])
    principal = accounts.principal_for_api_token(session, token=people.tokens[email], cache=accounts.TokenCache(0))
    assert principal is not None
    return principal


def _judge_all(session: Session, principal: Principal) -> list[str]:
    """Lease and judge until nothing is left; the external ids in the order served."""
    served = []
    while (task := annotation.next_task(session, principal=principal, slug=SLUG)) is not None:
        served.append(task.external_id)
        annotation.submit_pairwise(session, principal=principal, assignment_id=task.assignment_id, choice="A")
    return served


def _judge_one(session: Session, principal: Principal) -> str:
    task = annotation.next_task(session, principal=principal, slug=SLUG)
    assert task is not None
    annotation.submit_pairwise(session, principal=principal, assignment_id=task.assignment_id, choice="A")
    return task.external_id


LANGUAGE_ITEMS = [
    _item("th-full", language="th-TH"),
    _item("en", language="en"),
    _item("none"),
    _item("th", language="th"),
    _item("vi", language="vi-VN"),
    _item("th-underscore", language="TH_th"),
]


def test_routing_serves_only_the_annotators_languages_and_items_without_one(
    session: Session, operator: Principal, people: People
) -> None:
    _project(session, operator, LANGUAGE_ITEMS, overlap=3, route_by_language=True)
    thai = _annotator(session, operator, people, "thai@example.org", languages=["th"])
    both = _annotator(session, operator, people, "both@example.org", languages=["en", "vi"])
    nobody = _annotator(session, operator, people, "none@example.org")
    assert sorted(_judge_all(session, thai)) == ["none", "th", "th-full", "th-underscore"]
    assert sorted(_judge_all(session, both)) == ["en", "none", "vi"]
    assert _judge_all(session, nobody) == ["none"]


def test_routing_key_of_an_item_is_its_primary_language_subtag(
    session: Session, operator: Principal, people: People
) -> None:
    _project(session, operator, LANGUAGE_ITEMS, route_by_language=True)
    keys: dict[str, str | None] = dict(
        session.execute(
            text("SELECT i.external_id, q.language FROM item i JOIN item_queue q ON q.item_id = i.id")
        ).all()
    )
    assert keys == {"th-full": "th", "en": "en", "none": None, "th": "th", "vi": "vi", "th-underscore": "th"}


def test_a_project_without_routing_serves_every_language(session: Session, operator: Principal, people: People) -> None:
    _project(session, operator, LANGUAGE_ITEMS)
    thai = _annotator(session, operator, people, "thai@example.org", languages=["th"])
    assert sorted(_judge_all(session, thai)) == sorted(item["external_id"] for item in LANGUAGE_ITEMS)


def test_routing_switched_on_later_applies_to_the_next_claim(
    session: Session, operator: Principal, people: People
) -> None:
    _project(session, operator, LANGUAGE_ITEMS)
    thai = _annotator(session, operator, people, "thai@example.org", languages=["th"])
    assert _judge_one(session, thai) == "th-full"
    projects.update_options(session, principal=operator, slug=SLUG, changes={"route_by_language": True})
    assert _judge_all(session, thai) == ["none", "th", "th-underscore"]


def test_higher_priority_is_served_first_then_import_order(
    session: Session, operator: Principal, people: People
) -> None:
    items = [
        _item("low", priority=-5),
        _item("plain-1"),
        _item("urgent", priority=100),
        _item("plain-2"),
        _item("high", priority=5),
    ]
    _project(session, operator, items)
    annotator = _annotator(session, operator, people, "prio@example.org")
    assert _judge_all(session, annotator) == ["urgent", "high", "plain-1", "plain-2", "low"]


def test_priority_raised_below_the_cursor_is_still_served(
    session: Session, operator: Principal, people: People
) -> None:
    _project(session, operator, [_item(f"i{n}") for n in range(1, 6)], overlap=2)
    first = _annotator(session, operator, people, "first@example.org")
    second = _annotator(session, operator, people, "second@example.org")
    assert [_judge_one(session, first) for _ in range(2)] == ["i1", "i2"]
    # The first annotator leased i1, i2 and i3 before the lead bumped i1 and i3 ...
    task = annotation.next_task(session, principal=first, slug=SLUG)
    assert task is not None and task.external_id == "i3"
    assert projects.set_priority(session, principal=operator, slug=SLUG, external_ids=["i1", "i3"], priority=10) == 2
    annotation.submit_pairwise(session, principal=first, assignment_id=task.assignment_id, choice="B")
    # ... so the second annotator's cursor sits past i1 once it judged i2; both still reach it.
    assert _judge_one(session, second) == "i1"
    assert _judge_one(session, second) == "i3"
    assert _judge_all(session, second) == ["i2", "i4", "i5"]
    assert _judge_all(session, first) == ["i4", "i5"]


def test_priority_lowered_item_is_served_last_even_to_an_annotator_past_it(
    session: Session, operator: Principal, people: People
) -> None:
    _project(session, operator, [_item(f"i{n}") for n in range(1, 5)], overlap=2)
    annotator = _annotator(session, operator, people, "down@example.org")
    assert _judge_one(session, annotator) == "i1"
    projects.set_priority(session, principal=operator, slug=SLUG, external_ids=["i2"], priority=-1)
    assert _judge_all(session, annotator) == ["i3", "i4", "i2"]


def test_items_imported_later_with_a_priority_reach_annotators_already_past_them(
    session: Session, operator: Principal, people: People
) -> None:
    _project(session, operator, [_item("first"), _item("last", priority=-3)])
    annotator = _annotator(session, operator, people, "later@example.org")
    assert _judge_all(session, annotator) == ["first", "last"]
    _import(session, operator, [_item("plain"), _item("rush", priority=50)])
    assert _judge_all(session, annotator) == ["rush", "plain"]


def test_set_priority_on_an_unknown_item_changes_nothing(session: Session, operator: Principal, people: People) -> None:
    _project(session, operator, [_item("i1")])
    with pytest.raises(PrefstackError) as caught:
        projects.set_priority(session, principal=operator, slug=SLUG, external_ids=["i1", "nope"], priority=5)
    assert getattr(caught.value, "code", None) == "unknown_items"
    ranks = session.scalars(select(ItemQueue.rank)).all()
    assert ranks == [queue.queue_rank(int(session.scalars(select(ItemQueue.item_id)).one()))]


def test_daily_cap_stops_new_leases_but_serves_a_held_one(
    session: Session, operator: Principal, people: People
) -> None:
    _project(session, operator, [_item(f"i{n}") for n in range(1, 6)])
    annotator = _annotator(session, operator, people, "cap@example.org")
    _judge_one(session, annotator)
    held = annotation.next_task(session, principal=annotator, slug=SLUG)
    assert held is not None
    projects.update_options(session, principal=operator, slug=SLUG, changes={"daily_cap": 1})
    again = annotation.next_task(session, principal=annotator, slug=SLUG)
    assert again is not None and again.assignment_id == held.assignment_id
    annotation.submit_pairwise(session, principal=annotator, assignment_id=held.assignment_id, choice="A")
    with pytest.raises(DailyCapReached) as caught:
        annotation.next_task(session, principal=annotator, slug=SLUG)
    assert caught.value.code == "daily_cap_reached"
    # A new UTC day starts a new count.
    tomorrow = annotation.start_of_day(utcnow()) + timedelta(days=1, hours=1)
    task = annotation.next_task(session, principal=annotator, slug=SLUG, now=tomorrow)
    assert task is not None


def test_daily_cap_with_an_expired_held_lease_stops_the_annotator(
    session: Session, operator: Principal, people: People
) -> None:
    _project(session, operator, [_item(f"i{n}") for n in range(1, 4)], daily_cap=1)
    annotator = _annotator(session, operator, people, "capexp@example.org")
    _judge_one(session, annotator)
    with pytest.raises(DailyCapReached):
        annotation.next_task(session, principal=annotator, slug=SLUG)
    assert session.scalar(select(ItemQueue.open_slots).order_by(ItemQueue.item_id).limit(1)) == 0
    assert sum(session.scalars(select(ItemQueue.open_slots))) == 2


def test_a_skipped_item_is_never_served_again_to_its_annotator_and_goes_to_another(
    session: Session, operator: Principal, people: People
) -> None:
    _project(session, operator, [_item("i1"), _item("i2")], overlap=1)
    skipper = _annotator(session, operator, people, "skipper@example.org")
    other = _annotator(session, operator, people, "other@example.org")
    task = annotation.next_task(session, principal=skipper, slug=SLUG)
    assert task is not None and task.external_id == "i1"
    annotation.skip_assignment(session, principal=skipper, assignment_id=task.assignment_id, reason="  Not my area ")
    assert _judge_all(session, skipper) == ["i2"]
    assert _judge_all(session, other) == ["i1"]
    skipped = session.execute(
        select(Assignment.state, Assignment.skip_reason).where(Assignment.id == task.assignment_id)
    ).one()
    assert tuple(skipped) == (AssignmentState.SKIPPED, "Not my area")


def test_skip_needs_a_reason_and_a_live_lease(session: Session, operator: Principal, people: People) -> None:
    _project(session, operator, [_item("i1"), _item("i2")])
    annotator = _annotator(session, operator, people, "reason@example.org")
    stranger = _annotator(session, operator, people, "stranger@example.org")
    task = annotation.next_task(session, principal=annotator, slug=SLUG)
    assert task is not None
    for principal, reason, code in (
        (annotator, "   ", "reason_required"),
        (annotator, "x" * 501, "reason_too_long"),
        (stranger, "mine now", "assignment_not_found"),
    ):
        with pytest.raises(PrefstackError) as caught:
            annotation.skip_assignment(session, principal=principal, assignment_id=task.assignment_id, reason=reason)
        assert getattr(caught.value, "code", None) == code
    annotation.submit_pairwise(session, principal=annotator, assignment_id=task.assignment_id, choice="A")
    with pytest.raises(PrefstackError) as closed:
        annotation.skip_assignment(session, principal=annotator, assignment_id=task.assignment_id, reason="late")
    assert getattr(closed.value, "code", None) == "assignment_closed"


def test_submitting_a_skipped_assignment_is_refused(session: Session, operator: Principal, people: People) -> None:
    _project(session, operator, [_item("i1")], overlap=1)
    annotator = _annotator(session, operator, people, "refused@example.org")
    task = annotation.next_task(session, principal=annotator, slug=SLUG)
    assert task is not None
    annotation.skip_assignment(session, principal=annotator, assignment_id=task.assignment_id, reason="unclear")
    with pytest.raises(PrefstackError) as caught:
        annotation.submit_pairwise(session, principal=annotator, assignment_id=task.assignment_id, choice="A")
    assert getattr(caught.value, "code", None) == "assignment_closed"
    assert session.scalar(select(ItemQueue.open_slots)) == 1


@pytest.mark.parametrize("routed", [False, True], ids=["all-languages", "routed"])
def test_claim_queries_stay_on_their_partial_indexes_with_priorities_and_skips(
    session: Session, operator: Principal, people: People, routed: bool
) -> None:
    items = [_item(f"i{n}", language="th" if n % 2 else None, priority=n % 3) for n in range(400)]
    _project(session, operator, items, route_by_language=routed)
    annotator = _annotator(session, operator, people, "plan@example.org", languages=["th"])
    for _ in range(10):
        _judge_one(session, annotator)
    task = annotation.next_task(session, principal=annotator, slug=SLUG)
    assert task is not None
    annotation.skip_assignment(session, principal=annotator, assignment_id=task.assignment_id, reason="unsure")
    projects.set_priority(session, principal=operator, slug=SLUG, external_ids=["i399", "i398"], priority=200)
    session.execute(text("ANALYZE"))
    params: dict[str, Any] = {
        "in_project": session.scalar(text("SELECT id FROM project")),
        "for_annotator": annotator.id,
    }
    if routed:
        params["languages"] = ["th"]
    statements = queue.claim_statements(routed)
    assert "ix_item_queue_open" in _plan(session, statements.candidate.params(**params))
    assert "ix_item_queue_reopened" in _plan(session, statements.reopened.params(**params))
