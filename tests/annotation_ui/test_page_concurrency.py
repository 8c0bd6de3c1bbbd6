"""The annotation loop's pages do their database work as the JSON API does (`Call.run`)."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
from anyio import CapacityLimiter
from anyio.from_thread import BlockingPortal
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.principal import Principal
from app.services import annotation, importing, projects
from preference_store.models import Judgment, Role
from tests.conftest import People, native_item

PASSWORD = "correct horse battery"
SLUG = "bounded"


@pytest.fixture
def logged_in(client: TestClient, session: Session, people: People, operator: Principal) -> dict[str, str]:
    """htmx headers of a logged-in annotator of a two-item project."""
    email = people.make("bounded@example.org", Role.ANNOTATOR, password=PASSWORD)
    projects.create_project(session, principal=operator, slug=SLUG, name="Bounded", overlap=1, guidelines="Judge.")
    rows = [native_item("b1"), native_item("b2")]
    importing.import_items(session, principal=operator, slug=SLUG, rows=list(enumerate(rows, start=1)))
    projects.add_members(session, principal=operator, slug=SLUG, emails=[email])
    login_page = client.get("/login").text
    login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', login_page)
    assert login_csrf
    form = {"email": email, "password": PASSWORD, "csrf_token": login_csrf.group(1), "next": "/"}
    assert client.post("/login", data=form, follow_redirects=False).status_code == 303
    csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get("/").text)
    assert csrf
    return {"HX-Request": "true", "X-CSRF-Token": csrf.group(1)}


def _portal(client: TestClient) -> BlockingPortal:
    """The event loop of a client whose lifespan runs (the fixture enters it)."""
    assert client.portal is not None
    return client.portal


def _assignment(client: TestClient) -> int:
    page = client.get(f"/projects/{SLUG}/annotate")
    found = re.search(r'data-assignment="(\d+)"', page.text)
    assert found, page.text
    return int(found.group(1))


def test_a_page_submit_waits_for_a_place_under_database_concurrency(
    app: FastAPI, client: TestClient, logged_in: dict[str, str], session: Session
) -> None:
    limiter = CapacityLimiter(1)
    app.state.context = replace(app.state.context, inline_database=False, database_limiter=limiter)
    assignment = _assignment(client)
    holder = object()
    _portal(client).call(limiter.acquire_on_behalf_of, holder)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(
            client.post, f"/projects/{SLUG}/annotate/{assignment}", data={"choice": "tie"}, headers=logged_in
        )
        threading.Event().wait(0.3)
        assert not pending.done()  # every place is taken: the submit waits, in no thread
        _portal(client).call(limiter.release_on_behalf_of, holder)
        answer = pending.result(timeout=10)
    assert answer.status_code == 200, answer.text
    assert 'hx-swap-oob="true"' in answer.text
    assert session.scalar(select(func.count()).select_from(Judgment)) == 1


def test_on_sqlite_a_page_submit_stores_on_the_event_loop(
    app: FastAPI, client: TestClient, logged_in: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app.state.context = replace(app.state.context, inline_database=True)
    loop_thread = _portal(client).call(threading.get_ident)
    ran_on: list[int] = []
    submit_judgment = annotation.submit_judgment

    def recording(*args: Any, **kwargs: Any) -> Any:
        ran_on.append(threading.get_ident())
        return submit_judgment(*args, **kwargs)

    monkeypatch.setattr(annotation, "submit_judgment", recording)
    assignment = _assignment(client)
    answer = client.post(f"/projects/{SLUG}/annotate/{assignment}", data={"choice": "tie"}, headers=logged_in)
    assert answer.status_code == 200, answer.text
    assert ran_on == [loop_thread]
