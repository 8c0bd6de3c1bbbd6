"""Gold pages over HTTP: training feedback, the lead's gold card, pause and qualification pages, notifications."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from preference_store.models import Role
from tests.app.test_gold import _join, _mark, _project
from tests.conftest import People

HTMX = {"HX-Request": "true"}


@pytest.fixture
def staff(people: People) -> dict[str, str]:
    return people.headers(people.make("lead@example.org", Role.LEAD))


def _assignment(html: str) -> int:
    found = re.search(r'data-assignment="(\d+)"', html)
    assert found is not None, html
    return int(found.group(1))


def _shown_label(html: str, content: str) -> str:
    """The label of the response card that holds `content`."""
    for label, body in re.findall(r'id="response-([A-Z])"(.*?)</article>', html, re.S):
        if content in body:
            return str(label)
    raise AssertionError(f"no response with {content!r}")


def test_training_shows_feedback_after_a_gold_answer(client: TestClient, people: People, staff: dict[str, str]) -> None:
    annotator = people.make("ann@example.org")
    who = people.headers(annotator)
    _project(client, staff, "train-page", items=2, purpose="training")
    _join(client, staff, "train-page", annotator)
    _mark(client, staff, "train-page", "i000", "A", explanation="Because **A** answers <b>it</b>.")
    page = client.get("/projects/train-page/annotate", headers=who)
    assert "Because" not in page.text
    assignment = _assignment(page.text)
    wrong = "B" if _shown_label(page.text, "answer A0") == "A" else "A"
    answered = client.post(f"/projects/train-page/annotate/{assignment}", data={"choice": wrong}, headers=who | HTMX)
    assert answered.status_code == 200
    assert 'id="gold-feedback"' in answered.text
    assert 'id="gold-verdict">Not quite' in answered.text
    assert "<strong>A</strong>" in answered.text and "&lt;b&gt;" in answered.text
    expected = re.search(r'id="gold-expected">([^<]*)', answered.text)
    assert expected is not None and expected.group(1).strip().startswith("B" if wrong == "A" else "A")
    assert 'id="gold-next"' in answered.text


def test_training_without_htmx_redirects_to_the_feedback_page(
    client: TestClient, people: People, staff: dict[str, str]
) -> None:
    annotator = people.make("ann@example.org")
    who = people.headers(annotator)
    _project(client, staff, "train-plain", items=1, purpose="training")
    _join(client, staff, "train-plain", annotator)
    _mark(client, staff, "train-plain", "i000", "tie", explanation="Same content.")
    assignment = _assignment(client.get("/projects/train-plain/annotate", headers=who).text)
    answered = client.post(
        f"/projects/train-plain/annotate/{assignment}", data={"choice": "tie"}, headers=who, follow_redirects=False
    )
    assert answered.status_code == 303
    assert answered.headers["location"] == f"/projects/train-plain/annotate/{assignment}/feedback"
    page = client.get(answered.headers["location"], headers=who)
    assert 'id="gold-verdict">Right' in page.text and "Same content." in page.text


def test_production_gold_pages_show_no_trace_of_gold(client: TestClient, people: People, staff: dict[str, str]) -> None:
    annotator = people.make("ann@example.org")
    who = people.headers(annotator)
    _project(client, staff, "prod-page", items=1, gold={"mix_rate": 0.5})
    _join(client, staff, "prod-page", annotator)
    _mark(client, staff, "prod-page", "i000", "A", explanation="SECRET-EXPLANATION")
    page = client.get("/projects/prod-page/annotate", headers=who)
    assert "answer A0" in page.text
    assert "SECRET" not in page.text and "gold-" not in page.text
    answered = client.post(
        f"/projects/prod-page/annotate/{_assignment(page.text)}", data={"choice": "B"}, headers=who | HTMX
    )
    assert "SECRET" not in answered.text and 'id="gold-feedback"' not in answered.text
    assert client.get("/projects/prod-page/gold-card?item=i000", headers=who).status_code == 403


def test_lead_sets_and_removes_gold_from_the_card(client: TestClient, people: People, staff: dict[str, str]) -> None:
    _project(client, staff, "card", items=1, strength=True)
    card = client.get("/projects/card/gold-card?item=i000", headers=staff | HTMX)
    assert card.status_code == 200 and 'id="gold-form"' in card.text and 'id="gold-strength"' in card.text
    detail = client.get("/projects/card/items/i000", headers=staff)
    assert 'hx-get="/projects/card/gold-card?item=i000"' in detail.text
    saved = client.post(
        "/projects/card/gold-card",
        data={"external_id": "i000", "choice": "B", "strength": "", "accepted": "tie", "explanation": "B <i>wins</i>"},
        headers=staff | HTMX,
    )
    assert saved.status_code == 200, saved.text
    assert 'id="gold-current"' in saved.text and "<code>p1</code>" in saved.text and "<code>tie</code>" in saved.text
    assert "B &lt;i&gt;wins&lt;/i&gt;" in saved.text
    invalid = client.post("/projects/card/gold-card", data={"external_id": "i000"}, headers=staff | HTMX)
    assert invalid.status_code == 422 and 'id="gold-error"' in invalid.text
    removed = client.post("/projects/card/gold-card/remove", data={"external_id": "i000"}, headers=staff | HTMX)
    assert 'id="gold-current"' not in removed.text


def test_paused_annotator_sees_the_pause_and_the_lead_resumes_from_notifications(
    client: TestClient, people: People, staff: dict[str, str]
) -> None:
    annotator = people.make("ann@example.org")
    who = people.headers(annotator)
    _project(client, staff, "floor-page", items=2, gold={"mix_rate": 0.5, "floor": 0.9, "window": 1})
    _join(client, staff, "floor-page", annotator)
    _mark(client, staff, "floor-page", "i000", "tie")
    _mark(client, staff, "floor-page", "i001", "tie")
    page = client.get("/projects/floor-page/annotate", headers=who)
    client.post(f"/projects/floor-page/annotate/{_assignment(page.text)}", data={"choice": "A"}, headers=who)
    paused = client.get("/projects/floor-page/annotate", headers=who)
    assert 'id="annotator-paused"' in paused.text
    badge = client.get("/notifications/badge", headers=staff)
    assert 'data-count="1"' in badge.text
    listed = client.get("/notifications", headers=staff)
    assert "floor-page" in listed.text
    found = re.search(r'action="(/projects/floor-page/members/\d+/resume)"', listed.text)
    note = re.search(r'name="notification_id" value="(\d+)"', listed.text)
    assert found is not None and note is not None
    assert client.get("/notifications", headers=who).status_code == 403
    resumed = client.post(found.group(1), data={"notification_id": note.group(1)}, headers=staff | HTMX)
    assert resumed.status_code == 200 and 'id="no-notifications"' not in resumed.text
    assert 'data-count="0"' in client.get("/notifications/badge", headers=staff).text
    assert 'id="annotator-paused"' not in client.get("/projects/floor-page/annotate", headers=who).text


def test_production_page_links_to_the_qualification_to_take(
    client: TestClient, people: People, staff: dict[str, str]
) -> None:
    annotator = people.make("ann@example.org")
    _project(client, staff, "qual-page", items=1, purpose="qualification")
    _project(client, staff, "prod-locked", items=1, gold={"requires_qualification": ["qual-page"]})
    _join(client, staff, "prod-locked", annotator)
    page = client.get("/projects/prod-locked/annotate", headers=people.headers(annotator))
    assert 'id="qualification-required"' in page.text
    assert 'href="/projects/qual-page/annotate"' in page.text
