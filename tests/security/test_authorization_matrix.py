"""Every route x every caller: who may reach what, including other projects and other annotators' work.

`POLICY` classifies every route of the app; a new route that is not in it fails
`test_every_route_is_classified`, so each new route gets a decision. "Allowed" means the
answer is not a refusal (401/403/404, or a redirect to the login page); "denied" means it is.
Each caller walks every route in a freshly seeded world (`tests/security/world.py`): path
parameters are real ids, owned by the `owner` annotator where a route is about one person's work.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session

from app.services.export_jobs import ExportJobRunner
from tests.conftest import People
from tests.security.world import SLUG, app_routes, caller, seed


class Policy(Enum):
    PUBLIC = "anyone, even without logging in"
    USER = "any logged-in user"
    MEMBER = "members of the project, leads and admins"
    OWNER = "only the annotator whose work it is"
    STAFF = "leads and admins"
    PARTICIPANT = "the annotators taking part in the calibration round"
    UPLOADER = "the lead who uploaded the file"


ALLOWED: dict[Policy, frozenset[str]] = {
    Policy.PUBLIC: frozenset({"anonymous", "owner", "peer", "outsider", "lead", "admin"}),
    Policy.USER: frozenset({"owner", "peer", "outsider", "lead", "admin"}),
    Policy.MEMBER: frozenset({"owner", "peer", "lead", "admin"}),
    Policy.OWNER: frozenset({"owner"}),
    Policy.STAFF: frozenset({"lead", "admin"}),
    Policy.PARTICIPANT: frozenset({"owner", "peer"}),
    Policy.UPLOADER: frozenset({"lead"}),
}


@dataclass(frozen=True)
class Rule:
    policy: Policy
    json: Any = None
    form: dict[str, str] | None = None
    query: str = ""
    walk: bool = True
    params: dict[str, str] | None = None


P, U, M, OWN, S = Policy.PUBLIC, Policy.USER, Policy.MEMBER, Policy.OWNER, Policy.STAFF
CP, UP = Policy.PARTICIPANT, Policy.UPLOADER
GOLD_ITEM = {"external_id": "sec-6"}
JUDGMENT = {"choice": "A"}
GOLD = {"answer": {"choice": "B"}, "explanation": "B."}

POLICY: dict[tuple[str, str], Rule] = {
    # operations and documentation
    ("GET", "/healthz"): Rule(P),
    ("GET", "/readyz"): Rule(P),
    ("GET", "/metrics"): Rule(P),
    ("GET", "/openapi.json"): Rule(P),
    ("GET", "/docs"): Rule(P),
    ("GET", "/docs/oauth2-redirect"): Rule(P),
    ("GET", "/redoc"): Rule(P),
    ("MOUNT", "/static"): Rule(P),
    # JSON API: work
    ("GET", "/api/v1/projects/{slug}"): Rule(M),
    ("GET", "/api/v1/projects/{slug}/next"): Rule(M),
    ("GET", "/api/v1/projects/{slug}/my/judgments"): Rule(M),
    ("GET", "/api/v1/projects/{slug}/my/progress"): Rule(M),
    ("POST", "/api/v1/assignments/{assignment_id}/judgment"): Rule(OWN, json=JUDGMENT),
    ("POST", "/api/v1/assignments/{assignment_id}/skip"): Rule(OWN, json={"reason": "unclear"}),
    ("GET", "/api/v1/judgments/{judgment_id}"): Rule(OWN),
    ("PUT", "/api/v1/judgments/{judgment_id}"): Rule(OWN, json=JUDGMENT),
    ("GET", "/api/v1/notifications"): Rule(S),
    ("POST", "/api/v1/notifications/read"): Rule(S, json={"ids": None}),
    ("GET", "/api/v1/projects/{slug}/guidelines"): Rule(M),
    ("POST", "/api/v1/projects/{slug}/clarifications"): Rule(M, json={"question": "Is sarcasm rude?"}),
    ("GET", "/api/v1/projects/{slug}/clarifications"): Rule(M),
    ("GET", "/api/v1/projects/{slug}/calibration-sessions/{session_id}/my-items"): Rule(CP),
    ("PUT", "/api/v1/projects/{slug}/calibration-sessions/{session_id}/items/{item_id}/answer"): Rule(
        CP, json=JUDGMENT
    ),
    # JSON API: leads and admins
    ("POST", "/api/v1/projects"): Rule(S, json={"slug": "sec-new", "name": "New"}),
    ("PATCH", "/api/v1/projects/{slug}"): Rule(S, json={"overlap": 2}),
    ("PUT", "/api/v1/projects/{slug}/guidelines"): Rule(S, json={"text": "Be kind.", "note": "v2"}),
    ("POST", "/api/v1/projects/{slug}/members"): Rule(S, json={"emails": ["sec-peer@example.org"]}),
    ("POST", "/api/v1/projects/{slug}/members/{user_id}/resume"): Rule(S),
    ("POST", "/api/v1/projects/{slug}/priority"): Rule(S, json={"external_ids": ["sec-2"], "priority": 5}),
    ("POST", "/api/v1/projects/{slug}/items"): Rule(S, json=[]),
    ("GET", "/api/v1/projects/{slug}/items"): Rule(S),
    ("GET", "/api/v1/projects/{slug}/items/{external_id:path}"): Rule(S),
    ("POST", "/api/v1/projects/{slug}/verdicts"): Rule(S, json=[]),
    ("GET", "/api/v1/projects/{slug}/export/{kind}"): Rule(S),
    ("GET", "/api/v1/projects/{slug}/exports"): Rule(S),
    ("POST", "/api/v1/projects/{slug}/exports"): Rule(S, json={"kind": "dpo"}),
    ("GET", "/api/v1/projects/{slug}/exports/{job_id}"): Rule(S),
    ("GET", "/api/v1/projects/{slug}/exports/{job_id}/download"): Rule(S),
    ("GET", "/api/v1/projects/{slug}/gold"): Rule(S),
    ("POST", "/api/v1/projects/{slug}/gold"): Rule(S, json=[{**GOLD, "external_id": "sec-3"}]),
    ("GET", "/api/v1/projects/{slug}/items/{external_id:path}/gold"): Rule(S, params=GOLD_ITEM),
    ("PUT", "/api/v1/projects/{slug}/items/{external_id:path}/gold"): Rule(S, json=GOLD),
    ("DELETE", "/api/v1/projects/{slug}/items/{external_id:path}/gold"): Rule(S, params=GOLD_ITEM),
    ("GET", "/api/v1/projects/{slug}/arbitration"): Rule(S),
    ("GET", "/api/v1/projects/{slug}/arbitration/{case_id}"): Rule(S),
    ("POST", "/api/v1/projects/{slug}/arbitration/{case_id}/verdict"): Rule(S, json={"choice": "A", "rationale": "A."}),
    ("POST", "/api/v1/projects/{slug}/arbitration/{case_id}/dismiss"): Rule(S, json={"rationale": "fine"}),
    ("POST", "/api/v1/projects/{slug}/items/{external_id:path}/arbitration"): Rule(S),
    ("POST", "/api/v1/projects/{slug}/calibration-sessions"): Rule(S, json={"name": "R2", "teams": ["Vendor Sec"]}),
    ("GET", "/api/v1/projects/{slug}/calibration-sessions"): Rule(S),
    ("GET", "/api/v1/projects/{slug}/calibration-sessions/{session_id}"): Rule(S),
    ("POST", "/api/v1/projects/{slug}/calibration-sessions/{session_id}/items"): Rule(
        S, json={"external_ids": ["sec-3"]}
    ),
    ("POST", "/api/v1/projects/{slug}/calibration-sessions/{session_id}/reveal"): Rule(S),
    ("PUT", "/api/v1/projects/{slug}/calibration-sessions/{session_id}/items/{item_id}/agreed"): Rule(
        S, json={"choice": "A", "note": "A."}
    ),
    ("POST", "/api/v1/projects/{slug}/calibration-sessions/{session_id}/items/{item_id}/gold"): Rule(S, json={}),
    ("POST", "/api/v1/projects/{slug}/calibration-sessions/{session_id}/close"): Rule(S),
    ("POST", "/api/v1/projects/{slug}/clarifications/absorb"): Rule(S, json={"ids": [], "version": 1}),
    ("POST", "/api/v1/projects/{slug}/clarifications/{clarification_id}/answer"): Rule(S, json={"answer": "No."}),
    ("POST", "/api/v1/projects/{slug}/clarifications/{clarification_id}/dismiss"): Rule(S),
    ("GET", "/api/v1/projects/{slug}/leaderboard"): Rule(S),
    ("GET", "/api/v1/projects/{slug}/quality"): Rule(S),
    ("GET", "/api/v1/projects/{slug}/quality/annotators"): Rule(S),
    ("GET", "/api/v1/projects/{slug}/quality/benchmark"): Rule(S),
    ("GET", "/api/v1/projects/{slug}/quality/dashboard"): Rule(S),
    ("GET", "/api/v1/projects/{slug}/quality/gaps"): Rule(S),
    ("GET", "/api/v1/projects/{slug}/quality/gaps.{file_format}"): Rule(S),
    ("GET", "/api/v1/projects/{slug}/quality/judges"): Rule(S),
    ("GET", "/api/v1/projects/{slug}/quality/teams"): Rule(S),
    ("GET", "/api/v1/quality/trends"): Rule(S),
    ("GET", "/api/v1/audit"): Rule(S),
    # pages: everyone
    ("GET", "/login"): Rule(P),
    ("GET", "/favicon.ico"): Rule(P),
    # Logging in needs the login form's own CSRF cookie: tests/security/test_sessions.py covers it.
    ("POST", "/login"): Rule(P, walk=False),
    ("GET", "/"): Rule(U),
    ("POST", "/me/language"): Rule(U, form={"language": "th"}),
    ("GET", "/notifications"): Rule(S),
    ("GET", "/notifications/badge"): Rule(U),
    ("POST", "/notifications/read"): Rule(S, form={}),
    ("POST", "/logout"): Rule(U, form={}),
    # pages: members
    ("GET", "/projects/{slug}/annotate"): Rule(M),
    ("POST", "/projects/{slug}/annotate/{assignment_id}"): Rule(OWN, form={"choice": "A"}),
    ("POST", "/projects/{slug}/annotate/{assignment_id}/skip"): Rule(OWN, form={"reason": "broken"}),
    ("GET", "/projects/{slug}/annotate/{assignment_id}/feedback"): Rule(OWN),
    ("GET", "/projects/{slug}/judgments/{judgment_id}"): Rule(OWN),
    ("POST", "/projects/{slug}/judgments/{judgment_id}"): Rule(OWN, form={"choice": "B"}),
    ("GET", "/projects/{slug}/progress"): Rule(M),
    ("GET", "/projects/{slug}/recent"): Rule(M),
    ("GET", "/projects/{slug}/clarifications"): Rule(S),
    ("POST", "/projects/{slug}/clarifications"): Rule(M, form={"question": "Is irony rude?"}),
    ("GET", "/projects/{slug}/clarifications/answers"): Rule(M),
    ("GET", "/projects/{slug}/clarifications/panel"): Rule(M),
    ("GET", "/projects/{slug}/clarifications/badge"): Rule(S),
    ("GET", "/projects/{slug}/calibration/{session_id}/task"): Rule(CP),
    ("POST", "/projects/{slug}/calibration/{session_id}/task/{item_id}"): Rule(CP, form={"choice": "A"}),
    # pages: leads and admins
    ("GET", "/projects/{slug}/items"): Rule(S),
    ("GET", "/projects/{slug}/items/{external_id:path}"): Rule(S),
    ("POST", "/projects/{slug}/items/{external_id:path}/arbitration"): Rule(S, form={}),
    ("GET", "/projects/{slug}/arbitration"): Rule(S),
    ("GET", "/projects/{slug}/arbitration/{case_id}"): Rule(S),
    ("POST", "/projects/{slug}/arbitration/{case_id}/verdict"): Rule(S, form={"choice": "A", "rationale": "A."}),
    ("POST", "/projects/{slug}/arbitration/{case_id}/dismiss"): Rule(S, form={"rationale": "fine"}),
    ("GET", "/projects/{slug}/calibration"): Rule(S),
    ("POST", "/projects/{slug}/calibration"): Rule(S, form={"name": "R3", "teams": "Vendor Sec"}),
    ("GET", "/projects/{slug}/calibration/{session_id}"): Rule(S),
    ("POST", "/projects/{slug}/calibration/{session_id}/items"): Rule(S, form={"external_ids": "sec-3"}),
    ("POST", "/projects/{slug}/calibration/{session_id}/reveal"): Rule(S, form={}),
    ("POST", "/projects/{slug}/calibration/{session_id}/close"): Rule(S, form={}),
    ("GET", "/projects/{slug}/calibration/{session_id}/items/{item_id}/agree"): Rule(S),
    ("POST", "/projects/{slug}/calibration/{session_id}/items/{item_id}/agree"): Rule(S, form={"choice": "A"}),
    ("POST", "/projects/{slug}/calibration/{session_id}/items/{item_id}/gold"): Rule(S, form={}),
    ("POST", "/projects/{slug}/clarifications/absorb"): Rule(S, form={"ids": "{clarification_id}", "version": "1"}),
    ("POST", "/projects/{slug}/clarifications/{clarification_id}/answer"): Rule(S, form={"answer": "No."}),
    ("POST", "/projects/{slug}/clarifications/{clarification_id}/dismiss"): Rule(S, form={}),
    ("GET", "/projects/{slug}/exports"): Rule(S),
    ("POST", "/projects/{slug}/exports"): Rule(S, form={"kind": "dpo"}),
    ("GET", "/projects/{slug}/exports/{job_id}/card"): Rule(S),
    ("GET", "/projects/{slug}/exports/{job_id}/download"): Rule(S),
    ("GET", "/projects/{slug}/gold-card"): Rule(S, query="item=sec-2"),
    ("POST", "/projects/{slug}/gold-card"): Rule(S, form={"external_id": "sec-2", "choice": "A"}),
    ("POST", "/projects/{slug}/gold-card/remove"): Rule(S, form={"external_id": "sec-6"}),
    ("POST", "/projects/{slug}/members/{user_id}/resume"): Rule(S, form={}),
    ("GET", "/projects/{slug}/import"): Rule(S),
    ("POST", "/projects/{slug}/import"): Rule(S, form={"format": "auto"}),
    ("GET", "/projects/{slug}/import/{token}"): Rule(UP),
    ("POST", "/projects/{slug}/import/{token}"): Rule(UP, form={}),
    ("POST", "/projects/{slug}/import/{token}/cancel"): Rule(UP, form={}),
    ("GET", "/projects/{slug}/import/{token}/rejects.jsonl"): Rule(UP),
    ("GET", "/projects/{slug}/leaderboard"): Rule(S),
    ("GET", "/projects/{slug}/quality"): Rule(S),
    ("GET", "/projects/{slug}/quality/annotators"): Rule(S),
    ("GET", "/projects/{slug}/quality/gaps"): Rule(S),
    ("GET", "/projects/{slug}/quality/judges"): Rule(S),
    ("GET", "/projects/{slug}/quality/teams"): Rule(S),
    ("GET", "/quality/trends"): Rule(S),
    ("GET", "/audit"): Rule(S),
    ("GET", "/audit.csv"): Rule(S),
}

CALLERS = [
    "anonymous",
    *(f"{who}_{how}" for who in ("owner", "peer", "outsider", "lead", "admin") for how in ("session", "token")),
]


def test_every_route_is_classified(app: FastAPI) -> None:
    routes = set(app_routes(app))
    unclassified = sorted(routes - POLICY.keys())
    assert unclassified == [], f"add these routes to POLICY in {__name__}: {unclassified}"
    assert sorted(POLICY.keys() - routes) == [], "POLICY names routes the app no longer has"


def _refused(response: Response) -> bool:
    if response.status_code in (401, 403, 404):
        return True
    location = response.headers.get("location") or response.headers.get("hx-redirect") or ""
    return response.status_code in (204, 302, 303) and location.startswith("/login?")


def _order(key: tuple[str, str]) -> tuple[int, str, str]:
    # Reads first, then writes; logging out ends the walk.
    method, path = key
    return (2 if path == "/logout" else 0 if method in ("GET", "MOUNT") else 1, path, method)


def _request(client: TestClient, key: tuple[str, str], rule: Rule, params: dict[str, str], who: Any) -> Any:
    method, template = key
    path = template.replace("{external_id:path}", "{external_id}")
    if method == "MOUNT":
        method, path = "GET", "/static/vendor/htmx/htmx.min.js"
    path = path.format(**{**params, **(rule.params or {})}) + (f"?{rule.query}" if rule.query else "")
    form = None if rule.form is None else {field: value.format(**params) for field, value in rule.form.items()}
    client.cookies.clear()
    for name, value in who.cookies().items():
        client.cookies.set(name, value)
    return client.request(method, path, headers=who.headers(), json=rule.json, data=form, follow_redirects=False)


@pytest.mark.parametrize("name", CALLERS)
def test_each_caller_reaches_exactly_what_its_role_allows(
    name: str, client: TestClient, session: Session, people: People, runner: ExportJobRunner
) -> None:
    world = seed(client, session, people)
    who = caller(session, people, name)
    role = name.rpartition("_")[0] or name
    wrong: list[str] = []
    for key in sorted(POLICY, key=_order):
        rule = POLICY[key]
        if not rule.walk:
            continue
        response = _request(client, key, rule, world.params, who)
        assert response.status_code < 500, f"{key}: {response.status_code} {response.text[:300]}"
        allowed = role in ALLOWED[rule.policy]
        if allowed == _refused(response):
            verdict = "refused" if allowed else "allowed"
            wrong.append(f"{key[0]} {key[1]} ({rule.policy.name}): {verdict} with {response.status_code}")
    assert wrong == [], f"{name}:\n" + "\n".join(wrong)


def test_an_outsider_cannot_see_another_projects_items_or_tasks(
    client: TestClient, session: Session, people: People, runner: ExportJobRunner
) -> None:
    world = seed(client, session, people)
    outsider = caller(session, people, "outsider_token")
    for path in (
        f"/api/v1/projects/{SLUG}",
        f"/api/v1/projects/{SLUG}/next",
        f"/api/v1/projects/{SLUG}/items/sec-1",
        f"/projects/{SLUG}/annotate",
        f"/projects/{SLUG}/items/sec-1",
        f"/projects/{SLUG}/clarifications",
    ):
        response = client.get(path, headers=outsider.headers())
        assert response.status_code in (403, 404), (path, response.status_code)
        assert "Is this comment allowed?" not in response.text
    listed = client.get("/", headers=outsider.headers())
    assert listed.status_code == 200 and SLUG not in listed.text
    assert world.params["slug"] == SLUG


def test_a_peer_cannot_read_another_annotators_work(
    client: TestClient, session: Session, people: People, runner: ExportJobRunner
) -> None:
    world = seed(client, session, people)
    peer = caller(session, people, "peer_token")
    judgment, assignment = world.params["judgment_id"], world.params["assignment_id"]
    for path in (
        f"/api/v1/judgments/{judgment}",
        f"/projects/{SLUG}/judgments/{judgment}",
        f"/projects/{SLUG}/annotate/{assignment}/feedback",
    ):
        assert client.get(path, headers=peer.headers()).status_code in (403, 404), path
    owner = caller(session, people, "owner_token")
    revised = client.put(
        f"/api/v1/judgments/{judgment}", json={"choice": "B", "rationale": "owner-secret-note"}, headers=owner.headers()
    )
    assert revised.status_code == 200, revised.text
    recent = client.get(f"/api/v1/projects/{SLUG}/my/judgments", headers=peer.headers())
    assert recent.status_code == 200 and "owner-secret-note" not in recent.text
    assert "owner-secret-note" not in client.get(f"/projects/{SLUG}/recent", headers=peer.headers()).text
    # Calibration answers stay with their author until the lead reveals the round.
    base = f"/api/v1/projects/{SLUG}/calibration-sessions/{world.params['session_id']}"
    item = world.params["item_id"]
    stored = client.put(
        f"{base}/items/{item}/answer",
        json={"choice": "A", "rationale": "owner-secret-rationale"},
        headers=owner.headers(),
    )
    assert stored.status_code == 200, stored.text
    mine = client.get(f"{base}/my-items?item={item}", headers=peer.headers())
    assert mine.status_code == 200 and "owner-secret-rationale" not in mine.text
    # Notifications (gold misses, pauses) go to leads and admins only.
    assert client.get("/api/v1/notifications", headers=peer.headers()).status_code == 403
