"""The JSON API: projects, import, the annotation loop, exports, auth."""

from __future__ import annotations

import orjson
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.routing import Match

from app.api import v1
from preference_store.models import Assignment, Item, Judgment, Role
from tests.conftest import People, native_item


def _project(client: TestClient, headers: dict[str, str], *, slug: str = "api-proj", overlap: int = 1) -> None:
    response = client.post(
        "/api/v1/projects",
        json={"slug": slug, "name": "API project", "kind": "pairwise", "overlap": overlap},
        headers=headers,
    )
    assert response.status_code == 201, response.text


def _lead_and_annotator(people: People) -> tuple[dict[str, str], dict[str, str], str]:
    lead = people.make("lead@example.org", Role.LEAD)
    annotator = people.make("ann@example.org", Role.ANNOTATOR)
    return people.headers(lead), people.headers(annotator), annotator


def test_full_pairwise_loop_over_the_api(client: TestClient, people: People, session: Session) -> None:
    lead, annotator, annotator_email = _lead_and_annotator(people)
    _project(client, lead)
    assert client.post(
        "/api/v1/projects/api-proj/members", json={"emails": [annotator_email]}, headers=lead
    ).json() == {"added": 1}
    items = [native_item(f"i{n}", a=f"answer A{n}", b=f"answer B{n}") for n in range(3)]
    created = client.post("/api/v1/projects/api-proj/items", content=orjson.dumps(items), headers=lead)
    assert created.json() == {"created": 3, "unchanged": 0}
    again = client.post("/api/v1/projects/api-proj/items", content=orjson.dumps(items), headers=lead)
    assert again.json() == {"created": 0, "unchanged": 3}

    for _ in range(3):
        task = client.get("/api/v1/projects/api-proj/next", headers=annotator)
        assert task.status_code == 200
        body = task.json()
        assert [r["label"] for r in body["item"]["responses"]] == ["A", "B"]
        assert body["item"]["messages"] == [{"role": "user", "content": "Is this comment allowed?"}]
        assert "model" not in body["item"]["responses"][0]
        judged = client.post(
            f"/api/v1/assignments/{body['assignment_id']}/judgment", json={"choice": "A"}, headers=annotator
        )
        assert judged.status_code == 201
    assert client.get("/api/v1/projects/api-proj/next", headers=annotator).status_code == 204

    export = client.get("/api/v1/projects/api-proj/export/dpo?format=jsonl", headers=lead)
    assert export.status_code == 200
    rows = [orjson.loads(line) for line in export.content.splitlines()]
    assert len(rows) == 3
    shown_a = {row["chosen"][0]["content"] for row in rows}
    assert all(row["prompt"] == [{"role": "user", "content": "Is this comment allowed?"}] for row in rows)
    assert all(row["chosen"] != row["rejected"] for row in rows)
    assert len(shown_a) == 3


def test_submit_twice_stores_one_judgment(client: TestClient, people: People, session: Session) -> None:
    lead, annotator, email = _lead_and_annotator(people)
    _project(client, lead)
    client.post("/api/v1/projects/api-proj/members", json={"emails": [email]}, headers=lead)
    client.post("/api/v1/projects/api-proj/items", content=orjson.dumps([native_item("only")]), headers=lead)
    assignment_id = client.get("/api/v1/projects/api-proj/next", headers=annotator).json()["assignment_id"]
    url = f"/api/v1/assignments/{assignment_id}/judgment"
    first = client.post(url, json={"choice": "tie", "rationale": "same"}, headers=annotator)
    second = client.post(url, json={"choice": "tie", "rationale": "same"}, headers=annotator)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["judgment_id"] == second.json()["judgment_id"]
    assert second.json()["created"] is False
    different = client.post(url, json={"choice": "B"}, headers=annotator)
    assert different.status_code == 409
    assert different.json()["error"]["code"] == "already_judged"
    assert session.scalar(select(func.count()).select_from(Judgment)) == 1


