"""The workbench over the JSON API: rubric, ranking and pairwise projects, skips, guidelines, revisions."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.services import progress
from preference_store.models import Assignment, AssignmentState, Judgment, JudgmentRevision, Role
from tests.conftest import People

Headers = dict[str, str]

RUBRIC = [
    {
        "name": "helpfulness",
        "description": "Does it answer the question?",
        "scale": {"min": 1, "max": 5},
        "anchors": {"1": "useless", "5": "complete"},
        "required": True,
    },
    {"name": "safe", "description": "Free of policy violations.", "scale": {"binary": True}, "required": True},
    {
        "name": "tone",
        "description": "Register of the answer.",
        "scale": {"labels": ["formal", "neutral", "casual"]},
        "required": False,
    },
]
TAXONOMY = [
    {"name": "gambling", "description": "Promotes betting.", "severities": ["minor", "severe"]},
    {"name": "spam", "violates_policy": True},
]


def _item(external_id: str, responses: int, **extra: Any) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "prompt": f"Question {external_id}?",
        "responses": [{"model": f"m{n}", "content": f"{external_id} answer {n}"} for n in range(responses)],
        "metadata": {"language": "th-TH", "category": "general"},
        **extra,
    }


def _team(people: People) -> tuple[Headers, Headers, Headers]:
    lead = people.make("wb-lead@example.org", Role.LEAD)
    first = people.make("wb-ann@example.org", Role.ANNOTATOR, languages=["th"])
    second = people.make("wb-other@example.org", Role.ANNOTATOR, languages=["th"])
    return people.headers(lead), people.headers(first), people.headers(second)


def _create(client: TestClient, lead: Headers, body: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    created = client.post("/api/v1/projects", json=body, headers=lead)
    assert created.status_code == 201, created.text
    slug = body["slug"]
    members = client.post(
        f"/api/v1/projects/{slug}/members",
        json={"emails": ["wb-ann@example.org", "wb-other@example.org"]},
        headers=lead,
    )
    assert members.status_code == 200, members.text
    imported = client.post(f"/api/v1/projects/{slug}/items", content=orjson.dumps(items), headers=lead)
    assert imported.status_code == 200, imported.text
    assert imported.json() == {"created": len(items), "unchanged": 0}
    return dict(created.json())


def _next(client: TestClient, slug: str, headers: Headers) -> dict[str, Any]:
    task = client.get(f"/api/v1/projects/{slug}/next", headers=headers)
    assert task.status_code == 200, task.text
    return dict(task.json())


def _judge(client: TestClient, task: dict[str, Any], headers: Headers, body: dict[str, Any]) -> int:
    judged = client.post(f"/api/v1/assignments/{task['assignment_id']}/judgment", json=body, headers=headers)
    assert judged.status_code == 201, judged.text
    return int(judged.json()["judgment_id"])


def _positions(session: Session, task: dict[str, Any]) -> dict[str, int]:
    """Shown label -> stored response position, for a served task."""
    order = session.scalar(select(Assignment.shown_order).where(Assignment.id == task["assignment_id"]))
    assert order is not None
    labels = [response["label"] for response in task["item"]["responses"]]
    return dict(zip(labels, order, strict=True))


def _stored(session: Session, judgment_id: int) -> tuple[dict[str, Any], str, int]:
    row = session.execute(
        select(Judgment.payload, Judgment.verdict, Judgment.guidelines_version).where(Judgment.id == judgment_id)
    ).one()
    return dict(row.payload), row.verdict, row.guidelines_version


def test_rubric_project_with_three_scales_stores_scores_by_position(
    client: TestClient, people: People, session: Session
) -> None:
    lead, annotator, _ = _team(people)
    project = _create(
        client,
        lead,
        {"slug": "wb-rubric", "name": "Rubric", "kind": "rubric", "overlap": 1, "rubric": RUBRIC},
        [_item("r3", 3), _item("r4", 4)],
    )
    assert [criterion["scale"] for criterion in project["rubric"]] == [
        {"min": 1, "max": 5, "binary": False, "labels": None},
        {"min": None, "max": None, "binary": True, "labels": None},
        {"min": None, "max": None, "binary": False, "labels": ["formal", "neutral", "casual"]},
    ]
    assert project["rubric"][0]["anchors"] == {"1": "useless", "5": "complete"}

    task = _next(client, "wb-rubric", annotator)
    assert task["kind"] == "rubric"
    assert task["item"]["external_id"] == "r3"
    assert [r["label"] for r in task["item"]["responses"]] == ["A", "B", "C"]
    assert task["item"]["language"] == "th-TH"
    incomplete = client.post(
        f"/api/v1/assignments/{task['assignment_id']}/judgment",
        json={"scores": {"A": {"helpfulness": 4, "safe": True}, "B": {"helpfulness": 2}}},
        headers=annotator,
    )
    assert incomplete.status_code == 422
    assert incomplete.json()["error"]["field"] == "scores.B.safe"
    scores = {
        "A": {"helpfulness": 4, "safe": True, "tone": "formal"},
        "B": {"helpfulness": 2, "safe": False},
        "C": {"helpfulness": 5, "safe": "yes", "tone": "casual"},
    }
    judgment_id = _judge(client, task, annotator, {"scores": scores})
    position = _positions(session, task)
    payload, verdict, _ = _stored(session, judgment_id)
    assert payload == {
        "scores": {
            str(position["A"]): {"helpfulness": 4, "safe": True, "tone": "formal"},
            str(position["B"]): {"helpfulness": 2, "safe": False},
            str(position["C"]): {"helpfulness": 5, "safe": True, "tone": "casual"},
        },
        "rationale": None,
    }
    assert verdict.startswith("s:")

    four = _next(client, "wb-rubric", annotator)
    assert [r["label"] for r in four["item"]["responses"]] == ["A", "B", "C", "D"]
    _judge(
        client,
        four,
        annotator,
        {"scores": {label: {"helpfulness": 3, "safe": True} for label in "ABCD"}, "rationale": "All fine."},
    )


def test_ranking_project_stores_ties_by_position(client: TestClient, people: People, session: Session) -> None:
    lead, annotator, _ = _team(people)
    _create(client, lead, {"slug": "wb-rank", "name": "Ranking", "kind": "ranking"}, [_item("k3", 3), _item("k4", 4)])
    task = _next(client, "wb-rank", annotator)
    judgment_id = _judge(client, task, annotator, {"ranking": [["B"], ["A", "C"]]})
    position = _positions(session, task)
    payload, verdict, _ = _stored(session, judgment_id)
    tied = sorted([position["A"], position["C"]])
    assert payload == {"ranking": [[position["B"]], tied], "all_bad": False, "rationale": None}
    assert verdict == f"{position['B']}>{tied[0]}={tied[1]}"

    four = _next(client, "wb-rank", annotator)
    missing = client.post(
        f"/api/v1/assignments/{four['assignment_id']}/judgment",
        json={"ranking": [["A"], ["B"], ["C"]]},
        headers=annotator,
    )
    assert missing.status_code == 422
    assert missing.json()["error"]["field"] == "ranking"
    judgment_id = _judge(client, four, annotator, {"ranking": [["D", "C", "B", "A"]], "all_bad": True})
    assert _stored(session, judgment_id)[0]["all_bad"] is True


def test_import_refuses_response_counts_outside_the_kind(client: TestClient, people: People) -> None:
    lead, _, _ = _team(people)
    client.post("/api/v1/projects", json={"slug": "wb-count", "name": "Count", "kind": "ranking"}, headers=lead)
    refused = client.post(
        "/api/v1/projects/wb-count/items", content=orjson.dumps([_item("two", 2), _item("ten", 10)]), headers=lead
    )
    assert refused.status_code == 422
    problems = {(p["row"], p["field"]) for p in refused.json()["error"]["problems"]}
    assert problems == {(1, "responses"), (2, "responses")}


def test_project_options_are_validated_by_field(client: TestClient, people: People) -> None:
    lead, _, _ = _team(people)
    no_rubric = client.post("/api/v1/projects", json={"slug": "wb-bad", "name": "Bad", "kind": "rubric"}, headers=lead)
    assert no_rubric.status_code == 422
    assert no_rubric.json()["error"]["code"] == "rubric_required"
    bad_scale = client.post(
        "/api/v1/projects",
        json={
            "slug": "wb-bad",
            "name": "Bad",
            "kind": "rubric",
            "rubric": [{"name": "x", "scale": {"min": 1, "max": 5, "binary": True}}],
        },
        headers=lead,
    )
    assert bad_scale.status_code == 422
    assert "rubric" in str(bad_scale.json()["error"])


def test_pairwise_with_strength_labels_rationale_and_rewrite(
    client: TestClient, people: People, session: Session
) -> None:
    lead, annotator, _ = _team(people)
    body = {
        "slug": "wb-pair",
        "name": "Pairwise",
        "strength": True,
        "rewrite": True,
        "rationale": "required",
        "taxonomy": TAXONOMY,
    }
    project = _create(client, lead, body, [_item("p1", 2), _item("p2", 2)])
    assert project["taxonomy"][0]["severities"] == ["minor", "severe"]
    task = _next(client, "wb-pair", annotator)
    url = f"/api/v1/assignments/{task['assignment_id']}/judgment"
    without_rationale = client.post(url, json={"choice": "A", "strength": "much"}, headers=annotator)
    assert without_rationale.json()["error"]["field"] == "rationale"
    unknown_label = client.post(
        url, json={"choice": "A", "strength": "much", "rationale": "r", "labels": {"B": ["bingo"]}}, headers=annotator
    )
    assert unknown_label.json()["error"]["field"] == "labels.B"
    verdict = {
        "choice": "B",
        "strength": "clearly",
        "labels": {"A": ["gambling:severe"], "B": []},
        "rationale": "A pushes a betting site.",
        "rewrite": "A safer, better answer.",
        "time_spent_ms": 5400,
    }
    judgment_id = _judge(client, task, annotator, verdict)
    position = _positions(session, task)
    payload, key, _ = _stored(session, judgment_id)
    assert payload == {
        "choice": "B",
        "preferred_position": position["B"],
        "strength": "clearly",
        "labels": {str(position["A"]): ["gambling:severe"]},
        "rewrite": {"position": position["B"], "content": "A safer, better answer."},
        "rationale": "A pushes a betting site.",
    }
    assert key == f"p{position['B']}"
    again = client.post(url, json=verdict, headers=annotator)
    assert again.status_code == 200
    assert again.json() == {"judgment_id": judgment_id, "assignment_id": task["assignment_id"], "created": False}


def test_skip_endpoint_gives_the_item_to_someone_else(client: TestClient, people: People, session: Session) -> None:
    lead, annotator, other = _team(people)
    _create(client, lead, {"slug": "wb-skip", "name": "Skip"}, [_item("s1", 2), _item("s2", 2)])
    task = _next(client, "wb-skip", annotator)
    url = f"/api/v1/assignments/{task['assignment_id']}/skip"
    assert client.post(url, json={"reason": ""}, headers=annotator).status_code == 422
    assert client.post(url, json={"reason": "  "}, headers=annotator).json()["error"]["code"] == "reason_required"
    assert client.post(url, json={"reason": "Not Thai"}, headers=other).status_code == 404
    assert client.post(url, json={"reason": "Not Thai"}, headers=annotator).status_code == 204
    assert client.post(url, json={"reason": "Not Thai"}, headers=annotator).status_code == 409
    assert _next(client, "wb-skip", annotator)["item"]["external_id"] == "s2"
    assert _next(client, "wb-skip", other)["item"]["external_id"] == "s1"
    state, reason = session.execute(
        select(Assignment.state, Assignment.skip_reason).where(Assignment.id == task["assignment_id"])
    ).one()
    assert (state, reason) == (AssignmentState.SKIPPED, "Not Thai")


def test_patch_changes_only_the_options_sent(client: TestClient, people: People) -> None:
    lead, annotator, _ = _team(people)
    _create(client, lead, {"slug": "wb-patch", "name": "Patch", "strength": True}, [_item("x", 2)])
    changed = client.patch(
        "/api/v1/projects/wb-patch",
        json={"daily_cap": 200, "route_by_language": True, "sensitive_categories": ["self-harm"]},
        headers=lead,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["daily_cap"], body["route_by_language"], body["strength"]) == (200, True, True)
    assert body["sensitive_categories"] == ["self-harm"]
    assert client.get("/api/v1/projects/wb-patch", headers=lead).json()["daily_cap"] == 200
    unknown = client.patch("/api/v1/projects/wb-patch", json={"overlap": 5}, headers=lead)
    assert unknown.status_code == 422
    bad = client.patch("/api/v1/projects/wb-patch", json={"daily_cap": 0}, headers=lead)
    assert bad.status_code == 422
    assert bad.json()["error"]["problems"][0]["field"] == "daily_cap"
    assert client.patch("/api/v1/projects/wb-patch", json={"daily_cap": 5}, headers=annotator).status_code == 403


def test_guidelines_put_publishes_a_version_later_judgments_record(
    client: TestClient, people: People, session: Session
) -> None:
    lead, annotator, _ = _team(people)
    _create(client, lead, {"slug": "wb-guide", "name": "Guide", "guidelines": "# v1"}, [_item("g1", 2), _item("g2", 2)])
    first = _next(client, "wb-guide", annotator)
    assert first["guidelines_version"] == 1
    before = _judge(client, first, annotator, {"choice": "A"})
    published = client.put(
        "/api/v1/projects/wb-guide/guidelines", json={"text": "# v2", "note": "Ties allowed."}, headers=lead
    )
    assert published.status_code == 200
    assert published.json()["guidelines_version"] == 2
    history = client.get("/api/v1/projects/wb-guide/guidelines", headers=annotator).json()
    assert [(v["version"], v["text"], v["note"]) for v in history] == [(2, "# v2", "Ties allowed."), (1, "# v1", "")]
    second = _next(client, "wb-guide", annotator)
    assert second["guidelines_version"] == 2
    after = _judge(client, second, annotator, {"choice": "tie"})
    assert _stored(session, before)[2] == 1
    assert _stored(session, after)[2] == 2
    assert client.put("/api/v1/projects/wb-guide/guidelines", json={"text": "x"}, headers=annotator).status_code == 403


def test_priority_endpoint_moves_items_up(client: TestClient, people: People) -> None:
    lead, annotator, _ = _team(people)
    _create(client, lead, {"slug": "wb-prio", "name": "Prio"}, [_item(f"q{n}", 2) for n in range(1, 5)])
    moved = client.post(
        "/api/v1/projects/wb-prio/priority", json={"external_ids": ["q3", "q4"], "priority": 7}, headers=lead
    )
    assert moved.json() == {"updated": 2}
    unknown = client.post(
        "/api/v1/projects/wb-prio/priority", json={"external_ids": ["q9"], "priority": 1}, headers=lead
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "unknown_items"
    out_of_range = client.post(
        "/api/v1/projects/wb-prio/priority", json={"external_ids": ["q1"], "priority": 1001}, headers=lead
    )
    assert out_of_range.status_code == 422
    served = []
    for _ in range(4):
        task = _next(client, "wb-prio", annotator)
        served.append(task["item"]["external_id"])
        _judge(client, task, annotator, {"choice": "A"})
    assert served == ["q3", "q4", "q1", "q2"]


def test_daily_cap_answers_409_over_the_api(client: TestClient, people: People) -> None:
    lead, annotator, _ = _team(people)
    _create(client, lead, {"slug": "wb-cap", "name": "Cap", "daily_cap": 1}, [_item("c1", 2), _item("c2", 2)])
    _judge(client, _next(client, "wb-cap", annotator), annotator, {"choice": "A"})
    capped = client.get("/api/v1/projects/wb-cap/next", headers=annotator)
    assert capped.status_code == 409
    assert capped.json()["error"]["code"] == "daily_cap_reached"
    progress = client.get("/api/v1/projects/wb-cap/my/progress", headers=annotator).json()
    assert (progress["done_today"], progress["daily_cap"]) == (1, 1)


def test_my_judgments_and_revisions(client: TestClient, people: People, session: Session) -> None:
    lead, annotator, other = _team(people)
    items = [_item(f"v{n}", 2) for n in range(1, 5)]
    _create(client, lead, {"slug": "wb-rev", "name": "Revise", "revisable_judgments": 2, "strength": True}, items)
    ids = []
    for _ in range(3):
        task = _next(client, "wb-rev", annotator)
        ids.append(_judge(client, task, annotator, {"choice": "A", "strength": "slightly", "time_spent_ms": 1000}))
    mine = client.get("/api/v1/projects/wb-rev/my/judgments", headers=annotator).json()
    assert [j["judgment_id"] for j in mine] == ids[::-1]
    assert [j["revisable"] for j in mine] == [True, True, False]
    assert mine[0]["verdict"] == {
        "choice": "A",
        "strength": "slightly",
        "labels": {},
        "rewrite": None,
        "rationale": None,
    }

    newest = ids[2]
    original_payload = _stored(session, newest)[0]
    revised = client.put(
        f"/api/v1/judgments/{newest}",
        json={"choice": "B", "strength": "much", "rationale": "Read it again.", "time_spent_ms": 500},
        headers=annotator,
    )
    assert revised.status_code == 200, revised.text
    body = revised.json()
    assert body["revision"] == 2
    assert body["verdict"]["choice"] == "B"
    assert body["time_spent_ms"] == 1500
    assert body["revised_at"] is not None
    assert [(h["revision"], h["verdict"]["choice"]) for h in body["history"]] == [(1, "A")]
    kept = session.execute(
        select(JudgmentRevision.revision, JudgmentRevision.payload).where(JudgmentRevision.judgment_id == newest)
    ).all()
    assert [(revision, dict(payload)) for revision, payload in kept] == [(1, original_payload)]
    assert _stored(session, newest)[0]["choice"] == "B"

    fetched = client.get(f"/api/v1/judgments/{newest}", headers=annotator).json()
    assert fetched == body
    listed = client.get("/api/v1/projects/wb-rev/my/judgments", headers=annotator).json()
    assert [h["revision"] for h in listed[0]["history"]] == [1]  # the API lists earlier revisions (pages do not)
    same = client.put(
        f"/api/v1/judgments/{newest}",
        json={"choice": "B", "strength": "much", "rationale": "Read it again."},
        headers=annotator,
    )
    assert same.json()["revision"] == 2

    too_old = client.put(f"/api/v1/judgments/{ids[0]}", json={"choice": "B", "strength": "much"}, headers=annotator)
    assert too_old.status_code == 409
    assert too_old.json()["error"]["code"] == "judgment_not_revisable"
    invalid = client.put(f"/api/v1/judgments/{newest}", json={"choice": "B"}, headers=annotator)
    assert invalid.status_code == 422
    assert invalid.json()["error"]["field"] == "strength"
    assert client.get(f"/api/v1/judgments/{newest}", headers=other).status_code == 404
    stolen = client.put(f"/api/v1/judgments/{newest}", json={"choice": "A", "strength": "much"}, headers=other)
    assert stolen.status_code == 404
    assert client.get("/api/v1/judgments/999999", headers=annotator).status_code == 404


def test_progress_counts_today_the_queue_and_the_streak(client: TestClient, people: People) -> None:
    lead, annotator, other = _team(people)
    items = [_item(f"n{n}", 2) for n in range(1, 4)]
    items[0]["metadata"]["sensitive"] = True
    _create(client, lead, {"slug": "wb-progress", "name": "Progress", "overlap": 2, "daily_cap": 50}, items)
    start = client.get("/api/v1/projects/wb-progress/my/progress", headers=annotator).json()
    assert start == {
        "done_today": 0,
        "left_in_queue": 3,
        "more_in_queue": False,
        "streak_days": 0,
        "sensitive_today": 0,
        "daily_cap": 50,
        "break_after_minutes": 50,
    }
    first = _next(client, "wb-progress", annotator)
    assert first["item"]["sensitive"] is True
    assert all(response["sensitive"] for response in first["item"]["responses"])
    _judge(client, first, annotator, {"choice": "A"})
    _judge(client, _next(client, "wb-progress", other), other, {"choice": "A"})
    held = _next(client, "wb-progress", annotator)
    assert held["item"]["sensitive"] is False
    numbers = client.get("/api/v1/projects/wb-progress/my/progress", headers=annotator).json()
    assert (numbers["done_today"], numbers["left_in_queue"], numbers["streak_days"]) == (1, 1, 1)
    assert numbers["sensitive_today"] == 1

    # Done today counts this project; the streak and flagged items seen count every project.
    elsewhere = [_item("e1", 2)]
    elsewhere[0]["metadata"]["sensitive"] = True
    _create(client, lead, {"slug": "wb-progress-2", "name": "Elsewhere", "overlap": 1}, elsewhere)
    _judge(client, _next(client, "wb-progress-2", annotator), annotator, {"choice": "B"})
    numbers = client.get("/api/v1/projects/wb-progress/my/progress", headers=annotator).json()
    assert (numbers["done_today"], numbers["streak_days"], numbers["sensitive_today"]) == (1, 1, 2)
    there = client.get("/api/v1/projects/wb-progress-2/my/progress", headers=annotator).json()
    assert (there["done_today"], there["streak_days"], there["sensitive_today"]) == (1, 1, 2)


def test_the_queue_is_counted_up_to_a_limit_and_says_there_is_more(
    client: TestClient, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    lead, annotator, _other = _team(people)
    _create(client, lead, {"slug": "wb-many", "name": "Many", "overlap": 1}, [_item(f"m{n}", 2) for n in range(5)])
    monkeypatch.setattr(progress, "QUEUE_COUNT_LIMIT", 3)
    numbers = client.get("/api/v1/projects/wb-many/my/progress", headers=annotator).json()
    assert (numbers["left_in_queue"], numbers["more_in_queue"]) == (3, True)
    for _ in range(2):
        _judge(client, _next(client, "wb-many", annotator), annotator, {"choice": "A"})
    numbers = client.get("/api/v1/projects/wb-many/my/progress", headers=annotator).json()
    assert (numbers["left_in_queue"], numbers["more_in_queue"]) == (3, False)
    _judge(client, _next(client, "wb-many", annotator), annotator, {"choice": "A"})
    numbers = client.get("/api/v1/projects/wb-many/my/progress", headers=annotator).json()
    assert (numbers["left_in_queue"], numbers["more_in_queue"]) == (2, False)
