"""The arbitration pages over HTTP: queue, filters, the case page, the verdict form, refusals, escaping."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from preference_store.models import ArbitrationCase
from tests.app.test_arbitration import ANNOTATORS, _judge, _label, _project, _staff
from tests.conftest import People

SLUG = "arb-pages"


def _seed(client: TestClient, people: People) -> dict[str, str]:
    lead = _staff(people)
    _project(client, lead, slug=SLUG, items=3)

    def body(annotator: int, task: dict[str, Any]) -> dict[str, Any]:
        return {"choice": _label(task, annotator), "rationale": f"<b>reason {annotator}</b>"}

    _judge(client, people, SLUG, 0, body)
    _judge(client, people, SLUG, 1, body)
    return lead


def _case_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'<tr class="case-row" data-case-id="(\d+)"', html)]


def test_the_queue_lists_open_cases_oldest_first_with_filters_and_counts(client: TestClient, people: People) -> None:
    lead = _seed(client, people)
    page = client.get(f"/projects/{SLUG}/arbitration", headers=lead)
    assert page.status_code == 200, page.text
    ids = _case_ids(page.text)
    assert len(ids) == 3 and ids == sorted(ids)
    assert re.search(r'data-state="open">[^<]*<span class="count">3</span>', page.text)
    thai = client.get(
        f"/projects/{SLUG}/arbitration", params={"language": "th"}, headers={**lead, "HX-Request": "true"}
    )
    assert thai.text.lstrip().startswith('<section id="cases"') and len(_case_ids(thai.text)) == 1
    first = client.get(f"/projects/{SLUG}/arbitration", params={"limit": 2}, headers=lead)
    assert _case_ids(first.text) == ids[:2]
    found = re.search(r'id="next-page" href="([^"]+)"', first.text)
    assert found is not None
    rest = client.get(found.group(1).replace("&amp;", "&") + "&limit=2", headers=lead)
    assert _case_ids(rest.text) == ids[2:] and 'id="next-page"' not in rest.text
    refused = client.get(f"/projects/{SLUG}/arbitration", params={"reason": "bogus"}, headers=lead)
    assert refused.status_code == 422


def test_annotators_get_403_on_every_arbitration_page(client: TestClient, people: People) -> None:
    _seed(client, people)
    annotator = people.headers(ANNOTATORS[0])
    assert client.get(f"/projects/{SLUG}/arbitration", headers=annotator).status_code == 403
    assert client.get(f"/projects/{SLUG}/arbitration/1", headers=annotator).status_code == 403
    posted = client.post(f"/projects/{SLUG}/items/i0/arbitration", headers=annotator, follow_redirects=False)
    assert posted.status_code == 403


def test_the_case_page_shows_every_judgment_escaped_and_the_form_goes_to_the_next_case(
    client: TestClient, people: People, session: Session
) -> None:
    lead = _seed(client, people)
    first, second, _third = _case_ids(client.get(f"/projects/{SLUG}/arbitration", headers=lead).text)
    page = client.get(f"/projects/{SLUG}/arbitration/{first}", headers=lead)
    assert page.status_code == 200, page.text
    assert page.text.count('class="judgment card"') == 2
    assert "&lt;b&gt;reason 0&lt;/b&gt;" in page.text and "<b>reason 0</b>" not in page.text
    assert 'class="annotator-history muted" data-judgments="3"' in page.text
    assert f'href="/projects/{SLUG}/arbitration/{second}" id="next-case"' in page.text
    url = f"/projects/{SLUG}/arbitration/{first}/verdict"
    missing = client.post(url, data={"choice": "A"}, headers=lead)
    assert missing.status_code == 422
    assert 'data-field="rationale"' in missing.text and 'value="A" data-key="1" checked' in missing.text
    saved = client.post(url, data={"choice": "B", "rationale": "B is right"}, headers=lead, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == f"/projects/{SLUG}/arbitration/{second}"
    stored = session.scalar(select(ArbitrationCase).where(ArbitrationCase.id == first))
    assert stored is not None and stored.verdict == "p1" and stored.rationale == "B is right"
    dismissed = client.post(f"/projects/{SLUG}/arbitration/{second}/dismiss", headers=lead, follow_redirects=False)
    assert dismissed.headers["location"].endswith(f"/arbitration/{_third}")


def test_leads_send_an_item_to_arbitration_from_its_page(client: TestClient, people: People) -> None:
    lead = _staff(people)
    _project(client, lead, slug=SLUG, items=1)
    detail = client.get(f"/projects/{SLUG}/items/i0", headers=lead)
    assert f'action="/projects/{SLUG}/items/i0/arbitration"' in detail.text
    sent = client.post(f"/projects/{SLUG}/items/i0/arbitration", headers=lead, follow_redirects=False)
    assert sent.status_code == 303 and re.fullmatch(rf"/projects/{SLUG}/arbitration/\d+", sent.headers["location"])
    case = client.get(sent.headers["location"], headers=lead)
    assert case.status_code == 200 and 'id="no-judgments"' in case.text


def test_the_export_page_offers_the_arbitration_mode(client: TestClient, people: People) -> None:
    lead = _seed(client, people)
    page = client.get(f"/projects/{SLUG}/exports", headers=lead)
    assert page.status_code == 200
    assert '<option value="verdict-first" selected>' in page.text and '<option value="ignore">' in page.text
