"""Pages over HTTP: login, CSRF, the annotate loop as htmx fragments, escaping."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.principal import Principal
from app.services import importing, projects
from preference_store.models import Judgment, Role
from tests.conftest import People, native_item

PASSWORD = "correct horse battery"


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no csrf field"
    return match.group(1)


def _log_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": _csrf(page.text), "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    home = client.get("/")
    match = re.search(r'"X-CSRF-Token": "([^"]+)"', home.text)
    assert match
    return match.group(1)


def _open_task(client: TestClient) -> tuple[str, str]:
    """The annotate page's HTML and the assignment id it shows."""
    page = client.get("/projects/pages/annotate")
    assignment = re.search(r'data-assignment="(\d+)"', page.text)
    assert assignment, page.text
    return page.text, assignment.group(1)


@pytest.fixture
def annotator(session: Session, people: People, operator: Principal) -> str:
    email = people.make("page-ann@example.org", Role.ANNOTATOR, password=PASSWORD)
    projects.create_project(
        session, principal=operator, slug="pages", name="Pages", overlap=1, guidelines="# Be **kind**"
    )
    items = [
        native_item(
            "p1", prompt="Prompt <b>one</b>", a="<script>alert(1)</script>**bold**", b="<img src=x onerror=alert(2)>"
        ),
        native_item("p2", prompt="Prompt two"),
    ]
    importing.import_items(session, principal=operator, slug="pages", rows=list(enumerate(items, start=1)))
    projects.add_members(session, principal=operator, slug="pages", emails=[email])
    return email


def test_pages_redirect_to_login_when_logged_out(client: TestClient) -> None:
    response = client.get("/projects/pages/annotate", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/projects/pages/annotate"


def test_login_rejects_a_wrong_password(client: TestClient, annotator: str) -> None:
    page = client.get("/login")
    response = client.post(
        "/login", data={"email": annotator, "password": "wrong-password", "csrf_token": _csrf(page.text)}
    )
    assert response.status_code == 401
    assert 'id="login-error"' in response.text


def test_login_without_its_csrf_token_is_refused(client: TestClient, annotator: str) -> None:
    client.get("/login")
    response = client.post("/login", data={"email": annotator, "password": PASSWORD, "csrf_token": "forged.x"})
    assert response.status_code == 403
    assert "prefstack_session" not in client.cookies


def test_session_cookie_is_httponly_and_samesite(client: TestClient, annotator: str) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"email": annotator, "password": PASSWORD, "csrf_token": _csrf(page.text)},
        follow_redirects=False,
    )
    cookie = response.headers["set-cookie"]
    assert "prefstack_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie


def test_annotate_page_escapes_model_output(client: TestClient, annotator: str) -> None:
    _log_in(client, annotator)
    page = client.get("/projects/pages/annotate")
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<strong>bold</strong>" in page.text
    assert "onerror=alert" not in page.text.replace("onerror=alert(2)&gt;", "")
    assert "<b>one</b>" not in page.text
    assert "<h1>Be <strong>kind</strong></h1>" in page.text


def test_htmx_submit_returns_the_next_task_fragment(client: TestClient, annotator: str, session: Session) -> None:
    csrf = _log_in(client, annotator)
    _, first = _open_task(client)
    response = client.post(
        f"/projects/pages/annotate/{first}",
        data={"choice": "A", "time_spent_ms": "1234"},
        headers={"HX-Request": "true", "X-CSRF-Token": csrf},
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="task"')
    assert "<html" not in response.text
    assert response.headers["vary"] == "HX-Request"
    second = re.search(r'data-assignment="(\d+)"', response.text)
    assert second and second.group(1) != first
    stored = session.execute(select(Judgment.payload, Judgment.time_spent_ms)).one()
    assert stored.payload["choice"] == "A"
    assert stored.time_spent_ms == 1234


def test_submit_without_csrf_token_is_refused(client: TestClient, annotator: str, session: Session) -> None:
    _log_in(client, annotator)
    _, assignment = _open_task(client)
    response = client.post(f"/projects/pages/annotate/{assignment}", data={"choice": "A"})
    assert response.status_code == 403
    assert session.scalar(select(func.count()).select_from(Judgment)) == 0


def test_plain_form_post_redirects_after_submit(client: TestClient, annotator: str) -> None:
    _log_in(client, annotator)
    page, assignment = _open_task(client)
    response = client.post(
        f"/projects/pages/annotate/{assignment}",
        data={"choice": "tie", "csrf_token": _csrf(page)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/projects/pages/annotate"


def test_missing_choice_rerenders_the_form_with_422(client: TestClient, annotator: str) -> None:
    csrf = _log_in(client, annotator)
    _, assignment = _open_task(client)
    response = client.post(
        f"/projects/pages/annotate/{assignment}",
        data={"choice": ""},
        headers={"HX-Request": "true", "X-CSRF-Token": csrf},
    )
    assert response.status_code == 422
    assert 'id="form-error"' in response.text
    assert f'data-assignment="{assignment}"' in response.text


def test_logout_ends_the_session(client: TestClient, annotator: str) -> None:
    csrf = _log_in(client, annotator)
    response = client.post("/logout", headers={"X-CSRF-Token": csrf}, follow_redirects=False)
    assert response.status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_expired_session_on_htmx_submit_returns_to_the_annotate_page(client: TestClient, annotator: str) -> None:
    response = client.post(
        "/projects/pages/annotate/1",
        data={"choice": "A"},
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/projects/pages/annotate"},
    )
    assert response.status_code == 204
    assert response.headers["hx-redirect"] == "/login?next=/projects/pages/annotate"
