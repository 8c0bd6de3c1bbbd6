"""Calibration pages over HTTP: the leads' pages, the blind task, the home-page entry, refusals."""

from __future__ import annotations

import re

import orjson
import pytest
from fastapi.testclient import TestClient

from preference_store.models import Role
from tests.conftest import People, native_item

SLUG = "calib-pages"
HOSTILE = "<script>alert('c')</script> because"


@pytest.fixture
def heads(client: TestClient, people: People) -> dict[str, dict[str, str]]:
    lead = people.headers(people.make("cal-page-lead@example.org", Role.LEAD))
    ann1 = people.headers(people.make("cal-page-1@example.org", team="Vendor P"))
    ann2 = people.headers(people.make("cal-page-2@example.org", team="Vendor P"))
    client.post("/api/v1/projects", json={"slug": SLUG, "name": "Calibration pages"}, headers=lead)
    items = [native_item(f"p-{n}") for n in (1, 2)]
    client.post(f"/api/v1/projects/{SLUG}/items", content=orjson.dumps(items), headers=lead)
    return {"lead": lead, "ann1": ann1, "ann2": ann2}


def _create(client: TestClient, heads: dict[str, dict[str, str]]) -> str:
    form = {"name": "Pages round", "teams": "Vendor P", "external_ids": "p-1\np-2", "after_days": "14"}
    made = client.post(f"/projects/{SLUG}/calibration", data=form, headers=heads["lead"], follow_redirects=False)
    assert made.status_code == 303, made.text
    return str(made.headers["location"])


def test_lead_creates_a_session_and_annotators_are_refused_the_lead_pages(
    client: TestClient, heads: dict[str, dict[str, str]]
) -> None:
    page = client.get(f"/projects/{SLUG}/calibration", headers=heads["lead"])
    assert page.status_code == 200 and 'id="new-session"' in page.text and "Vendor P" in page.text
    bad = client.post(f"/projects/{SLUG}/calibration", data={"name": "", "teams": "Vendor P"}, headers=heads["lead"])
    assert bad.status_code == 422 and 'id="form-error"' in bad.text
    location = _create(client, heads)
    session_page = client.get(location, headers=heads["lead"])
    assert 'id="reveal"' in session_page.text and "<code>p-1</code>" in session_page.text
    assert client.get(f"/projects/{SLUG}/calibration", headers=heads["ann1"]).status_code == 403
    assert client.get(location, headers=heads["ann1"]).status_code == 403
    home = client.get("/", headers=heads["lead"])
    assert f'href="/projects/{SLUG}/calibration"' in home.text


def test_participants_answer_blind_and_see_only_their_own_answers(
    client: TestClient, heads: dict[str, dict[str, str]]
) -> None:
    location = _create(client, heads)
    home = client.get("/", headers=heads["ann1"])
    assert 'id="calibration-waiting"' in home.text
    task_url = f"{location}/task"
    task = client.get(task_url, headers=heads["ann1"])
    assert task.status_code == 200 and 'id="judgment-form"' in task.text
    action = re.search(r'<form id="judgment-form" method="post" action="([^"]+)"', task.text)
    assert action is not None
    sent = client.post(
        action.group(1), data={"choice": "A", "rationale": HOSTILE}, headers=heads["ann1"], follow_redirects=False
    )
    assert sent.status_code == 303
    invalid = client.post(action.group(1), data={"choice": "Q"}, headers=heads["ann1"])
    assert invalid.status_code == 422 and 'aria-invalid="true"' in invalid.text
    item = action.group(1).rsplit("/", 1)[1]
    mine = client.get(f"{task_url}?item={item}", headers=heads["ann1"])
    assert "&lt;script&gt;" in mine.text and "<script>alert" not in mine.text
    theirs = client.get(f"{task_url}?item={item}", headers=heads["ann2"])
    assert theirs.status_code == 200 and "alert(" not in theirs.text and "because" not in theirs.text
    lead_view = client.get(location, headers=heads["lead"])
    assert "because" not in lead_view.text

    client.post(f"{location}/reveal", headers=heads["lead"])
    revealed = client.get(location, headers=heads["lead"])
    assert (
        'id="figures"' in revealed.text and "&lt;script&gt;" in revealed.text and "<script>alert" not in revealed.text
    )
    assert client.get(task_url, headers=heads["ann1"]).text.count('id="calibration-revealed"') == 1
    assert 'id="calibration-waiting"' not in client.get("/", headers=heads["ann2"]).text


def test_the_item_browser_hands_its_listed_items_to_the_new_session_form(
    client: TestClient, heads: dict[str, dict[str, str]]
) -> None:
    items = client.get(f"/projects/{SLUG}/items", headers=heads["lead"])
    link = re.search(r'href="([^"]+)" id="calibrate-listed"', items.text)
    assert link is not None and link.group(1)
    form = client.get(link.group(1).replace("&amp;", "&"), headers=heads["lead"])
    listed = re.search(r'<textarea name="external_ids" id="session-items"[^>]*>([^<]*)</textarea>', form.text)
    assert listed is not None and sorted(listed.group(1).split()) == ["p-1", "p-2"]
