"""The audit log: each lead/admin action writes one event in its own transaction; leads read it, annotators don't."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.principal import command_line_principal
from app.services import accounts, audit
from app.services.export_jobs import ExportJobRunner
from preference_store.models import AuditEvent, Role
from tests.conftest import People, native_item
from tests.security.world import LEAD, OWNER, PEER, SLUG, seed

Headers = dict[str, str]


def _events(session: Session, action: str | None = None) -> list[AuditEvent]:
    session.expire_all()
    query = select(AuditEvent).order_by(AuditEvent.id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return list(session.scalars(query).all())


def _only(session: Session, action: str) -> AuditEvent:
    found = _events(session, action)
    assert len(found) == 1, [(event.action, event.target_id) for event in found]
    return found[0]


@pytest.fixture
def lead(people: People) -> Headers:
    people.make(LEAD, Role.LEAD)
    people.make(OWNER)
    people.make(PEER)
    return people.headers(LEAD)


def test_project_actions_are_logged_with_actor_and_details(
    client: TestClient, session: Session, people: People, lead: Headers
) -> None:
    lead_id = session.scalars(select(func.min(AuditEvent.id))).one()  # events of the fixture's users
    assert client.post("/api/v1/projects", json={"slug": "aud", "name": "Audited"}, headers=lead).status_code == 201
    created = _only(session, "project.create")
    assert (created.actor_role, created.target_type, created.target_id) == ("lead", "project", "aud")
    assert created.request_id and created.client == "testclient"
    assert lead_id is not None

    client.patch("/api/v1/projects/aud", json={"rewrite": True}, headers=lead)
    updated = _only(session, "project.update")
    assert updated.details["after"].get("rewrite") is True and "rewrite" not in updated.details["before"]

    client.put("/api/v1/projects/aud/guidelines", json={"text": "Be kind.", "note": "tone"}, headers=lead)
    guidelines = _only(session, "guidelines.update")
    assert guidelines.details["note"] == "tone" and guidelines.details["version"] == 2

    client.post("/api/v1/projects/aud/members", json={"emails": [OWNER, PEER]}, headers=lead)
    assert _only(session, "member.add").details["emails"] == sorted([OWNER, PEER])
    assert {event.actor_id for event in _events(session) if event.action != "user.create"} - {None} == {
        created.actor_id
    }


def test_users_and_tokens_made_at_the_command_line_are_logged(session: Session) -> None:
    accounts.create_user(session, email="new-aud@example.org", name="New", role=Role.LEAD, password=None)
    issued = accounts.create_api_token(session, email="new-aud@example.org", name="ci")
    created = [event for event in _events(session, "user.create") if event.details["email"] == "new-aud@example.org"]
    assert len(created) == 1 and created[0].actor_role == "cli" and created[0].actor_id is None
    assert created[0].details["role"] == "lead"
    token = [event for event in _events(session, "token.create") if event.target_id == str(issued.token_id)]
    assert len(token) == 1 and token[0].details["prefix"] == issued.token[:12]
    assert issued.token not in orjson.dumps(token[0].details).decode()


def test_a_refused_change_logs_nothing(client: TestClient, session: Session, lead: Headers) -> None:
    assert client.post("/api/v1/projects", json={"slug": "aud", "name": "A"}, headers=lead).status_code == 201
    again = client.post("/api/v1/projects", json={"slug": "aud", "name": "A"}, headers=lead)
    assert again.status_code == 409
    bad = client.post("/api/v1/projects/aud/members", json={"emails": ["nobody@example.org"]}, headers=lead)
    assert bad.status_code == 422
    assert len(_events(session, "project.create")) == 1 and _events(session, "member.add") == []


def test_an_event_commits_and_rolls_back_with_its_change(session: Session) -> None:
    operator = command_line_principal()
    before = len(_events(session))
    session.rollback()
    audit.record(session, principal=operator, action="project.update", target_type="project", target_id="x")
    session.rollback()
    assert len(_events(session)) == before
    audit.record(session, principal=operator, action="project.update", target_type="project", target_id="x")
    session.commit()
    assert len(_events(session)) == before + 1
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record(session, principal=operator, action="made.up")


def test_leads_page_through_filter_and_download_the_log(
    client: TestClient, session: Session, people: People, lead: Headers
) -> None:
    for n in range(5):
        client.post("/api/v1/projects", json={"slug": f"aud-{n}", "name": f"A{n}"}, headers=lead)
    seen: list[int] = []
    url = "/api/v1/audit?action=project.create&limit=2"
    while url:
        page = client.get(url, headers=lead).json()
        seen += [event["id"] for event in page["events"]]
        assert all(event["actor_email"] == LEAD for event in page["events"])
        url = f"/api/v1/audit?action=project.create&limit=2&before={page['next_before']}" if page["next_before"] else ""
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)

    one = client.get("/api/v1/audit?project=aud-3", headers=lead).json()["events"]
    assert [event["target_id"] for event in one] == ["aud-3"]
    assert client.get(f"/api/v1/audit?actor={OWNER}", headers=lead).json()["events"] == []
    wrong = client.get("/api/v1/audit?action=nope", headers=lead)
    assert (wrong.status_code, wrong.json()["error"]["field"]) == (422, "action")
    assert client.get("/api/v1/audit?since=2000-01-01&until=2000-01-02", headers=lead).json()["events"] == []

    page = client.get("/audit?action=project.create", headers=lead)
    assert page.status_code == 200 and page.text.count('id="audit-event-') == 5
    download = client.get("/audit.csv?action=project.create", headers=lead)
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert download.headers["content-type"].startswith("text/csv") and len(rows) == 5
    assert {row["actor"] for row in rows} == {LEAD}

    annotator = people.headers(OWNER)
    for path in ("/api/v1/audit", "/audit", "/audit.csv"):
        assert client.get(path, headers=annotator).status_code == 403, path


# ---- the lead actions of other features ----


def _world(client: TestClient, session: Session, people: People) -> tuple[Headers, dict[str, Any]]:
    world = seed(client, session, people)
    return people.headers(LEAD), world.params


def test_gold_arbitration_calibration_clarification_export_and_import_actions_are_logged(
    client: TestClient, session: Session, people: People, runner: ExportJobRunner
) -> None:
    lead, params = _world(client, session, people)
    api = f"/api/v1/projects/{SLUG}"
    seeded = {event.action for event in _events(session)}
    assert {"project.create", "member.add", "gold.set", "export.create", "import.commit"} <= seeded

    client.put(f"{api}/items/sec-2/gold", json={"answer": {"choice": "B"}, "explanation": "B."}, headers=lead)
    gold = [event for event in _events(session, "gold.set") if event.target_id == "sec-2"]
    assert len(gold) == 1 and gold[0].details["after"]["verdict"]
    client.delete(f"{api}/items/sec-2/gold", headers=lead)
    removed = _only(session, "gold.remove")
    assert removed.target_id == "sec-2" and removed.details["before"]["verdict"] == gold[0].details["after"]["verdict"]

    case = params["case_id"]
    client.post(f"{api}/arbitration/{case}/verdict", json={"choice": "A", "rationale": "A is safer."}, headers=lead)
    verdict = _only(session, "arbitration.verdict")
    assert verdict.target_id == case and verdict.details["rationale"] == "A is safer."
    other = client.post(f"{api}/items/sec-3/arbitration", headers=lead).json()["case_id"]
    client.post(f"{api}/arbitration/{other}/dismiss", json={"rationale": "fine"}, headers=lead)
    assert _only(session, "arbitration.dismiss").target_id == str(other)

    base = f"{api}/calibration-sessions/{params['session_id']}"
    client.post(f"{base}/reveal", headers=lead)
    assert _only(session, "calibration.reveal").target_id == params["session_id"]
    agreed = client.put(f"{base}/items/{params['item_id']}/agreed", json={"choice": "A", "note": "n"}, headers=lead)
    assert agreed.status_code == 200, agreed.text
    client.post(f"{base}/items/{params['item_id']}/gold", json={"explanation": "Agreed."}, headers=lead)
    assert _only(session, "calibration.gold").details["explanation"] == "Agreed."

    answered = client.post(
        f"{api}/clarifications/{params['clarification_id']}/answer", json={"answer": "Yes."}, headers=lead
    )
    assert answered.status_code == 200
    assert _only(session, "clarification.answer").details["answer"] == "Yes."

    client.post(f"{api}/exports", json={"kind": "reward"}, headers=lead)
    kinds = [event.details["kind"] for event in _events(session, "export.create")]
    assert kinds == ["dpo", "reward"]

    items = [native_item("aud-imp-1"), native_item("aud-imp-2")]
    client.post(f"{api}/items", content=orjson.dumps(items), headers=lead)
    imported = [event for event in _events(session, "import.commit") if event.details.get("created") == 2]
    assert len(imported) == 1 and imported[0].actor_role == "lead"

    # Resuming a member who was not paused changes nothing, so it logs nothing.
    assert client.post(f"{api}/members/{params['user_id']}/resume", headers=lead).json() == {"resumed": False}
    assert _events(session, "member.resume") == []