def test_bad_import_lists_every_row_and_writes_nothing(client: TestClient, people: People, session: Session) -> None:
    lead, _, _ = _lead_and_annotator(people)
    _project(client, lead)
    rows = [
        native_item("good-1"),
        {"external_id": "bad-2", "prompt": "x", "responses": [{"content": ""}, {"content": "b"}]},
        {"prompt": "x", "responses": [{"content": "a"}, {"content": "b"}]},
        native_item("good-1"),
    ]
    response = client.post("/api/v1/projects/api-proj/items", content=orjson.dumps(rows), headers=lead)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_import"
    where = {(p["row"], p["field"]) for p in error["problems"]}
    assert where == {(2, "responses[0].content"), (3, "external_id"), (4, "external_id")}
    assert session.scalar(select(func.count()).select_from(Item)) == 0


def test_annotator_cannot_create_projects_or_export(client: TestClient, people: People) -> None:
    lead, annotator, _ = _lead_and_annotator(people)
    denied = client.post("/api/v1/projects", json={"slug": "nope-1", "name": "n"}, headers=annotator)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "lead_role_required"
    _project(client, lead)
    assert client.get("/api/v1/projects/api-proj/export/dpo", headers=annotator).status_code == 403


def test_annotator_outside_the_project_gets_not_found(client: TestClient, people: People) -> None:
    lead, annotator, _ = _lead_and_annotator(people)
    _project(client, lead)
    response = client.get("/api/v1/projects/api-proj/next", headers=annotator)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "project_not_found"


def test_requests_without_valid_credentials_are_refused(client: TestClient) -> None:
    assert client.get("/api/v1/projects/x/next").status_code == 401
    bad = client.get("/api/v1/projects/x/next", headers={"Authorization": "Bearer pst_nope"})
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "invalid_token"


def test_someone_elses_assignment_is_not_found(client: TestClient, people: People, session: Session) -> None:
    lead, annotator, email = _lead_and_annotator(people)
    other = people.make("other@example.org")
    _project(client, lead, overlap=2)
    client.post("/api/v1/projects/api-proj/members", json={"emails": [email, other]}, headers=lead)
    client.post("/api/v1/projects/api-proj/items", content=orjson.dumps([native_item("one")]), headers=lead)
    assignment_id = client.get("/api/v1/projects/api-proj/next", headers=annotator).json()["assignment_id"]
    stolen = client.post(
        f"/api/v1/assignments/{assignment_id}/judgment", json={"choice": "A"}, headers=people.headers(other)
    )
    assert stolen.status_code == 404
    assert session.scalar(select(func.count()).select_from(Assignment).where(Assignment.state == "leased")) == 1


def test_invalid_choice_names_the_field(client: TestClient, people: People) -> None:
    _, annotator, _ = _lead_and_annotator(people)
    response = client.post("/api/v1/assignments/1/judgment", json={"choice": "C"}, headers=annotator)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "choice"


def test_openapi_documents_the_v1_paths(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/projects",
        "/api/v1/projects/{slug}/items",
        "/api/v1/projects/{slug}/next",
        "/api/v1/assignments/{assignment_id}/judgment",
        "/api/v1/projects/{slug}/export/{kind}",
    ):
        assert path in paths
    assert client.get("/docs").status_code == 200


def test_the_annotation_loop_is_matched_before_every_other_route(app: FastAPI) -> None:
    # A request is matched against the routes in order: the loop's two calls, most of the
    # traffic, are tried right after FastAPI's own documentation routes.
    loop = [("/api/v1/projects/{slug}/next", {"GET"}), ("/api/v1/assignments/{assignment_id}/judgment", {"POST"})]
    assert [(route.path, route.methods) for route in v1.router.routes[:2] if isinstance(route, APIRoute)] == loop
    for path, method in (("/api/v1/projects/p/next", "GET"), ("/api/v1/assignments/7/judgment", "POST")):
        scope = {"type": "http", "path": path, "method": method, "root_path": "", "app": app}
        first = next(n for n, route in enumerate(app.router.routes) if route.matches(scope)[0] is Match.FULL)
        assert [getattr(route, "path", None) for route in app.router.routes[:first]] == [
            "/openapi.json",
            "/docs",
            "/docs/oauth2-redirect",
            "/redoc",
        ]
