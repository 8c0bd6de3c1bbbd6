"""Pages over HTTP: login, CSRF, the annotate loop as htmx fragments, escaping."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from app.principal import Principal
from app.services import importing, projects
from preference_store.models import Assignment, AssignmentState, Judgment, JudgmentRevision, Role
from tests.conftest import People, native_item
from tests.databases import rollbacks_on

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


def test_the_loop_pages_end_their_reads_with_a_commit(
    client: TestClient, annotator: str, connection: Connection
) -> None:
    """psycopg forgets a connection's prepared statements on every ROLLBACK: the loop's requests
    (the login session's read, the submit answered with the next task, the strip, the recent
    list) end every transaction with COMMIT, so PostgreSQL plans their statements once."""
    csrf = _log_in(client, annotator)
    _, first = _open_task(client)
    with rollbacks_on(connection) as rollbacks:
        submitted = client.post(
            f"/projects/pages/annotate/{first}",
            data={"choice": "A", "time_spent_ms": "1234"},
            headers={"HX-Request": "true", "X-CSRF-Token": csrf},
        )
        strip = client.get("/projects/pages/progress", headers={"HX-Request": "true"})
        recent = client.get("/projects/pages/recent", headers={"HX-Request": "true"})
    assert (submitted.status_code, strip.status_code, recent.status_code) == (200, 200, 200)
    assert 'data-assignment="' in submitted.text
    assert rollbacks == []


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


# --- The full workbench: pairwise extras, 422 refill, skip, revisions, caps, sensitive content ---

WORKBENCH_OPTIONS = {
    "strength": True,
    "rewrite": True,
    "rationale": "optional",
    "taxonomy": [{"name": "gambling", "severities": ["minor", "severe"]}, {"name": "spam"}],
}


def _workbench(
    session: Session,
    people: People,
    operator: Principal,
    *,
    slug: str,
    options: dict[str, object],
    items: list[dict[str, object]],
) -> str:
    email = people.make(f"{slug}@example.org", Role.ANNOTATOR, password=PASSWORD)
    projects.create_project(
        session, principal=operator, slug=slug, name=slug.title(), overlap=1, guidelines="Read twice.", options=options
    )
    importing.import_items(session, principal=operator, slug=slug, rows=list(enumerate(items, start=1)))
    projects.add_members(session, principal=operator, slug=slug, emails=[email])
    return email


def _open(client: TestClient, slug: str) -> tuple[str, int]:
    page = client.get(f"/projects/{slug}/annotate")
    assert page.status_code == 200, page.text
    assignment = re.search(r'data-assignment="(\d+)"', page.text)
    assert assignment, page.text
    return page.text, int(assignment.group(1))


def _htmx(csrf: str) -> dict[str, str]:
    return {"HX-Request": "true", "X-CSRF-Token": csrf}


def _shown_order(session: Session, assignment_id: int) -> list[int]:
    return session.execute(select(Assignment.shown_order).where(Assignment.id == assignment_id)).scalar_one()


@pytest.fixture
def workbench(session: Session, people: People, operator: Principal) -> str:
    items = [native_item("w1", a="Use slicing.", b="Call reverse()."), native_item("w2"), native_item("w3")]
    return _workbench(session, people, operator, slug="workbench", options=WORKBENCH_OPTIONS, items=items)


def test_pairwise_page_shows_the_projects_extras(client: TestClient, workbench: str) -> None:
    _log_in(client, workbench)
    page, _ = _open(client, "workbench")
    assert 'id="judgment-form"' in page
    assert 'data-kind="pairwise"' in page
    assert page.count('name="strength"') == 3
    assert page.count('name="labels.A"') == 3  # gambling:minor, gambling:severe, spam
    assert 'value="gambling:severe"' in page
    assert 'name="rewrite"' in page
    assert 'name="rationale"' in page
    assert 'id="skip-dialog"' in page
    assert 'id="kind-help"' in page
    assert 'id="guidelines-panel"' in page
    assert "version 1" in page
    # The strip and the recent list come with the page, not in two more requests after it.
    assert re.search(
        r'<div id="progress" class="progress">\s*<span class="stat" data-stat="done">Done today <b>0</b>', page
    )
    assert '<section id="recent" class="recent">' in page
    assert 'hx-get="/projects/workbench/progress"' not in page
    assert 'hx-get="/projects/workbench/recent"' not in page
    assert 'dir="auto"' in page
    assert 'lang="en"' in page
    assert "rubric.js" not in page
    assert "ranking.js" not in page


def test_pairwise_with_strength_labels_rationale_and_rewrite_stores_positions(
    client: TestClient, workbench: str, session: Session
) -> None:
    csrf = _log_in(client, workbench)
    _, assignment = _open(client, "workbench")
    response = client.post(
        f"/projects/workbench/annotate/{assignment}",
        data={
            "choice": "B",
            "strength": "clearly",
            "labels.A": ["gambling:severe", "spam"],
            "labels.B": "gambling:minor",
            "rationale": "B answers the question.",
            "rewrite": "Call items.reverse() to reverse in place.",
            "time_spent_ms": "4200",
        },
        headers=_htmx(csrf),
    )
    assert response.status_code == 200, response.text
    _assert_swaps_loop_state(response.text, done_today=1, recent=["w1"])
    order = _shown_order(session, assignment)
    stored = session.execute(select(Judgment).where(Judgment.assignment_id == assignment)).scalar_one()
    assert stored.payload == {
        "choice": "B",
        "preferred_position": order[1],
        "strength": "clearly",
        "labels": {str(order[0]): ["gambling:severe", "spam"], str(order[1]): ["gambling:minor"]},
        "rewrite": {"position": order[1], "content": "Call items.reverse() to reverse in place."},
        "rationale": "B answers the question.",
    }
    assert stored.time_spent_ms == 4200
    assert stored.guidelines_version == 1


def _assert_swaps_loop_state(html: str, *, done_today: int, recent: list[str]) -> None:
    """The answer is the next task, then the strip and the recent list swapped in out of band."""
    assert html.lstrip().startswith('<section id="task"')
    strip = re.search(r'<div id="progress" class="progress" hx-swap-oob="true">(.*?)</div>', html, re.S)
    assert strip, html
    assert f'data-stat="done">Done today <b>{done_today}</b>' in strip.group(1)
    listed = re.search(r'<section id="recent" class="recent" hx-swap-oob="true">(.*?)</section>', html, re.S)
    assert listed, html
    assert re.findall(r'<span class="recent-item">Item ([^<]+)</span>', listed.group(1)) == recent


def test_invalid_submission_is_422_keeping_the_values_and_naming_the_field(
    client: TestClient, workbench: str, session: Session
) -> None:
    csrf = _log_in(client, workbench)
    _, assignment = _open(client, "workbench")
    response = client.post(
        f"/projects/workbench/annotate/{assignment}",
        data={"choice": "A", "labels.B": "spam", "rationale": "Kept <text>", "rewrite": "My rewrite"},
        headers=_htmx(csrf),
    )
    assert response.status_code == 422
    html = response.text
    assert html.lstrip().startswith('<section id="task"')
    assert f'data-assignment="{assignment}"' in html
    assert 'id="form-error"' in html
    assert 'id="error-strength"' in html
    assert re.search(r'<fieldset class="strength invalid"\s+aria-invalid="true"', html)
    assert "Say how much better" in html
    assert re.search(r'value="A" data-key="1" required\s+checked', html)
    assert re.search(r'name="labels.B" value="spam" data-digit="3"\s+checked', html)
    assert ">Kept &lt;text&gt;</textarea>" in html
    assert ">My rewrite</textarea>" in html
    assert "hx-swap-oob" not in html  # nothing stored, nothing else on the page changes
    assert session.scalar(select(func.count()).select_from(Judgment)) == 0


def test_unknown_label_is_422_on_that_responses_labels(client: TestClient, workbench: str) -> None:
    csrf = _log_in(client, workbench)
    _, assignment = _open(client, "workbench")
    response = client.post(
        f"/projects/workbench/annotate/{assignment}",
        data={"choice": "tie", "labels.A": "made-up"},
        headers=_htmx(csrf),
    )
    assert response.status_code == 422
    assert 'id="error-labels-A"' in response.text
    assert "Unknown label made-up" in response.text


def test_skip_with_a_reason_returns_the_next_task(client: TestClient, workbench: str, session: Session) -> None:
    csrf = _log_in(client, workbench)
    _, first = _open(client, "workbench")
    response = client.post(
        f"/projects/workbench/annotate/{first}/skip", data={"reason": "language"}, headers=_htmx(csrf)
    )
    assert response.status_code == 200
    _assert_swaps_loop_state(response.text, done_today=0, recent=[])
    second = re.search(r'data-assignment="(\d+)"', response.text)
    assert second and int(second.group(1)) != first
    skipped = session.execute(select(Assignment).where(Assignment.id == first)).scalar_one()
    assert skipped.state is AssignmentState.SKIPPED
    assert skipped.skip_reason == "Not my language"


def test_skip_as_other_keeps_the_free_text_and_needs_it(client: TestClient, workbench: str, session: Session) -> None:
    csrf = _log_in(client, workbench)
    _, first = _open(client, "workbench")
    empty = client.post(
        f"/projects/workbench/annotate/{first}/skip", data={"reason": "other", "other": " "}, headers=_htmx(csrf)
    )
    assert empty.status_code == 422
    assert f'data-assignment="{first}"' in empty.text
    assert 'id="form-error"' in empty.text
    done = client.post(
        f"/projects/workbench/annotate/{first}/skip",
        data={"reason": "other", "other": "Duplicate of w2"},
        headers=_htmx(csrf),
    )
    assert done.status_code == 200
    reason = session.execute(select(Assignment.skip_reason).where(Assignment.id == first)).scalar_one()
    assert reason == "Other: Duplicate of w2"


def test_progress_fragment_counts_todays_judgments(client: TestClient, workbench: str) -> None:
    csrf = _log_in(client, workbench)
    _, assignment = _open(client, "workbench")
    client.post(f"/projects/workbench/annotate/{assignment}", data={"choice": "tie"}, headers=_htmx(csrf))
    strip = client.get("/projects/workbench/progress", headers={"HX-Request": "true"})
    assert strip.status_code == 200
    assert strip.text.lstrip().startswith('<div id="progress"')
    assert re.search(r'data-stat="done">Done today <b>1</b>', strip.text)
    assert re.search(r'data-stat="left">Left in queue <b>\d+</b>', strip.text)
    assert 'data-stat="streak">Streak <b>1</b> day</span>' in strip.text
    assert "hx-get" not in strip.text and "hx-swap-oob" not in strip.text  # loaded once: submits bring the next


def test_revising_a_recent_judgment_keeps_the_old_version(client: TestClient, workbench: str, session: Session) -> None:
    csrf = _log_in(client, workbench)
    _, assignment = _open(client, "workbench")
    client.post(
        f"/projects/workbench/annotate/{assignment}",
        data={"choice": "A", "strength": "slightly", "labels.B": "spam"},
        headers=_htmx(csrf),
    )
    judgment = session.execute(select(Judgment).where(Judgment.assignment_id == assignment)).scalar_one()
    recent = client.get("/projects/workbench/recent", headers={"HX-Request": "true"})
    assert f'hx-get="/projects/workbench/judgments/{judgment.id}"' in recent.text
    assert "revision 1" in recent.text

    reopened = client.get(f"/projects/workbench/judgments/{judgment.id}", headers={"HX-Request": "true"})
    assert reopened.status_code == 200
    assert 'id="revising"' in reopened.text
    assert f'hx-post="/projects/workbench/judgments/{judgment.id}"' in reopened.text
    assert re.search(r'value="A" data-key="1" required\s+checked', reopened.text)
    assert re.search(r'value="slightly" data-key="q"\s+checked', reopened.text)
    assert re.search(r'name="labels.B" value="spam" data-digit="3"\s+checked', reopened.text)
    assert 'id="skip-dialog"' not in reopened.text

    bad = client.post(f"/projects/workbench/judgments/{judgment.id}", data={"choice": "B"}, headers=_htmx(csrf))
    assert bad.status_code == 422
    assert 'id="revising"' in bad.text
    assert 'id="error-strength"' in bad.text

    revised = client.post(
        f"/projects/workbench/judgments/{judgment.id}",
        data={"choice": "B", "strength": "much", "time_spent_ms": "900"},
        headers=_htmx(csrf),
    )
    assert revised.status_code == 200
    _assert_swaps_loop_state(revised.text, done_today=1, recent=["w1"])
    assert "revision 2" in revised.text
    assert 'id="revising"' not in revised.text
    session.expire_all()
    current = session.execute(select(Judgment).where(Judgment.id == judgment.id)).scalar_one()
    assert current.revision == 2
    assert current.payload["choice"] == "B"
    assert current.payload["strength"] == "much"
    old = session.execute(select(JudgmentRevision).where(JudgmentRevision.judgment_id == judgment.id)).scalar_one()
    assert old.revision == 1
    assert old.payload["choice"] == "A"
    assert "revision 2" in client.get("/projects/workbench/recent", headers={"HX-Request": "true"}).text


def test_daily_cap_reached_shows_the_limit_instead_of_a_task(
    client: TestClient, session: Session, people: People, operator: Principal
) -> None:
    email = _workbench(
        session, people, operator, slug="capped", options={"daily_cap": 1}, items=[native_item("c1"), native_item("c2")]
    )
    csrf = _log_in(client, email)
    _, assignment = _open(client, "capped")
    response = client.post(f"/projects/capped/annotate/{assignment}", data={"choice": "A"}, headers=_htmx(csrf))
    assert response.status_code == 200
    assert 'id="daily-cap"' in response.text
    assert "Daily limit reached" in response.text
    assert 'id="judgment-form"' not in response.text
    page = client.get("/projects/capped/annotate")
    assert page.status_code == 200
    assert 'id="daily-cap"' in page.text


def test_sensitive_content_renders_blurred_with_a_marker(
    client: TestClient, session: Session, people: People, operator: Principal
) -> None:
    item = native_item("s1", a="A calm answer.", b="A graphic answer.")
    item["responses"] = [
        {"model": "m-a", "content": "A calm answer."},
        {"model": "m-b", "content": "A graphic answer.", "metadata": {"sensitive": True}},
    ]
    email = _workbench(session, people, operator, slug="flagged", options={}, items=[item])
    _log_in(client, email)
    page, _ = _open(client, "flagged")
    assert 'class="conversation sensitive"' in page
    assert page.count('class="response sensitive"') == 2  # a flagged response flags its item
    assert page.count('class="sensitive-marker"') == 3
    assert 'data-reveal="conversation"' in page
    assert 'data-reveal="response-A"' in page
    assert 'data-reveal="response-B"' in page


def test_plain_item_has_no_blur(client: TestClient, workbench: str) -> None:
    _log_in(client, workbench)
    page, _ = _open(client, "workbench")
    assert "sensitive-marker" not in page
    assert 'class="response"' in page
