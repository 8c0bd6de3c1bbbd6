"""Clarification pages over HTTP: the annotate panel, asking, the leads' page, inline answers, refusals."""

from __future__ import annotations

import re

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from preference_store.models import Clarification, Role
from tests.conftest import People, native_item

SLUG = "clar-pages"
HTMX = {"HX-Request": "true"}
HOSTILE = "<script>alert('q')</script> Is this spam?"


@pytest.fixture
def heads(client: TestClient, people: People) -> dict[str, dict[str, str]]:
    lead = people.headers(people.make("clar-page-lead@example.org", Role.LEAD))
    email = people.make("clar-page-ann@example.org")
    client.post("/api/v1/projects", json={"slug": SLUG, "name": "Clarify pages"}, headers=lead)
    client.post(f"/api/v1/projects/{SLUG}/members", json={"emails": [email]}, headers=lead)
    client.post(f"/api/v1/projects/{SLUG}/items", content=orjson.dumps([native_item("cp-1")]), headers=lead)
    return {"lead": lead, "ann": people.headers(email)}


def test_annotate_page_offers_the_ask_control_key_and_panel_tab(
    client: TestClient, heads: dict[str, dict[str, str]]
) -> None:
    page = client.get(f"/projects/{SLUG}/annotate", headers=heads["ann"])
    assert page.status_code == 200
    assert 'data-action="ask"' in page.text
    assert 'id="tab-clarifications"' in page.text
    assert f'hx-get="/projects/{SLUG}/clarifications/panel"' in page.text
    assert 'data-external-id="cp-1"' in page.text
    assert re.search(r"<kbd>m</kbd></td><td>[^<]+</td>", page.text)


def test_asking_from_the_panel_stores_the_item_and_confirms(
    client: TestClient, heads: dict[str, dict[str, str]], session: Session
) -> None:
    form = {"question": HOSTILE, "external_id": "cp-1", "guidelines_version": "1"}
    sent = client.post(f"/projects/{SLUG}/clarifications", data=form, headers=heads["ann"] | HTMX)
    assert sent.status_code == 200, sent.text
    assert sent.text.lstrip().startswith('<div id="clarifications-panel"')
    assert 'id="ask-sent"' in sent.text
    assert "&lt;script&gt;" in sent.text and "<script>alert" not in sent.text
    stored = session.execute(select(Clarification.question, Clarification.item_id)).one()
    assert stored.question == HOSTILE and stored.item_id is not None

    short = client.post(f"/projects/{SLUG}/clarifications", data={"question": "?"}, headers=heads["ann"] | HTMX)
    assert short.status_code == 422
    assert 'id="ask-error"' in short.text and 'aria-invalid="true"' in short.text

    no_js = client.post(
        f"/projects/{SLUG}/clarifications", data={"question": "Without JavaScript?"}, headers=heads["ann"],
        follow_redirects=False,
    )  # fmt: skip
    assert (no_js.status_code, no_js.headers["location"]) == (303, f"/projects/{SLUG}/annotate")


