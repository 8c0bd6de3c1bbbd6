"""The quality pages over HTTP: dashboard with chart data and tables, scorecards with flags, teams, refusals."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.principal import Principal
from tests.app.test_quality_reports import EXTERNAL_IDS, SLUG, SeededQuality, seed_quality_project
from tests.conftest import People

HTMX = {"HX-Request": "true"}


@pytest.fixture
def seeded(session: Session, people: People, operator: Principal) -> SeededQuality:
    return seed_quality_project(session, people, operator)


def _chart_data(html: str) -> dict[str, list[list[float | None]]]:
    island = re.search(r'<script type="application/json" id="quality-chart-data">(.*?)</script>', html, re.S)
    assert island is not None
    data: dict[str, list[list[float | None]]] = json.loads(unescape(island.group(1)))
    return data


def test_dashboard_page_has_charts_tables_filters_and_downloads(
    client: TestClient, people: People, seeded: SeededQuality
) -> None:
    response = client.get(f"/projects/{SLUG}/quality", headers=people.headers(seeded.lead_email))
    assert response.status_code == 200, response.text
    html = response.text
    assert '<script src="/static/vendor/uplot/uPlot.iife.min.js" defer></script>' in html
    assert 'data-chart="agreement"' in html and 'data-chart="volume"' in html
    data = _chart_data(html)
    assert data["volume"][1] == [32, 32]
    assert len(data["agreement"][0]) == 2
    assert re.findall(r'<select name="teams" id="filter-teams">.*?</select>', html, re.S)
    assert '<option value="Vendor One">' in html and '<option value="Vendor Two">' in html
    assert f'href="/api/v1/projects/{SLUG}/quality/dashboard?table=volume&amp;format=csv"' in html
    assert 'id="agreement"' in html and 'id="volume"' in html and 'id="labels"' in html
    assert 'href="/projects/quality/quality/annotators"' in html


def test_dashboard_filters_return_the_report_fragment_for_htmx(
    client: TestClient, people: People, seeded: SeededQuality
) -> None:
    response = client.get(
        f"/projects/{SLUG}/quality",
        params={"teams": "Vendor Two", "group_by": "team"},
        headers={**people.headers(seeded.lead_email), **HTMX},
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="report"')
    assert "<html" not in response.text
    assert "32 judgments" in response.text
    assert re.findall(r'<tr data-group="([^"]+)">', response.text) == ["Vendor Two"]
    assert "teams=Vendor+Two&amp;group_by=team&amp;table=agreement&amp;format=xlsx" in response.text
    assert response.headers["vary"] == "HX-Request"


def test_annotator_page_lists_flags_with_links_to_the_items(
    client: TestClient, people: People, seeded: SeededQuality
) -> None:
    response = client.get(f"/projects/{SLUG}/quality/annotators", headers=people.headers(seeded.lead_email))
    assert response.status_code == 200, response.text
    rows = re.findall(r'<tr class="scorecard( flagged)?" data-annotator="([^"]+)">', response.text)
    # Flagged annotators first, then by name.
    assert rows == [(" flagged", "carol"), (" flagged", "dave"), ("", "alice"), ("", "bob")]
    assert 'data-flag="position_bias"' in response.text and 'data-flag="too_fast"' in response.text
    for external_id in EXTERNAL_IDS:
        assert f'href="/projects/{SLUG}/items/{external_id}" class="flag-item"' in response.text
    assert f'href="/api/v1/projects/{SLUG}/quality/annotators?format=parquet"' in response.text


def test_teams_page_shows_scorecards_and_the_benchmark(
    client: TestClient, people: People, seeded: SeededQuality
) -> None:
    response = client.get(
        f"/projects/{SLUG}/quality/teams",
        params={"first": "Vendor One", "second": "Vendor Two"},
        headers=people.headers(seeded.lead_email),
    )
    assert response.status_code == 200, response.text
    assert re.findall(r'<tr class="scorecard[^"]*" data-team="([^"]+)">', response.text) == ["Vendor One", "Vendor Two"]
    assert 'id="benchmark"' in response.text and 'id="between"' in response.text
    assert "16 items judged by both teams" in response.text
    assert "93.8" in response.text and "75.0" in response.text


def test_annotators_are_refused_the_quality_pages(client: TestClient, people: People, seeded: SeededQuality) -> None:
    for path in ("", "/annotators", "/teams"):
        response = client.get(f"/projects/{SLUG}/quality{path}", headers=people.headers(seeded.emails["alice"]))
        assert response.status_code == 403


def test_invalid_filter_shows_an_error_page(client: TestClient, people: People, seeded: SeededQuality) -> None:
    response = client.get(
        f"/projects/{SLUG}/quality", params={"judged_from": "soon"}, headers=people.headers(seeded.lead_email)
    )
    assert response.status_code == 422
    assert "judged_from is a date" in response.text
