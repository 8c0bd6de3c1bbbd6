"""The clarifications JSON API: ask, list by role, answer, dismiss, absorb, errors."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient

from preference_store.models import Role
from tests.conftest import People, native_item

BASE = "/api/v1/projects/api-clar/clarifications"


@pytest.fixture
def heads(client: TestClient, people: People) -> dict[str, dict[str, str]]:
    """Headers of a lead, two annotators of the project and one of another project."""
    lead = people.headers(people.make("clar-api-lead@example.org", Role.LEAD))
    emails = [people.make(f"clar-api-{name}@example.org") for name in ("ann", "ann2", "out")]
    for slug, members in (("api-clar", emails[:2]), ("api-clar-other", emails[2:])):
        created = client.post("/api/v1/projects", json={"slug": slug, "name": slug}, headers=lead)
        assert created.status_code == 201, created.text
        client.post(f"/api/v1/projects/{slug}/members", json={"emails": members}, headers=lead)
        items = orjson.dumps([native_item(f"{slug}-1")])
        client.post(f"/api/v1/projects/{slug}/items", content=items, headers=lead)
    ann, ann2, out = (people.headers(email) for email in emails)
    return {"lead": lead, "ann": ann, "ann2": ann2, "out": out}


def test_annotator_asks_and_lead_answers_over_the_api(client: TestClient, heads: dict[str, dict[str, str]]) -> None:
    asked = client.post(BASE, json={"question": "Is sarcasm spam?", "external_id": "api-clar-1"}, headers=heads["ann"])
    assert asked.status_code == 201, asked.text
    body = asked.json()
    assert (body["state"], body["item_external_id"], body["guidelines_version"]) == ("open", "api-clar-1", 1)
    again = client.post(BASE, json={"question": "Is sarcasm spam?", "external_id": "api-clar-1"}, headers=heads["ann"])
    assert again.json()["id"] == body["id"]

    listed = client.get(BASE, params={"state": "open"}, headers=heads["lead"])
    assert [row["id"] for row in listed.json()] == [body["id"]]
    answered = client.post(f"{BASE}/{body['id']}/answer", json={"answer": "No."}, headers=heads["lead"])
    assert answered.status_code == 200, answered.text
    assert (answered.json()["state"], answered.json()["answer"]) == ("answered", "No.")
    mine = client.get(BASE, headers=heads["ann"]).json()
    assert [(row["id"], row["answer"]) for row in mine] == [(body["id"], "No.")]
    log = client.get(BASE, params={"scope": "answered", "q": "SARCASM"}, headers=heads["ann2"]).json()
    assert [row["id"] for row in log] == [body["id"]]


def test_annotators_get_403_for_lead_actions(client: TestClient, heads: dict[str, dict[str, str]]) -> None:
    asked = client.post(BASE, json={"question": "Is irony spam?"}, headers=heads["ann"]).json()
    for response in (
        client.get(BASE, params={"scope": "all"}, headers=heads["ann"]),
        client.post(f"{BASE}/{asked['id']}/answer", json={"answer": "Yes"}, headers=heads["ann"]),
        client.post(f"{BASE}/{asked['id']}/dismiss", headers=heads["ann"]),
        client.post(f"{BASE}/absorb", json={"ids": [asked["id"]], "version": 1}, headers=heads["ann"]),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "lead_role_required"
    assert client.get(BASE, headers=heads["ann2"]).json() == []
    assert client.get(BASE, params={"scope": "answered"}, headers=heads["ann2"]).json() == []


def test_other_projects_ids_and_outsiders_get_404(client: TestClient, heads: dict[str, dict[str, str]]) -> None:
    other = "/api/v1/projects/api-clar-other/clarifications"
    elsewhere = client.post(other, json={"question": "Only over there?"}, headers=heads["out"]).json()
    answered = client.post(f"{BASE}/{elsewhere['id']}/answer", json={"answer": "No"}, headers=heads["lead"])
    assert answered.status_code == 404
    assert answered.json()["error"]["code"] == "clarification_not_found"
    assert client.post(f"{BASE}/{elsewhere['id']}/dismiss", headers=heads["lead"]).status_code == 404
    outsider = client.post(BASE, json={"question": "Can I ask here?"}, headers=heads["out"])
    assert outsider.status_code == 404
    assert outsider.json()["error"]["code"] == "project_not_found"


def test_dismiss_absorb_and_validation_errors(client: TestClient, heads: dict[str, dict[str, str]]) -> None:
    short = client.post(BASE, json={"question": "ok"}, headers=heads["ann"])
    assert short.status_code == 422
    assert short.json()["error"] == {"code": "question_too_short", "message": short.json()["error"]["message"],
                                     "field": "question", "row": None}  # fmt: skip
    first = client.post(BASE, json={"question": "Is sarcasm spam?"}, headers=heads["ann"]).json()
    second = client.post(BASE, json={"question": "Same as before, sorry"}, headers=heads["ann"]).json()
    dismissed = client.post(f"{BASE}/{second['id']}/dismiss", headers=heads["lead"])
    assert dismissed.json()["state"] == "dismissed"
    assert client.post(f"{BASE}/{second['id']}/dismiss", headers=heads["lead"]).status_code == 409
    client.post(f"{BASE}/{first['id']}/answer", json={"answer": "No."}, headers=heads["lead"])
    published = client.put(
        "/api/v1/projects/api-clar/guidelines", json={"text": "# Sarcasm is not spam"}, headers=heads["lead"]
    )
    assert published.json()["guidelines_version"] == 2
    absorbed = client.post(f"{BASE}/absorb", json={"ids": [first["id"]], "version": 2}, headers=heads["lead"])
    assert absorbed.status_code == 200, absorbed.text
    assert absorbed.json()[0]["absorbed_in_version"] == 2
    bad_state = client.get(BASE, params={"state": "closed"}, headers=heads["lead"])
    assert (bad_state.status_code, bad_state.json()["error"]["field"]) == (422, "state")
