"""The leaderboard and model-vs-human pages over HTTP: tables, chart data, fragments, escaping, refusals."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.principal import Principal
from tests.app.test_leaderboard import SLUG, SeededBoard, add_judge_verdicts, seed_board
from tests.conftest import People

HTMX = {"HX-Request": "true"}


@pytest.fixture
def seeded(session: Session, people: People, operator: Principal) -> SeededBoard:
    board = seed_board(session, people, operator)
    add_judge_verdicts(session, board, operator)
    return board


def test_leaderboard_page_has_ratings_chart_data_matrix_and_downloads(
    client: TestClient, people: People, seeded: SeededBoard
) -> None:
    response = client.get(f"/projects/{SLUG}/leaderboard", headers=people.headers(seeded.lead_email))
    assert response.status_code == 200, response.text
    html = response.text
    island = re.search(r'<script type="application/json" id="leaderboard-chart-data">(.*?)</script>', html, re.S)
    assert island is not None
    data = json.loads(unescape(island.group(1)))
    assert data["boards"][0]["models"] == ["alpha", "beta", "gamma"]
    assert re.findall(r'<tr data-model="(\w+)">', html) == ["alpha", "beta", "gamma"]
    assert 'id="win-rate-0"' in html and 'data-board="0"' in html
    assert f'href="/api/v1/projects/{SLUG}/leaderboard?table=ratings&amp;format=csv"' in html
    assert '<option value="llm/judge-a">' in html
    assert 'id="nav-leaderboard" aria-current="page"' in html


def test_leaderboard_filters_answer_the_fragment_and_judge_boards(
    client: TestClient, people: People, seeded: SeededBoard
) -> None:
    response = client.get(
        f"/projects/{SLUG}/leaderboard",
        params={"judge": "llm/judge-a", "group_by": "category"},
        headers={**people.headers(seeded.lead_email), **HTMX},
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="report"')
    assert 'data-group="chat"' in response.text and 'data-group="code"' in response.text
    assert "source=llm&amp;judge=judge-a" in response.text


def test_judges_page_lists_agreement_and_disagreements(client: TestClient, people: People, seeded: SeededBoard) -> None:
    response = client.get(f"/projects/{SLUG}/quality/judges", headers=people.headers(seeded.lead_email))
    assert response.status_code == 200, response.text
    html = response.text
    assert 'data-judge="judge-a"' in html and 'data-judge="scorer"' in html
    assert re.findall(r'<tr class="disagreement" data-item="([\w-]+)">', html)[:3] == ["lb-1", "lb-2", "lb-6"]
    assert f'href="/projects/{SLUG}/items/lb-2"' in html
    assert 'id="download-examples"' in html and "format=jsonl" in html
    assert 'id="nav-judges" aria-current="page"' in html


def test_annotators_cannot_open_the_pages(client: TestClient, people: People, seeded: SeededBoard) -> None:
    for path in (f"/projects/{SLUG}/leaderboard", f"/projects/{SLUG}/quality/judges"):
        assert client.get(path, headers=people.headers(seeded.annotator_email)).status_code == 403