def test_lead_answers_inline_and_the_annotator_sees_it(client: TestClient, heads: dict[str, dict[str, str]]) -> None:
    asked = client.post(
        f"/api/v1/projects/{SLUG}/clarifications",
        json={"question": HOSTILE, "external_id": "cp-1"},
        headers=heads["ann"],
    ).json()
    badge = client.get(f"/projects/{SLUG}/clarifications/badge", headers=heads["lead"] | HTMX)
    assert 'data-count="1"' in badge.text

    page = client.get(f"/projects/{SLUG}/clarifications", headers=heads["lead"])
    assert page.status_code == 200
    open_section = page.text.split('id="open-questions"')[1].split('id="clarification-log"')[0]
    assert f'id="clarification-{asked["id"]}"' in open_section
    assert f'href="/projects/{SLUG}/items/cp-1"' in open_section
    assert "&lt;script&gt;" in page.text and "<script>alert" not in page.text

    answered = client.post(
        f"/projects/{SLUG}/clarifications/{asked['id']}/answer", data={"answer": "No, it is fine."},
        headers=heads["lead"] | HTMX,
    )  # fmt: skip
    assert answered.status_code == 200
    assert answered.text.lstrip().startswith(
        f'<article class="card clarification clarification-answered" id="clarification-{asked["id"]}"'
    )
    after = client.get(f"/projects/{SLUG}/clarifications/badge", headers=heads["lead"] | HTMX)
    assert 'data-count="0"' in after.text and "badge" not in after.text
    empty = client.post(
        f"/projects/{SLUG}/clarifications/{asked['id']}/answer", data={"answer": " "}, headers=heads["lead"] | HTMX
    )
    assert empty.status_code == 422 and 'role="alert"' in empty.text

    panel = client.get(f"/projects/{SLUG}/clarifications/panel", headers=heads["ann"] | HTMX)
    mine = panel.text.split('id="my-questions"')[1].split("clarification-answers")[0]
    assert "No, it is fine." in mine
    search = client.get(f"/projects/{SLUG}/clarifications/answers", params={"q": "FINE"}, headers=heads["ann"] | HTMX)
    assert search.text.lstrip().startswith('<div id="clarification-answers"')
    assert f'id="entry-{asked["id"]}"' in search.text
    missing = client.get(f"/projects/{SLUG}/clarifications/answers", params={"q": "100%"}, headers=heads["ann"] | HTMX)
    assert 'id="entry-' not in missing.text

    log = client.get(f"/projects/{SLUG}/clarifications", params={"q": "fine"}, headers=heads["lead"] | HTMX)
    assert log.text.lstrip().startswith('<section id="clarification-log"')
    assert f'id="clarification-{asked["id"]}"' in log.text


def test_annotators_cannot_open_the_lead_page_or_answer(client: TestClient, heads: dict[str, dict[str, str]]) -> None:
    asked = client.post(
        f"/api/v1/projects/{SLUG}/clarifications", json={"question": "May I answer?"}, headers=heads["ann"]
    ).json()
    assert client.get(f"/projects/{SLUG}/clarifications", headers=heads["ann"]).status_code == 403
    assert client.get(f"/projects/{SLUG}/clarifications/badge", headers=heads["ann"]).status_code == 403
    denied = client.post(
        f"/projects/{SLUG}/clarifications/{asked['id']}/answer", data={"answer": "Yes"}, headers=heads["ann"]
    )
    assert denied.status_code == 403


def test_lead_dismisses_and_marks_an_answer_absorbed(client: TestClient, heads: dict[str, dict[str, str]]) -> None:
    first = client.post(f"/api/v1/projects/{SLUG}/clarifications", json={"question": "Is satire spam?"},
                        headers=heads["ann"]).json()  # fmt: skip
    second = client.post(f"/api/v1/projects/{SLUG}/clarifications", json={"question": "Same as the other"},
                         headers=heads["ann"]).json()  # fmt: skip
    dismissed = client.post(f"/projects/{SLUG}/clarifications/{second['id']}/dismiss", headers=heads["lead"] | HTMX)
    assert 'data-state="dismissed"' in dismissed.text
    client.post(f"/projects/{SLUG}/clarifications/{first['id']}/answer", data={"answer": "No."}, headers=heads["lead"])
    client.put(f"/api/v1/projects/{SLUG}/guidelines", json={"text": "# Satire is not spam"}, headers=heads["lead"])
    page = client.get(f"/projects/{SLUG}/clarifications", headers=heads["lead"])
    assert 'class="absorb-form inline"' in page.text
    absorbed = client.post(
        f"/projects/{SLUG}/clarifications/absorb", data={"ids": str(first["id"]), "version": "2"},
        headers=heads["lead"] | HTMX,
    )  # fmt: skip
    assert absorbed.status_code == 200, absorbed.text
    assert 'class="absorbed"' in absorbed.text and "absorb-form" not in absorbed.text
