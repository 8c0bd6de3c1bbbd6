"""Calibration sessions over the JSON API: who may do what, blindness, and the lifecycle."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient

from preference_store.models import Role
from tests.conftest import People, native_item

SLUG = "calib-api"
BASE = f"/api/v1/projects/{SLUG}/calibration-sessions"


@pytest.fixture
def heads(client: TestClient, people: People) -> dict[str, dict[str, str]]:
    lead = people.headers(people.make("cal-api-lead@example.org", Role.LEAD))
    ann1 = people.headers(people.make("cal-api-1@example.org", team="Vendor Q"))
    ann2 = people.headers(people.make("cal-api-2@example.org", team="Vendor Q"))
    outsider = people.headers(people.make("cal-api-out@example.org", team="Vendor R"))
    client.post("/api/v1/projects", json={"slug": SLUG, "name": "Calibration API"}, headers=lead)
    items = [native_item(f"q-{n}") for n in (1, 2)]
    client.post(f"/api/v1/projects/{SLUG}/items", content=orjson.dumps(items), headers=lead)
    return {"lead": lead, "ann1": ann1, "ann2": ann2, "out": outsider}


def test_lifecycle_over_the_api_keeps_the_round_blind(client: TestClient, heads: dict[str, dict[str, str]]) -> None:
    created = client.post(BASE, json={"name": "API round", "teams": ["Vendor Q"]}, headers=heads["lead"])
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    assert client.post(BASE, json={"name": "x", "teams": ["Vendor Q"]}, headers=heads["ann1"]).status_code == 403
    bad = client.post(BASE, json={"name": "x", "teams": ["Nobody"]}, headers=heads["lead"])
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "teams")
    added = client.post(f"{BASE}/{session_id}/items", json={"external_ids": ["q-1", "q-2"]}, headers=heads["lead"])
    assert added.json() == {"added": 2}

    first = client.get(f"{BASE}/{session_id}/my-items", headers=heads["ann1"]).json()
    item_id = first["calibration_item_id"]
    wrong = client.put(f"{BASE}/{session_id}/items/{item_id}/answer", json={"choice": "C"}, headers=heads["ann1"])
    assert (wrong.status_code, wrong.json()["error"]["field"]) == (422, "choice")
    stored = client.put(
        f"{BASE}/{session_id}/items/{item_id}/answer",
        json={"choice": "A", "rationale": "secret-of-ann1", "time_spent_ms": 900},
        headers=heads["ann1"],
    )
    assert stored.status_code == 200 and stored.json()["next_item_id"] is not None

    # Nobody but the lead sees the session; the other participant sees only their own (empty) answer.
    other = client.get(f"{BASE}/{session_id}/my-items?item={item_id}", headers=heads["ann2"])
    assert other.status_code == 200 and other.json()["answer"] is None
    assert "secret-of-ann1" not in other.text
    assert client.get(f"{BASE}/{session_id}", headers=heads["ann2"]).status_code == 403
    assert client.get(f"{BASE}/{session_id}/my-items", headers=heads["out"]).status_code == 403
    put = client.put(f"{BASE}/{session_id}/items/{item_id}/answer", json={"choice": "A"}, headers=heads["out"])
    assert put.status_code == 403
    lead_view = client.get(f"{BASE}/{session_id}", headers=heads["lead"]).json()
    assert lead_view["items"] == [] and "secret-of-ann1" not in str(lead_view)

    revealed = client.post(f"{BASE}/{session_id}/reveal", headers=heads["lead"]).json()
    assert revealed["state"] == "revealed"
    assert "secret-of-ann1" in str(revealed["items"])
    late = client.put(f"{BASE}/{session_id}/items/{item_id}/answer", json={"choice": "B"}, headers=heads["ann2"])
    assert late.status_code == 409
    agreed = client.put(
        f"{BASE}/{session_id}/items/{item_id}/agreed", json={"choice": "A", "note": "A is right"}, headers=heads["lead"]
    )
    assert agreed.status_code == 200 and agreed.json()["note"] == "A is right"
    gold = client.post(f"{BASE}/{session_id}/items/{item_id}/gold", json={}, headers=heads["lead"])
    assert gold.status_code == 200 and gold.json()["is_gold"] is True
    closed = client.post(f"{BASE}/{session_id}/close", headers=heads["lead"]).json()
    assert closed["state"] == "closed"
    listed = client.get(BASE, headers=heads["lead"]).json()
    assert [(s["name"], s["state"], s["items"], s["participants"], s["answered"]) for s in listed] == [
        ("API round", "closed", 2, 2, 1)
    ]
