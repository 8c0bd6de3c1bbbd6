"""Repeated items: served again to the same annotator with sides swapped, stored apart, scored as self-consistency."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.principal import Principal
from app.services import accounts, annotation, gold, importing, progress, projects, quality_reports, repeats
from app.services.annotation import Task
from app.services.verdicts import VerdictInput
from preference_store import repeats as repeat_store
from preference_store.base import utcnow
from preference_store.models import Assignment, AssignmentState, Item, ItemQueue, Judgment, RepeatAssignment, Role
from tests.conftest import People, native_item

SLUG = "repeats"
Chooser = Callable[[Task], str]


@dataclass(frozen=True, slots=True)
class Seeded:
    lead: Principal
    annotators: list[Principal]


def _principal(session: Session, people: People, email: str) -> Principal:
    principal = accounts.principal_for_api_token(session, token=people.tokens[email], cache=accounts.TokenCache(0))
    assert principal is not None
    return principal


def _seed(
    session: Session, operator: Principal, people: People, *, items: int, annotators: int, **quality: object
) -> Seeded:
    projects.create_project(session, principal=operator, slug=SLUG, name="Repeats", overlap=annotators)
    rows = [(n, native_item(f"r{n:03d}", a=f"answer A{n}", b=f"answer B{n}")) for n in range(items)]
    importing.import_items(session, principal=operator, slug=SLUG, rows=rows)
    emails = [people.make(f"rep-{n}@example.org", team="Vendor R") for n in range(annotators)]
    projects.add_members(session, principal=operator, slug=SLUG, emails=emails)
    projects.update_options(session, principal=operator, slug=SLUG, changes={"quality": quality})
    lead = _principal(session, people, people.make("rep-lead@example.org", Role.LEAD))
    return Seeded(lead, [_principal(session, people, email) for email in emails])


def _content_choice(task: Task) -> str:
    """A consistent rater: always the response that reads 'answer A...', wherever it is shown."""
    return next(r.label for r in task.responses if r.content.startswith("answer A"))


def _left(task: Task) -> str:
    return task.responses[0].label


def _work(session: Session, who: Principal, choose: Chooser, *, limit: int = 1000) -> list[Task]:
    """Lease and answer until nothing is left; every task shown, in order."""
    shown: list[Task] = []
    while len(shown) < limit and (task := annotation.next_task(session, principal=who, slug=SLUG)) is not None:
        annotation.submit_pairwise(session, principal=who, assignment_id=task.assignment_id, choice=choose(task))
        shown.append(task)
    return shown


def _work_in_turns(session: Session, workers: list[tuple[Principal, Chooser]]) -> None:
    """Everyone answers one task in turn until nothing is left for anyone (as a team works at once)."""
    busy = list(workers)
    while busy:
        busy = [(who, choose) for who, choose in busy if _work(session, who, choose, limit=1)]


def _contents(task: Task) -> list[str]:
    return [response.content for response in task.responses]


def _counts(session: Session) -> tuple[int, int, int]:
    judgments = session.scalar(select(func.count()).select_from(Judgment)) or 0
    assignments = session.scalar(select(func.count()).select_from(Assignment)) or 0
    open_slots = session.scalar(select(func.sum(ItemQueue.open_slots))) or 0
    return judgments, assignments, open_slots


def _first_repeat(session: Session, who: Principal, *, limit: int = 200) -> tuple[Task, Task, int]:
    """Answer (choosing A) until a task repeats an item: (first showing, the repeat, judgments in between)."""
    seen: dict[str, tuple[int, Task]] = {}
    for number in range(limit):
        task = annotation.next_task(session, principal=who, slug=SLUG)
        assert task is not None
        if task.external_id in seen:
            at, first = seen[task.external_id]
            return first, task, number - at - 1
        seen[task.external_id] = (number, task)
        annotation.submit_pairwise(session, principal=who, assignment_id=task.assignment_id, choice="A")
    raise AssertionError("no repeat was served")


def _served_repeat(
    session: Session, operator: Principal, people: People, *, items: int, repeat_after: int, others_work: int
) -> tuple[Principal, Principal, Task, Task, int]:
    """Two annotators, the second having judged `others_work` items (repeats borrow their ids),
    then the first answering until a repeat comes: (first, second, first showing, repeat, between)."""
    seeded = _seed(session, operator, people, items=items, annotators=2, repeat_rate=0.2, repeat_after=repeat_after)
    ann, other = seeded.annotators
    _work(session, other, _left, limit=others_work)
    first, repeat, between = _first_repeat(session, ann)
    return ann, other, first, repeat, between


def test_repeat_turns_follow_the_rate_and_are_reproducible(session: Session, operator: Principal) -> None:
    project = projects.create_project(session, principal=operator, slug="turns", name="Turns")
    row = projects.get_project(session, principal=operator, slug=project.slug)
    turns = [repeats.repeat_turn(project=row, annotator_id=7, served=n, rate=0.1) for n in range(20_000)]
    assert 0.09 < sum(turns) / len(turns) < 0.11
    again = [repeats.repeat_turn(project=row, annotator_id=7, served=n, rate=0.1) for n in range(20_000)]
    assert turns == again
    assert not any(repeats.repeat_turn(project=row, annotator_id=7, served=n, rate=0.0) for n in range(1000))


def test_repeat_shows_own_old_item_sides_swapped_and_touches_no_judgment(
    session: Session, operator: Principal, people: People
) -> None:
    ann, other, first, repeat, between = _served_repeat(
        session, operator, people, items=60, repeat_after=4, others_work=3
    )
    assert between >= 4
    assert _contents(repeat) == list(reversed(_contents(first)))
    assert [r.label for r in repeat.responses] == [r.label for r in first.responses]
    own_ids = set(session.scalars(select(Assignment.id).where(Assignment.annotator_id == ann.id)))
    others_ids = set(session.scalars(select(Assignment.id).where(Assignment.annotator_id == other.id)))
    assert repeat.assignment_id not in own_ids
    assert repeat.assignment_id in others_ids
    # The same task again until it is answered.
    assert annotation.next_task(session, principal=ann, slug=SLUG) == repeat
    before = _counts(session)
    done_before = progress.my_progress(session, principal=ann, slug=SLUG).done_today
    stored = annotation.submit_pairwise(session, principal=ann, assignment_id=repeat.assignment_id, choice="B")
    assert stored.created and stored.assignment_id == repeat.assignment_id
    assert _counts(session) == before
    # The annotator's own count goes up as after any task.
    assert progress.my_progress(session, principal=ann, slug=SLUG).done_today == done_before + 1
    row = session.scalars(select(RepeatAssignment)).one()
    assert row.state is AssignmentState.SUBMITTED
    assert row.annotator_id == ann.id and row.verdict in {"p0", "p1"}
    # "A" the first time and "B" (the same response, now on the right) the second: consistent.
    first_judgment = session.scalars(select(Judgment).where(Judgment.id == row.judgment_id)).one()
    assert row.verdict == first_judgment.verdict
    assert session.scalar(select(func.count()).select_from(Judgment).where(Judgment.id == stored.judgment_id)) == 1
    assert annotation.next_task(session, principal=ann, slug=SLUG) != repeat


def test_gold_and_recent_judgments_are_never_repeated(session: Session, operator: Principal, people: People) -> None:
    seeded = _seed(session, operator, people, items=10, annotators=2, repeat_rate=0.2, repeat_after=3)
    ann = seeded.annotators[0]
    project = projects.get_project(session, principal=operator, slug=SLUG)
    for _ in range(3):
        task = annotation.next_task(session, principal=ann, slug=SLUG)
        assert task is not None
        annotation.submit_pairwise(session, principal=ann, assignment_id=task.assignment_id, choice="A")

    def candidates() -> int:
        return repeat_store.count_candidates(session, project_id=project.id, annotator_id=ann.id, repeat_after=3)

    assert candidates() == 0
    for _ in range(2):
        task = annotation.next_task(session, principal=ann, slug=SLUG)
        assert task is not None
        annotation.submit_pairwise(session, principal=ann, assignment_id=task.assignment_id, choice="A")
    assert candidates() == 2
    oldest = session.scalars(select(Judgment).where(Judgment.annotator_id == ann.id).order_by(Judgment.id)).first()
    assert oldest is not None
    gold.mark_gold(
        session,
        principal=seeded.lead,
        slug=SLUG,
        external_id=_external_id(session, oldest.item_id),
        verdict_input=VerdictInput(choice="A"),
    )
    assert candidates() == 1


def _external_id(session: Session, item_id: int) -> str:
    found = session.scalar(select(Item.external_id).where(Item.id == item_id))
    assert found is not None
    return found


def test_no_query_on_the_claim_path_when_repeats_are_off(session: Session, operator: Principal, people: People) -> None:
    seeded = _seed(session, operator, people, items=3, annotators=1)
    project = projects.get_project(session, principal=operator, slug=SLUG)
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    connection = session.connection()
    event.listen(connection, "before_cursor_execute", count)
    try:
        lease = repeats.repeat_lease(
            session, project=project, annotator_id=seeded.annotators[0].id, now=utcnow(), allow_new=True
        )
    finally:
        event.remove(connection, "before_cursor_execute", count)
    assert lease is None
    assert statements == []


def test_double_submit_stores_one_answer_and_a_different_one_conflicts(
    session: Session, operator: Principal, people: People
) -> None:
    ann, other, _, repeat, _ = _served_repeat(session, operator, people, items=60, repeat_after=2, others_work=2)
    once = annotation.submit_pairwise(session, principal=ann, assignment_id=repeat.assignment_id, choice="A")
    twice = annotation.submit_pairwise(session, principal=ann, assignment_id=repeat.assignment_id, choice="A")
    assert once.created and not twice.created
    assert twice.judgment_id == once.judgment_id
    with pytest.raises(Conflict) as conflict:
        annotation.submit_pairwise(session, principal=ann, assignment_id=repeat.assignment_id, choice="B")
    assert conflict.value.code == "already_judged"
    assert session.scalar(select(func.count()).select_from(RepeatAssignment)) == 1
    # Someone else cannot answer it: the same error as any assignment that is not theirs.
    with pytest.raises(NotFound) as missing:
        annotation.submit_pairwise(session, principal=other, assignment_id=repeat.assignment_id + 10_000, choice="A")
    assert missing.value.code == "assignment_not_found"


def test_a_lapsed_repeat_expires_and_a_skipped_one_is_closed(
    session: Session, operator: Principal, people: People
) -> None:
    ann, _, _, repeat, _ = _served_repeat(session, operator, people, items=80, repeat_after=2, others_work=20)
    later = utcnow() + timedelta(hours=2)
    after = annotation.next_task(session, principal=ann, slug=SLUG, now=later)
    assert after is not None and after.assignment_id != repeat.assignment_id
    lapsed = session.scalars(select(RepeatAssignment)).one()
    session.refresh(lapsed)
    assert lapsed.state is AssignmentState.EXPIRED
    before = _counts(session)
    # Late work on a lapsed repeat is kept, like late work on a lapsed task whose item is still open.
    late = annotation.submit_pairwise(session, principal=ann, assignment_id=repeat.assignment_id, choice="A", now=later)
    assert late.created and _counts(session) == before
    annotation.submit_pairwise(session, principal=ann, assignment_id=after.assignment_id, choice="A", now=later)
    _, second, _ = _first_repeat(session, ann)
    annotation.skip_assignment(session, principal=ann, assignment_id=second.assignment_id, reason="Not my language")
    skipped = session.scalars(select(RepeatAssignment).where(RepeatAssignment.public_id == second.assignment_id)).one()
    session.refresh(skipped)
    assert skipped.state is AssignmentState.SKIPPED and skipped.skip_reason == "Not my language"
    with pytest.raises(Conflict):
        annotation.submit_pairwise(session, principal=ann, assignment_id=second.assignment_id, choice="A")


def test_repeats_are_refused_outside_pairwise_projects(session: Session, operator: Principal) -> None:
    with pytest.raises(InvalidInput) as refused:
        projects.create_project(
            session,
            principal=operator,
            slug="rubric-rep",
            name="Rubric",
            kind="rubric",
            options={
                "rubric": [{"name": "accuracy", "scale": {"min": 1, "max": 5}}],
                "quality": {"repeat_rate": 0.1},
            },
        )
    assert refused.value.code == "repeats_pairwise_only"
    assert refused.value.field == "quality.repeat_rate"


def test_scorecard_shows_self_consistency_and_flags_an_inconsistent_rater(
    session: Session, operator: Principal, people: People
) -> None:
    seeded = _seed(session, operator, people, items=100, annotators=3, repeat_rate=0.2, repeat_after=5)
    consistent, random_rater, left_clicker = seeded.annotators
    coin = random.Random(5)
    _work_in_turns(
        session,
        [
            (consistent, _content_choice),
            (random_rater, lambda task: coin.choice([r.label for r in task.responses])),
            (left_clicker, _left),
        ],
    )
    cards = quality_reports.annotator_scorecards(
        session, principal=seeded.lead, slug=SLUG, query=quality_reports.ReportQuery(resamples=50)
    )
    by_id = {card.annotator_id: card for card in cards.annotators}
    steady, coin_flips, lefty = by_id[consistent.id], by_id[random_rater.id], by_id[left_clicker.id]
    for card in (steady, coin_flips, lefty):
        assert card.score.repeats >= 8
        assert card.score.judgments == 100
    assert steady.score.self_consistency == 1.0
    assert coin_flips.score.self_consistency is not None and coin_flips.score.self_consistency < 0.9
    # Always the left side: every swapped repeat is answered the other way.
    assert lefty.score.self_consistency == 0.0
    assert lefty.score.self_consistency_high is not None and lefty.score.self_consistency_high < 0.7
    assert "inconsistent" in [flag.code for flag in lefty.flags]
    assert "inconsistent" not in [flag.code for flag in steady.flags]
    flag = next(flag for flag in lefty.flags if flag.code == "inconsistent")
    assert flag.count == lefty.score.repeats
    table = quality_reports.annotators_table(cards)
    assert "self_consistency" in table.columns and "repeats" in table.columns
    row = next(row for row in table.rows if row[0] == consistent.id)
    assert row[table.columns.index("self_consistency")] == 1.0


def test_api_repeat_task_has_the_shape_of_any_task_and_the_report_the_column(
    client: TestClient, people: People
) -> None:
    lead = people.headers(people.make("api-lead@example.org", Role.LEAD))
    body = {"slug": SLUG, "name": "Repeats", "kind": "pairwise", "overlap": 2}
    assert client.post("/api/v1/projects", json=body, headers=lead).status_code == 201
    rows = [native_item(f"r{n:03d}", a=f"answer A{n}", b=f"answer B{n}") for n in range(40)]
    assert client.post(f"/api/v1/projects/{SLUG}/items", content=orjson.dumps(rows), headers=lead).status_code == 200
    emails = [people.make(f"api-{n}@example.org") for n in range(2)]
    assert client.post(f"/api/v1/projects/{SLUG}/members", json={"emails": emails}, headers=lead).status_code == 200
    patched = client.patch(
        f"/api/v1/projects/{SLUG}", json={"quality": {"repeat_rate": 0.2, "repeat_after": 2}}, headers=lead
    )
    assert patched.status_code == 200, patched.text
    ann, other = (people.headers(email) for email in emails)
    first = client.get(f"/api/v1/projects/{SLUG}/next", headers=other).json()
    client.post(f"/api/v1/assignments/{first['assignment_id']}/judgment", json={"choice": "A"}, headers=other)
    seen: set[str] = set()
    repeat = None
    for _ in range(60):
        task = client.get(f"/api/v1/projects/{SLUG}/next", headers=ann).json()
        if task["item"]["external_id"] in seen:
            repeat = task
            break
        seen.add(task["item"]["external_id"])
        assert (
            client.post(
                f"/api/v1/assignments/{task['assignment_id']}/judgment", json={"choice": "A"}, headers=ann
            ).status_code
            == 201
        )
    assert repeat is not None
    assert set(repeat) == set(first) and set(repeat["item"]) == set(first["item"])
    export = f"/api/v1/projects/{SLUG}/export/kto?provenance=true"
    exported = client.get(export, headers=lead).text
    # How many items the annotator judged before the repeat came depends on the ids the database
    # handed out (the schedule is a keyed draw): any non-empty export will do, what counts is below.
    assert len([orjson.loads(line) for line in exported.splitlines()]) >= 2
    done = client.post(f"/api/v1/assignments/{repeat['assignment_id']}/judgment", json={"choice": "B"}, headers=ann)
    assert done.status_code == 201
    assert set(done.json()) == {"judgment_id", "assignment_id", "created"}
    again = client.post(f"/api/v1/assignments/{repeat['assignment_id']}/judgment", json={"choice": "B"}, headers=ann)
    assert again.status_code == 200 and again.json()["created"] is False
    assert client.get(export, headers=lead).text == exported
    report = client.get(f"/api/v1/projects/{SLUG}/quality/annotators", headers=lead)
    assert report.status_code == 200, report.text
    scores = [card["score"] for card in report.json()["annotators"]]
    assert any(score["repeats"] == 1 and score["self_consistency"] == 1.0 for score in scores)
    assert report.json()["thresholds"]["low_self_consistency"] == 0.7
    csv = client.get(f"/api/v1/projects/{SLUG}/quality/annotators?format=csv", headers=lead)
    assert csv.status_code == 200
    assert "self_consistency" in csv.text.splitlines()[0]
    page = client.get(f"/projects/{SLUG}/quality/annotators", headers=lead)
    assert page.status_code == 200
    assert "Self-consistency" in page.text and 'class="num self-consistency"' in page.text
