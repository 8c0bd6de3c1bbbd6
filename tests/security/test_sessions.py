"""CSRF on every state change, session cookies, login throttling, password and token hashing, headers."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from annotation_ui.asgi import create_app
from app.security import digest
from app.services.export_jobs import ExportJobRunner
from app.settings import SecuritySettings, Settings
from preference_store.models import ApiToken, LoginFailure, LoginSession, Role, User
from tests.conftest import People
from tests.security.test_authorization_matrix import ALLOWED, POLICY, Policy, _order, _request
from tests.security.world import ADMIN, LEAD, OWNER, caller, seed

PASSWORD = "correct horse battery"
SAFE = ("GET", "HEAD", "OPTIONS", "MOUNT")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"security": SecuritySettings(login_attempts_per_minute=3)})


def _login_form(client: TestClient) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def _log_in(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    token = _login_form(client)
    return client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}, follow_redirects=False
    )


# ---- CSRF ----


@pytest.mark.parametrize("token", ["missing", "wrong"])
def test_every_state_change_with_a_session_cookie_needs_the_csrf_token(
    token: str, client: TestClient, session: Session, people: People, runner: ExportJobRunner
) -> None:
    world = seed(client, session, people)
    by_role = {"owner": caller(session, people, "owner_session"), "lead": caller(session, people, "lead_session")}
    checked = []
    for key in sorted(POLICY, key=_order):
        rule = POLICY[key]
        if key[0] in SAFE or not rule.walk or rule.policy is Policy.PUBLIC:
            continue
        who = by_role["owner"] if "owner" in ALLOWED[rule.policy] else by_role["lead"]
        forged = replace(who, csrf=None if token == "missing" else "forged-" + (who.csrf or ""))
        response = _request(client, key, rule, world.params, forged)
        assert response.status_code == 403, f"{key}: {response.status_code}"
        assert "csrf" in response.text.lower() or "expired" in response.text.lower(), key
        checked.append(key)
    assert len(checked) > 50
    # The same cookie with its token is accepted (the refusals above are about the token).
    lead = by_role["lead"]
    accepted = _request(
        client,
        ("POST", "/api/v1/projects/{slug}/priority"),
        POLICY[("POST", "/api/v1/projects/{slug}/priority")],
        world.params,
        lead,
    )
    assert accepted.status_code == 200, accepted.text


def test_the_csrf_token_may_come_as_a_form_field(client: TestClient, session: Session, people: People) -> None:
    people.make(LEAD, Role.LEAD)
    lead = caller(session, people, "lead_session")
    client.cookies.set("prefstack_session", lead.cookie or "")
    refused = client.post("/me/language", data={"language": "th"}, follow_redirects=False)
    assert refused.status_code == 403
    accepted = client.post("/me/language", data={"language": "th", "csrf_token": lead.csrf}, follow_redirects=False)
    assert accepted.status_code == 303


def test_bearer_tokens_need_no_csrf_token(client: TestClient, people: People) -> None:
    people.make(LEAD, Role.LEAD)
    created = client.post("/api/v1/projects", json={"slug": "no-csrf", "name": "x"}, headers=people.headers(LEAD))
    assert created.status_code == 201


def test_logging_in_needs_the_login_forms_own_token(client: TestClient, people: People) -> None:
    people.make(OWNER, password=PASSWORD)
    forged = client.post("/login", data={"email": OWNER, "password": PASSWORD, "csrf_token": "x.y"})
    assert forged.status_code == 403 and "prefstack_session" not in forged.headers.get("set-cookie", "")
    assert _log_in(client, OWNER).status_code == 303


# ---- cookies and sessions ----


def _set_cookie(response: Any, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return str(header)
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('set-cookie')}")


def test_the_session_cookie_is_httponly_samesite_and_site_wide(client: TestClient, people: People) -> None:
    people.make(OWNER, password=PASSWORD)
    cookie = _set_cookie(_log_in(client, OWNER), "prefstack_session").lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie.replace("prefstack_session", "")  # plain http in tests


def test_the_session_cookie_is_secure_behind_tls(settings: Settings, app: FastAPI, people: People) -> None:
    context = app.state.context
    secure = settings.model_copy(update={"security": SecuritySettings(cookie_secure=True)})
    app.state.context = replace(context, settings=secure)
    people.make(OWNER, password=PASSWORD)
    with TestClient(app, base_url="https://testserver") as client:
        assert "; secure" in _set_cookie(client.get("/login"), "prefstack_login_csrf").lower()
        response = _log_in(client, OWNER)
        assert "; secure" in _set_cookie(response, "prefstack_session").lower()


def test_behind_tls_answers_carry_hsts(settings: Settings) -> None:
    secure = settings.model_copy(update={"security": SecuritySettings(cookie_secure=True)})
    with TestClient(create_app(secure), base_url="https://testserver") as client:
        assert "max-age=31536000" in client.get("/login").headers["strict-transport-security"]


def test_logging_in_starts_a_new_session_and_logging_out_ends_it(
    client: TestClient, session: Session, people: People
) -> None:
    people.make(OWNER, password=PASSWORD)
    client.cookies.set("prefstack_session", "chosen-by-an-attacker")
    response = _log_in(client, OWNER)
    issued = response.cookies.get("prefstack_session")
    assert issued and issued != "chosen-by-an-attacker"
    client.cookies.clear()
    client.cookies.set("prefstack_session", issued)
    assert client.get("/", follow_redirects=False).status_code == 200
    stored = session.scalars(select(LoginSession.token_hash)).all()
    assert digest(issued) in stored and issued not in stored and digest("chosen-by-an-attacker") not in stored

    client.cookies.clear()
    again = _log_in(client, OWNER).cookies.get("prefstack_session")
    assert again and again != issued  # a second login gets a fresh id too

    client.cookies.clear()
    client.cookies.set("prefstack_session", issued)
    page = client.get("/", follow_redirects=False)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    csrf = found.group(1) if found else ""
    assert client.post("/logout", headers={"X-CSRF-Token": csrf}, follow_redirects=False).status_code == 303
    client.cookies.clear()
    client.cookies.set("prefstack_session", issued)
    assert client.get("/", follow_redirects=False).headers["location"].startswith("/login")
    assert client.get("/api/v1/notifications", follow_redirects=False).status_code == 401
    session.expire_all()
    assert digest(issued) not in session.scalars(select(LoginSession.token_hash)).all()


# ---- login throttling ----


def test_failed_logins_per_email_are_throttled_with_retry_after(client: TestClient, people: People) -> None:
    people.make(OWNER, password=PASSWORD)
    for _ in range(3):
        assert _log_in(client, OWNER, "wrong password").status_code == 401
    throttled = _log_in(client, OWNER, PASSWORD)  # even the right password waits
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0


def test_failed_logins_per_client_address_are_throttled(client: TestClient, people: People) -> None:
    people.make(OWNER, password=PASSWORD)
    for n in range(3):
        assert _log_in(client, f"nobody{n}@example.org", "wrong password").status_code == 401
    throttled = _log_in(client, OWNER)
    assert throttled.status_code == 429 and "retry-after" in throttled.headers


def test_every_worker_counts_the_same_failures(
    client: TestClient, settings: Settings, sessions: sessionmaker[Session], people: People
) -> None:
    people.make(OWNER, password=PASSWORD)
    second_worker = create_app(settings)
    second_worker.state.context = replace(second_worker.state.context, sessions=sessions)
    with TestClient(second_worker) as other:
        assert _log_in(client, OWNER, "wrong password").status_code == 401
        assert _log_in(other, OWNER, "wrong password").status_code == 401
        assert _log_in(client, OWNER, "wrong password").status_code == 401
        assert _log_in(other, OWNER, PASSWORD).status_code == 429


def test_a_successful_login_clears_the_email_count_and_keys_are_stored_as_digests(
    client: TestClient, session: Session, people: People
) -> None:
    people.make(OWNER, password=PASSWORD)
    for _ in range(2):
        assert _log_in(client, OWNER, "wrong password").status_code == 401
    assert _log_in(client, OWNER, PASSWORD).status_code == 303
    stored = session.scalars(select(LoginFailure.key_digest)).all()
    assert digest(f"email:{OWNER}") not in stored  # cleared by the login; the address keeps its two
    assert len(stored) == 2 and all(re.fullmatch(r"[0-9a-f]{64}", key) for key in stored)
    assert not any(OWNER in key or "testclient" in key for key in stored)


# ---- hashing ----


def test_passwords_are_stored_as_memory_hard_argon2id(session: Session, people: People) -> None:
    people.make(OWNER, password=PASSWORD)
    stored = session.scalars(select(User.password_hash).where(User.email == OWNER)).one()
    assert stored is not None and stored.startswith("$argon2id$")
    memory = int(re.search(r"m=(\d+)", stored).group(1))  # type: ignore[union-attr]
    assert memory >= 19_456  # KiB: OWASP's floor for argon2id
    assert PASSWORD not in stored


def test_api_tokens_are_stored_only_as_hashes(session: Session, people: People) -> None:
    people.make(ADMIN, Role.ADMIN)
    token = people.tokens[ADMIN]
    rows = session.execute(select(ApiToken.token_hash, ApiToken.token_prefix)).all()
    assert (digest(token), token[:12]) in [tuple(row) for row in rows]
    assert all(token not in value for row in rows for value in row)


# ---- headers ----


def test_pages_and_api_answers_carry_security_headers(client: TestClient, people: People) -> None:
    people.make(LEAD, Role.LEAD)
    for response in (client.get("/login"), client.get("/healthz"), client.get("/", headers=people.headers(LEAD))):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-eval" not in policy and "script-src 'self' 'unsafe-inline'" not in policy
        assert "strict-transport-security" not in response.headers
    assert "content-security-policy" not in client.get("/docs").headers  # Swagger UI's inline script


def test_no_page_has_inline_script() -> None:
    from annotation_ui.rendering import TEMPLATES_DIR

    for template in TEMPLATES_DIR.rglob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag or 'type="application/json"' in tag, (template.name, tag)
        assert not re.search(r"\son[a-z]+\s*=", text), template.name
