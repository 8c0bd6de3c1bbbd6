"""Gold items: marking, mixing into the queue, training feedback, qualification, the floor."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.principal import AuthMethod, Principal
from app.services import gold
from preference_store.gold import GoldRow, gold_answers_of_project
from preference_store.models import GoldAnswer, ItemQueue, Notification, Project, Role
from preference_store.users import get_user_by_email
from tests.conftest import People, native_item


def _project(
    client: TestClient, lead: dict[str, str], slug: str, *, items: int, overlap: int = 1, **options: Any
) -> None:
    body = {"slug": slug, "name": slug.title(), "kind": "pairwise", "overlap": overlap, **options}
    created = client.post("/api/v1/projects", json=body, headers=lead)
    assert created.status_code == 201, created.text
    rows = [native_item(f"i{n:03d}", a=f"answer A{n}", b=f"answer B{n}") for n in range(items)]
    assert client.post(f"/api/v1/projects/{slug}/items", content=orjson.dumps(rows), headers=lead).status_code == 200


def _join(client: TestClient, lead: dict[str, str], slug: str, *emails: str) -> None:
    response = client.post(f"/api/v1/projects/{slug}/members", json={"emails": list(emails)}, headers=lead)
    assert response.status_code == 200, response.text


def _mark(
    client: TestClient, lead: dict[str, str], slug: str, external_id: str, choice: str = "A", **extra: Any
) -> Any:
    body = {"answer": {"choice": choice}, "explanation": f"Why {external_id}", **extra}
    return client.put(f"/api/v1/projects/{slug}/items/{external_id}/gold", json=body, headers=lead)


def _answer(client: TestClient, who: dict[str, str], slug: str, choose: Any) -> dict[str, Any] | None:
    """Lease the next task and answer it; `choose(task)` picks the shown label."""
    task = client.get(f"/api/v1/projects/{slug}/next", headers=who)
    if task.status_code == 204:
        return None
    assert task.status_code == 200, task.text
    body: dict[str, Any] = task.json()
    done = client.post(
        f"/api/v1/assignments/{body['assignment_id']}/judgment", json={"choice": choose(body)}, headers=who
    )
    assert done.status_code == 201, done.text
    return body


def _label_of(task: dict[str, Any], content: str) -> str:
    label: str = next(r["label"] for r in task["item"]["responses"] if r["content"] == content)
    return label


def _right(task: dict[str, Any]) -> str:
    """Gold answers in these tests are 'A' (position 0): pick the response shown for position 0."""
    number = int(task["item"]["external_id"][1:])
    return _label_of(task, f"answer A{number}")


def _wrong(task: dict[str, Any]) -> str:
    number = int(task["item"]["external_id"][1:])
    return _label_of(task, f"answer B{number}")


@pytest.fixture
def staff(people: People) -> dict[str, str]:
    return people.headers(people.make("lead@example.org", Role.LEAD))


def test_lead_marks_gold_and_reads_it_back(client: TestClient, people: People, staff: dict[str, str]) -> None:
    _project(client, staff, "gold-mark", items=3, strength=True)
    marked = _mark(client, staff, "gold-mark", "i001", "B", accepted=[{"choice": "tie"}])
    assert marked.status_code == 200, marked.text
    assert marked.json()["verdict"] == "p1"
    assert marked.json()["accepted_verdicts"] == ["tie"]
    assert marked.json()["answer"]["choice"] == "B"
    read = client.get("/api/v1/projects/gold-mark/items/i001/gold", headers=staff)
    assert read.json()["explanation"] == "Why i001"
    assert [row["external_id"] for row in client.get("/api/v1/projects/gold-mark/gold", headers=staff).json()] == [
        "i001"
    ]
    assert client.delete("/api/v1/projects/gold-mark/items/i001/gold", headers=staff).status_code == 204
    assert client.get("/api/v1/projects/gold-mark/items/i001/gold", headers=staff).status_code == 404


def test_invalid_gold_names_the_field(client: TestClient, staff: dict[str, str]) -> None:
    _project(client, staff, "gold-bad", items=2)
    wrong = client.put(
        "/api/v1/projects/gold-bad/items/i000/gold",
        json={"answer": {"choice": "tie", "strength": "much"}},
        headers=staff,
    )
    assert wrong.status_code == 422
    assert wrong.json()["error"]["field"] == "answer.strength"
    missing = _mark(client, staff, "gold-bad", "nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["field"] == "external_id"


def test_bulk_gold_is_all_or_nothing_with_every_row_reported(
    client: TestClient, staff: dict[str, str], session: Session
) -> None:
    _project(client, staff, "gold-bulk", items=3)
    rows = [
        {"external_id": "i000", "answer": {"choice": "A"}},
        {"external_id": "missing", "answer": {"choice": "A"}},
        {"external_id": "i002", "answer": {"ranking": [["A"], ["B"]]}},
    ]
    refused = client.post("/api/v1/projects/gold-bulk/gold", json=rows, headers=staff)
    assert refused.status_code == 422
    problems = refused.json()["error"]["problems"]
    assert {(p["row"], p["field"]) for p in problems} >= {(1, "external_id"), (2, "answer.ranking")}
    assert session.scalar(select(func.count()).select_from(GoldAnswer)) == 0
    good = client.post("/api/v1/projects/gold-bulk/gold", json=[rows[0]], headers=staff)
    assert good.json() == {"marked": 1}


def test_annotators_get_403_and_never_see_gold(client: TestClient, people: People, staff: dict[str, str]) -> None:
    annotator = people.make("ann@example.org")
    who = people.headers(annotator)
    _project(client, staff, "gold-hide", items=1, purpose="production", gold={"mix_rate": 0.5})
    _join(client, staff, "gold-hide", annotator)
    assert _mark(client, staff, "gold-hide", "i000", explanation="SECRET-EXPLANATION").status_code == 200
    assert client.get("/api/v1/projects/gold-hide/items/i000/gold", headers=who).status_code == 403
    assert _mark(client, who, "gold-hide", "i000").status_code == 403
    assert client.get("/api/v1/projects/gold-hide/gold", headers=who).status_code == 403
    task = client.get("/api/v1/projects/gold-hide/next", headers=who)
    assert task.status_code == 200
    assert task.json()["item"]["external_id"] == "i000"
    assert "SECRET" not in task.text and "gold" not in task.text
    done = client.post(
        f"/api/v1/assignments/{task.json()['assignment_id']}/judgment", json={"choice": "B"}, headers=who
    )
    assert "SECRET" not in done.text and "gold" not in done.text


def test_gold_is_mixed_in_at_the_rate_once_each_without_taking_overlap(
    client: TestClient, people: People, staff: dict[str, str], session: Session
) -> None:
    first, second = people.make("a1@example.org"), people.make("a2@example.org")
    _project(client, staff, "gold-mix", items=400, gold={"mix_rate": 0.2})
    _join(client, staff, "gold-mix", first, second)
    marked = client.post(
        "/api/v1/projects/gold-mix/gold",
        json=[{"external_id": f"i{n:03d}", "answer": {"choice": "A"}} for n in range(0, 400, 5)],
        headers=staff,
    )
    assert marked.json() == {"marked": 80}
    gold_ids = {f"i{n:03d}" for n in range(0, 400, 5)}
    served: dict[str, list[str]] = {first: [], second: []}
    for _ in range(100):
        for email in (first, second):
            task = _answer(client, people.headers(email), "gold-mix", lambda t: "A")
            assert task is not None
            served[email].append(task["item"]["external_id"])
    for email in (first, second):
        gold_served = [external_id for external_id in served[email] if external_id in gold_ids]
        assert len(gold_served) == len(set(gold_served))
    total_gold = sum(1 for email in served for external_id in served[email] if external_id in gold_ids)
    # 200 tasks at 0.2: mean 40, sd 5.7; four sd either side.
    assert 17 <= total_gold <= 63
    # Overlap 1: no ordinary item twice; gold items may go to both annotators and take no slot.
    ordinary = [external_id for email in served for external_id in served[email] if external_id not in gold_ids]
    assert len(ordinary) == len(set(ordinary))
    shared_gold = set(served[first]) & set(served[second]) & gold_ids
    assert shared_gold or total_gold < 30
    open_gold = session.scalar(
        select(func.sum(ItemQueue.open_slots))
        .join(GoldAnswer, GoldAnswer.item_id == ItemQueue.item_id)
        .where(ItemQueue.project_id == select(Project.id).where(Project.slug == "gold-mix").scalar_subquery())
    )
    assert open_gold == 0


def test_no_gold_served_when_the_rate_is_zero(client: TestClient, people: People, staff: dict[str, str]) -> None:
    annotator = people.make("ann@example.org")
    _project(client, staff, "gold-off", items=4)
    _join(client, staff, "gold-off", annotator)
    _mark(client, staff, "gold-off", "i000")
    seen = []
    while (task := _answer(client, people.headers(annotator), "gold-off", lambda t: "A")) is not None:
        seen.append(task["item"]["external_id"])
    assert sorted(seen) == ["i001", "i002", "i003"]


def test_removing_gold_gives_the_item_back_to_the_queue(
    client: TestClient, people: People, staff: dict[str, str]
) -> None:
    annotator = people.make("ann@example.org")
    _project(client, staff, "gold-back", items=2)
    _join(client, staff, "gold-back", annotator)
    _mark(client, staff, "gold-back", "i000")
    assert client.delete("/api/v1/projects/gold-back/items/i000/gold", headers=staff).status_code == 204
    seen = []
    while (task := _answer(client, people.headers(annotator), "gold-back", lambda t: "A")) is not None:
        seen.append(task["item"]["external_id"])
    assert sorted(seen) == ["i000", "i001"]


def test_training_feedback_shows_the_expected_answer_in_shown_labels(
    client: TestClient, people: People, staff: dict[str, str], session: Session
) -> None:
    annotator = people.make("ann@example.org")
    _project(client, staff, "train", items=2, purpose="training")
    _join(client, staff, "train", annotator)
    _mark(client, staff, "train", "i000", "A")
    task = client.get("/api/v1/projects/train/next", headers=people.headers(annotator)).json()
    assert task["item"]["external_id"] == "i000"
    wrong = _wrong(task)
    client.post(
        f"/api/v1/assignments/{task['assignment_id']}/judgment",
        json={"choice": wrong},
        headers=people.headers(annotator),
    )
    user = get_user_by_email(session, email=annotator)
    assert user is not None
    feedback = gold.gold_feedback(
        session, principal=Principal(user, AuthMethod.TOKEN), assignment_id=task["assignment_id"]
    )
    assert feedback is not None
    assert feedback.is_correct is False
    assert feedback.expected["choice"] == _right(task)
    assert feedback.given["choice"] == wrong
    assert feedback.explanation == "Why i000"


def test_qualification_unlocks_production(client: TestClient, people: People, staff: dict[str, str]) -> None:
    annotator = people.make("ann@example.org")
    who = people.headers(annotator)
    _project(client, staff, "qual", items=4, purpose="qualification")
    _project(
        client, staff, "prod", items=2, gold={"requires_qualification": ["qual"], "min_gold": 3, "pass_score": 0.6}
    )
    _join(client, staff, "qual", annotator)
    _join(client, staff, "prod", annotator)
    client.post(
        "/api/v1/projects/qual/gold",
        json=[{"external_id": f"i{n:03d}", "answer": {"choice": "A"}} for n in range(4)],
        headers=staff,
    )
    locked = client.get("/api/v1/projects/prod/next", headers=who)
    assert locked.status_code == 409
    assert locked.json()["error"]["code"] == "qualification_required"
    _answer(client, who, "qual", _right)
    _answer(client, who, "qual", _wrong)
    assert client.get("/api/v1/projects/prod/next", headers=who).status_code == 409
    _answer(client, who, "qual", _right)
    assert client.get("/api/v1/projects/prod/next", headers=who).status_code == 200


def test_falling_below_the_floor_pauses_and_notifies_until_resumed(
    client: TestClient, people: People, staff: dict[str, str], session: Session
) -> None:
    annotator = people.make("ann@example.org")
    who = people.headers(annotator)
    _project(client, staff, "floor", items=10, gold={"mix_rate": 0.5, "floor": 0.6, "window": 3})
    _join(client, staff, "floor", annotator)
    client.post(
        "/api/v1/projects/floor/gold",
        json=[{"external_id": f"i{n:03d}", "answer": {"choice": "A"}} for n in range(6)],
        headers=staff,
    )
    wrong_on_gold = 0
    while wrong_on_gold < 3:
        task = _answer(client, who, "floor", _wrong)
        assert task is not None
        wrong_on_gold += int(task["item"]["external_id"] < "i006")
    paused = client.get("/api/v1/projects/floor/next", headers=who)
    assert paused.status_code == 409
    assert paused.json()["error"]["code"] == "annotator_paused"
    assert session.scalar(select(func.count()).select_from(Notification)) == 1
    listed = client.get("/api/v1/notifications", headers=staff).json()
    assert listed["unread"] == 1
    note = listed["notifications"][0]
    assert note["kind"] == "annotator_paused" and note["project_slug"] == "floor"
    assert client.get("/api/v1/notifications", headers=who).status_code == 403
    user_id = note["subject_user_id"]
    assert client.post(f"/api/v1/projects/floor/members/{user_id}/resume", headers=who).status_code == 403
    resumed = client.post(f"/api/v1/projects/floor/members/{user_id}/resume", headers=staff)
    assert resumed.json() == {"resumed": True}
    assert client.get("/api/v1/projects/floor/next", headers=who).status_code == 200
    assert client.post("/api/v1/notifications/read", json={}, headers=staff).json() == {"marked": 1}
    assert client.get("/api/v1/notifications", headers=staff).json()["unread"] == 0


def test_gold_answers_of_project_for_quality_reports(
    client: TestClient, staff: dict[str, str], session: Session
) -> None:
    _project(client, staff, "gold-q", items=2)
    _mark(client, staff, "gold-q", "i001", "B", accepted=[{"choice": "tie"}])
    project_id = session.scalar(select(Project.id).where(Project.slug == "gold-q"))
    assert project_id is not None
    answers = gold_answers_of_project(session, project_id=project_id)
    assert list(answers.values()) == [("p1", ["tie"])]


def test_is_correct_counts_accepted_alternatives() -> None:
    now = datetime.now(UTC)
    row = GoldRow(1, 1, "p0", ["tie"], {}, "", "lead", None, now, now)
    assert gold.is_correct(row, "p0") and gold.is_correct(row, "tie")
    assert not gold.is_correct(row, "p1") and not gold.is_correct(row, "both_bad")


def test_exports_leave_gold_items_out_unless_asked(client: TestClient, people: People, staff: dict[str, str]) -> None:
    annotator = people.make("ann@example.org")
    who = people.headers(annotator)
    _project(client, staff, "gold-export", items=3, gold={"mix_rate": 0.3})
    _join(client, staff, "gold-export", annotator)
    _mark(client, staff, "gold-export", "i000")
    while _answer(client, who, "gold-export", _right) is not None:
        pass

    def exported(query: str) -> list[str]:
        response = client.get(f"/api/v1/projects/gold-export/export/dpo?provenance=true{query}", headers=staff)
        assert response.status_code == 200, response.text
        return sorted(orjson.loads(line)["external_id"] for line in response.content.splitlines())

    assert exported("") == ["i001", "i002"]
    assert exported("&include_gold=true") == ["i000", "i001", "i002"]


def test_mark_gold_from_a_stored_payload_reads_positions_not_shown_labels(
    client: TestClient, people: People, staff: dict[str, str], session: Session
) -> None:
    _project(client, staff, "gold-payload", items=1, rationale="off")
    lead = get_user_by_email(session, email="lead@example.org")
    assert lead is not None
    # An annotator who saw the responses swapped chose "A", which was response 2 (position 1).
    stored = {"choice": "A", "preferred_position": 1, "strength": None, "labels": {}, "rewrite": None, "rationale": "x"}
    view = gold.mark_gold(
        session,
        principal=Principal(lead, AuthMethod.TOKEN),
        slug="gold-payload",
        external_id="i000",
        payload=stored,
        source="calibration",
    )
    assert (view.verdict, view.answer["choice"], view.source) == ("p1", "B", "calibration")
