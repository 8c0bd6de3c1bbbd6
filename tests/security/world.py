"""A seeded project for the security tests: members, a judgment, gold, a case, a calibration round..."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.routing import _IncludedRouter
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from starlette.routing import BaseRoute, Route

from app.security import digest, new_session_token
from preference_store import users as user_store
from preference_store.base import utcnow
from preference_store.models import Role
from tests.conftest import People, native_item

SLUG = "sec-project"
OTHER_SLUG = "sec-elsewhere"
LEAD = "sec-lead@example.org"
ADMIN = "sec-admin@example.org"
OWNER = "sec-owner@example.org"
PEER = "sec-peer@example.org"
OUTSIDER = "sec-outsider@example.org"
TEAM = "Vendor Sec"


def app_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """Every (method, path) the app answers, HEAD aside, included routers flattened."""

    def flat(routes: list[BaseRoute]) -> Iterator[tuple[str, str]]:
        for route in routes:
            if isinstance(route, _IncludedRouter):
                yield from flat(route.original_router.routes)
            elif isinstance(route, Route):
                for method in sorted((route.methods or set()) - {"HEAD"}):
                    yield method, route.path
            else:
                yield "MOUNT", getattr(route, "path", "")

    yield from flat(list(app.routes))


@dataclass
class Caller:
    """One way of calling: no credentials, a session cookie (with its CSRF token) or a bearer token."""

    name: str
    email: str | None
    cookie: str | None = None
    csrf: str | None = None
    token: str | None = None

    def headers(self, *, with_csrf: bool = True) -> dict[str, str]:
        if self.token is not None:
            return {"Authorization": f"Bearer {self.token}"}
        if self.csrf is not None and with_csrf:
            return {"X-CSRF-Token": self.csrf}
        return {}

    def cookies(self) -> dict[str, str]:
        return {"prefstack_session": self.cookie} if self.cookie else {}


@dataclass
class World:
    """Ids of everything seeded, by path-parameter name."""

    params: dict[str, str] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    people: People | None = None


def login_session(session: Session, email: str) -> tuple[str, str]:
    """A browser session for `email`, made directly in the store (no password hashing)."""
    user = user_store.get_user_by_email(session, email=email)
    assert user is not None
    token, csrf = new_session_token(), new_session_token()
    now = utcnow()
    user_store.create_login_session(
        session,
        user_id=user.id,
        token_hash=digest(token),
        csrf_token=csrf,
        now=now,
        expires_at=now + timedelta(hours=1),
    )
    session.commit()
    return token, csrf


def caller(session: Session, people: People, name: str) -> Caller:
    """`name` is anonymous or `<who>_session` / `<who>_token` for who in owner, peer, outsider, lead, admin."""
    if name == "anonymous":
        return Caller(name, None)
    who, _, how = name.rpartition("_")
    email = {"owner": OWNER, "peer": PEER, "outsider": OUTSIDER, "lead": LEAD, "admin": ADMIN}[who]
    if how == "token":
        return Caller(name, email, token=people.tokens[email])
    cookie, csrf = login_session(session, email)
    return Caller(name, email, cookie=cookie, csrf=csrf)


def seed(client: TestClient, session: Session, people: People, *, runner_ready: bool = True) -> World:
    """Two projects; on the first: owner and peer judge, gold, a case, a round, a question, an export, an upload."""
    people.make(LEAD, Role.LEAD)
    people.make(ADMIN, Role.ADMIN)
    people.make(OWNER, team=TEAM)
    people.make(PEER, team=TEAM)
    people.make(OUTSIDER, team="Vendor Else")
    lead = people.headers(LEAD)
    world = World(people=people)
    for email in (LEAD, ADMIN, OWNER, PEER, OUTSIDER):
        user = user_store.get_user_by_email(session, email=email)
        assert user is not None
        world.users[email] = user.id
    session.rollback()

    def ok(response: Any, *statuses: int) -> dict[str, Any]:
        assert response.status_code in (statuses or (200, 201, 202, 204, 303)), response.text
        try:
            found: dict[str, Any] = response.json()
        except ValueError:
            return {}
        return found

    for slug in (SLUG, OTHER_SLUG):
        ok(client.post("/api/v1/projects", json={"slug": slug, "name": slug, "overlap": 2}, headers=lead))
    ok(client.post(f"/api/v1/projects/{SLUG}/members", json={"emails": [OWNER, PEER]}, headers=lead))
    ok(client.post(f"/api/v1/projects/{OTHER_SLUG}/members", json={"emails": [OUTSIDER]}, headers=lead))
    items = [native_item(f"sec-{n}") for n in range(1, 7)]
    ok(client.post(f"/api/v1/projects/{SLUG}/items", content=orjson.dumps(items), headers=lead))

    owner, peer = people.headers(OWNER), people.headers(PEER)
    first = ok(client.get(f"/api/v1/projects/{SLUG}/next", headers=owner))
    judged = ok(
        client.post(f"/api/v1/assignments/{first['assignment_id']}/judgment", json={"choice": "A"}, headers=owner)
    )
    world.params["judgment_id"] = str(judged["judgment_id"])
    world.params["assignment_id"] = str(ok(client.get(f"/api/v1/projects/{SLUG}/next", headers=owner))["assignment_id"])
    ok(client.get(f"/api/v1/projects/{SLUG}/next", headers=peer))

    gold_body = {"answer": {"choice": "A"}, "explanation": "A is right."}
    ok(client.put(f"/api/v1/projects/{SLUG}/items/sec-6/gold", json=gold_body, headers=lead))
    opened = ok(client.post(f"/api/v1/projects/{SLUG}/items/sec-5/arbitration", headers=lead))
    world.params["case_id"] = str(opened["case_id"])
    round_ = ok(
        client.post(
            f"/api/v1/projects/{SLUG}/calibration-sessions", json={"name": "Round", "teams": [TEAM]}, headers=lead
        )
    )
    session_id = round_["id"]
    world.params["session_id"] = str(session_id)
    calibration = f"/api/v1/projects/{SLUG}/calibration-sessions/{session_id}"
    ok(client.post(f"{calibration}/items", json={"external_ids": ["sec-4"]}, headers=lead))
    world.params["item_id"] = str(ok(client.get(f"{calibration}/my-items", headers=owner))["calibration_item_id"])
    asked = ok(
        client.post(f"/api/v1/projects/{SLUG}/clarifications", json={"question": "What about sarcasm?"}, headers=owner)
    )
    world.params["clarification_id"] = str(asked["id"])
    if runner_ready:
        job = ok(client.post(f"/api/v1/projects/{SLUG}/exports", json={"kind": "dpo"}, headers=lead))
        world.params["job_id"] = str(job["id"])
    upload = client.post(
        f"/projects/{SLUG}/import",
        files={"file": ("items.jsonl", io.BytesIO(orjson.dumps(native_item("sec-up-1")) + b"\n"), "application/json")},
        data={"format": "auto", "on_error": "skip"},
        headers=lead,
        follow_redirects=False,
    )
    assert upload.status_code in (200, 303), upload.text
    location = upload.headers.get("location") or upload.headers.get("hx-push-url") or ""
    world.params["token"] = location.rstrip("/").rsplit("/", 1)[-1] if location else _token_in(upload.text)
    world.params.update(
        slug=SLUG,
        external_id="sec-1",
        user_id=str(world.users[OWNER]),
        kind="dpo",
        file_format="csv",
    )
    return world


def _token_in(html: str) -> str:
    marker = f"/projects/{SLUG}/import/"
    start = html.index(marker) + len(marker)
    end = start
    while end < len(html) and (html[end].isalnum() or html[end] in "-_"):
        end += 1
    return html[start:end]
