"""The leads' item pages over HTTP: filters, htmx fragments, the detail, escaping, refusals."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.principal import Principal
from tests.app.test_item_browser import SLUG, Seeded, seed_browse_project, seed_rubric_and_ranking
from tests.conftest import People

HTMX = {"HX-Request": "true"}


@pytest.fixture
def seeded(session: Session, people: People, operator: Principal) -> Seeded:
    return seed_browse_project(session, people, operator)


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr class="item-row[^"]*" data-external-id="([^"]+)"', html)


def test_leads_see_every_item_with_filters_offered_from_the_project(
    client: TestClient, people: People, seeded: Seeded
) -> None:
    response = client.get(f"/projects/{SLUG}/items", headers=people.headers(seeded.lead_email))
    assert response.status_code == 200, response.text
    assert _rows(response.text) == ["b-agree", "b-split", "b-half", "b-leased", "b-open"]
    assert 'id="item-filters"' in response.text
    language_options = re.search(r'<select name="language" id="filter-language">(.*?)</select>', response.text, re.S)
    assert language_options is not None
    assert re.findall(r'<option value="([^"]*)"', language_options.group(1)) == ["", "en", "id", "th"]
    assert '<link rel="stylesheet" href="/static/lead.css">' in response.text
    assert re.search(r'data-external-id="b-split" data-state="complete"', response.text)
    assert 'href="/projects/browse/items/b-split"' in response.text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"language": "en", "market": "US"}, ["b-split", "b-open"]),
        ({"category": "spam"}, ["b-half", "b-open"]),
        ({"state": "in_progress"}, ["b-half", "b-leased"]),
        ({"has_disagreement": "true"}, ["b-split"]),
        ({"has_disagreement": "false", "state": "complete"}, ["b-agree"]),
        ({"q": "open"}, ["b-open"]),
        (
            {"language": "", "state": "", "has_disagreement": "", "q": ""},
            ["b-agree", "b-split", "b-half", "b-leased", "b-open"],
        ),
    ],
)
def test_page_filters_use_the_api_names(
    client: TestClient, people: People, seeded: Seeded, query: dict[str, str], expected: list[str]
) -> None:
    response = client.get(f"/projects/{SLUG}/items", params=query, headers=people.headers(seeded.lead_email))
    assert response.status_code == 200, response.text
    assert _rows(response.text) == expected
    for name, value in query.items():
        if value and name in ("language", "market", "category", "state"):
            assert re.search(rf'<option value="{value}" selected>', response.text)


def test_htmx_gets_only_the_results_block_and_a_next_page_link_keeping_filters(
    client: TestClient, people: People, seeded: Seeded
) -> None:
    headers = people.headers(seeded.lead_email) | HTMX
    response = client.get(f"/projects/{SLUG}/items", params={"language": "en", "limit": "2"}, headers=headers)
    assert response.status_code == 200
    assert response.headers["vary"] == "HX-Request"
    assert response.text.lstrip().startswith('<section id="results"')
    assert "item-filters" not in response.text
    assert _rows(response.text) == ["b-split", "b-leased"]
    link = re.search(r'id="next-page" hx-get="([^"]+)"', response.text)
    assert link is not None
    next_url = link.group(1).replace("&amp;", "&")
    assert "language=en" in next_url and "limit=2" in next_url and "after=" in next_url
    second = client.get(next_url, headers=headers)
    assert _rows(second.text) == ["b-open"]
    assert 'id="next-page"' not in second.text
    assert 'id="first-page"' in second.text


def test_the_list_escapes_a_hostile_prompt_and_marks_sensitive_items(
    client: TestClient, people: People, seeded: Seeded
) -> None:
    response = client.get(f"/projects/{SLUG}/items", headers=people.headers(seeded.lead_email))
    assert "<script>alert" not in response.text
    assert "&lt;script&gt;alert(&#39;prompt&#39;)&lt;/script&gt;" in response.text
    leased = re.search(r'data-external-id="b-leased".*?</tr>', response.text, re.S)
    opened = re.search(r'data-external-id="b-open".*?</tr>', response.text, re.S)
    assert leased is not None and opened is not None
    assert "badge-sensitive" in leased.group(0)
    assert "badge-sensitive" not in opened.group(0)


def test_the_detail_shows_judgments_with_annotators_history_and_escaped_text(
    client: TestClient, people: People, seeded: Seeded
) -> None:
    response = client.get(f"/projects/{SLUG}/items/b-split", headers=people.headers(seeded.lead_email))
    assert response.status_code == 200, response.text
    html = response.text
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;rationale&#39;)&lt;/script&gt; both fine" in html
    assert "&lt;script&gt;alert('prompt')&lt;/script&gt; Is this <strong>spam</strong>?" in html  # markdown
    assert "Response 1 (model-yes)" in html and "Response 2 (model-no)" in html
    assert 'class="annotator">ann.one</strong>' in html and "Vendor One" in html
    assert 'class="annotator">ann.two</strong>' in html
    judgment = f"judgment-{seeded.revised_judgment_id}"
    history = re.search(rf'<details class="history" id="{judgment}-history">(.*?)</details>', html, re.S)
    assert history is not None
    assert f'id="{judgment}-revision-1"' in history.group(1)
    assert "first thought" in history.group(1)
    assert "Response 1 (model-yes): spam" in history.group(1)
    assert "Time spent: 4.2 s" in html
    assert "Both bad" in html and "Tie" in html
    assert '<script src="/static/lead.js" defer></script>' in html


def test_the_detail_shows_a_rewrite_beside_its_original_and_blurs_sensitive_items(
    client: TestClient, people: People, seeded: Seeded
) -> None:
    headers = people.headers(seeded.lead_email)
    agree = client.get(f"/projects/{SLUG}/items/b-agree", headers=headers).text
    rewrite = re.search(r'<div class="rewrite">(.*?)</div>\s*</div>\s*</div>', agree, re.S)
    assert rewrite is not None
    assert "Original: Response 1 (model-yes)" in rewrite.group(1)
    assert "<p>Yes.</p>" in rewrite.group(1) and "<p>Yes, certainly.</p>" in rewrite.group(1)
    assert "Preferred: Response 1 (model-yes) · much better" in agree
    assert 'class="sensitive"' not in agree
    leased = client.get(f"/projects/{SLUG}/items/b-leased", headers=headers).text
    assert leased.count('class="sensitive"') == 3  # the prompt and both responses
    assert leased.count('class="lead-reveal"') == 3


def test_the_detail_shows_a_ranking_with_ties_and_a_rubric_score_table(
    client: TestClient, session: Session, people: People, operator: Principal
) -> None:
    headers = people.headers(seed_rubric_and_ranking(session, people, operator))
    ranking = client.get("/projects/rank-b/items/x", headers=headers)
    assert ranking.status_code == 200, ranking.text
    groups = re.search(r'<ol class="ranking">(.*?)</ol>', ranking.text, re.S)
    assert groups is not None
    items = re.findall(r"<li>(.*?)</li>", groups.group(1), re.S)
    assert items[0].strip() == "Response 3 (m2)"
    assert "Response 1 (m0) = Response 2 (m1)" in items[1] and "tied" in items[1]
    rubric = client.get("/projects/rubric-b/items/x", headers=headers)
    assert rubric.status_code == 200, rubric.text
    table = re.search(r'<table class="scores">(.*?)</table>', rubric.text, re.S)
    assert table is not None
    cells = [
        re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
    ]
    assert cells == [
        ["Criterion", "Response 1 (m0)", "Response 2 (m1)", "Response 3 (m2)"],
        ["helpful", "5", "2", "1"],
        ["safe", "yes", "–", "–"],
    ]


def test_annotators_get_403_on_both_pages_even_in_their_project(
    client: TestClient, people: People, seeded: Seeded
) -> None:
    headers = people.headers(seeded.annotator_email)
    for path in (f"/projects/{SLUG}/items", f"/projects/{SLUG}/items/b-split"):
        response = client.get(path, headers=headers)
        assert response.status_code == 403
        assert "ann.two" not in response.text
        assert "first thought" not in response.text


def test_unknown_project_or_item_is_404_and_bad_filters_422(client: TestClient, people: People, seeded: Seeded) -> None:
    headers = people.headers(seeded.lead_email)
    assert client.get("/projects/nope/items", headers=headers).status_code == 404
    assert client.get(f"/projects/{SLUG}/items/missing", headers=headers).status_code == 404
    assert client.get(f"/projects/{SLUG}/items", params={"state": "done"}, headers=headers).status_code == 422
    bad_flag = client.get(f"/projects/{SLUG}/items", params={"has_disagreement": "maybe"}, headers=headers)
    assert bad_flag.status_code == 422


def test_logged_out_visitors_are_sent_to_log_in(client: TestClient) -> None:
    response = client.get(f"/projects/{SLUG}/items", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")
