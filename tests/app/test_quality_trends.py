"""Quality trends across projects: per week and day on judgments with known dates, API, page, downloads."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import UTC, date, datetime
from html import unescape

import krippendorff
import numpy as np
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound, PermissionDenied
from app.principal import Principal
from app.services import quality_trends
from app.services.quality_trends import TrendPoint, Trends
from tests.app.test_quality_gaps import SLUG, SeededGaps, _principal, seed_gaps_project
from tests.conftest import People

API = "/api/v1/quality/trends"


@pytest.fixture
def seeded(session: Session, people: People, operator: Principal) -> SeededGaps:
    return seed_gaps_project(session, people, operator)


def _trends(session: Session, seeded: SeededGaps, **params: str) -> Trends:
    query = quality_trends.trend_query(resamples=200, **params)
    return quality_trends.quality_trends(session, principal=seeded.lead, query=query)


def _points(view: Trends, slug: str = SLUG) -> list[TrendPoint]:
    return next(trend for trend in view.projects if trend.slug == slug).points


def test_weekly_points_hold_volume_agreement_gold_and_speed(session: Session, seeded: SeededGaps) -> None:
    first, second = _points(_trends(session, seeded, projects=SLUG))
    assert (first.period_start, second.period_start) == (date(2026, 11, 2), date(2026, 11, 9))
    assert (first.judgments, first.annotators, first.items, first.agreement_items) == (16, 4, 4, 4)
    reference = krippendorff.alpha(reliability_data=np.asarray([[0, 0, 0, 0]] * 3 + [[1, 1, 1, 1]], float))
    assert first.alpha == pytest.approx(reference)
    assert first.alpha_low is not None and first.alpha is not None and first.alpha_high is not None
    assert first.alpha_low <= first.alpha <= first.alpha_high
    assert first.percent_agreement == pytest.approx(0.5)
    assert (first.gold_accuracy, first.gold_judgments) == (0.75, 4)
    assert first.median_seconds == 25.0
    # Everyone agrees in the second week: alpha is undefined, percent agreement is not.
    assert (second.alpha, second.percent_agreement) == (None, 1.0)
    assert (second.gold_accuracy, second.gold_judgments) == (0.0, 4)


def test_daily_points_and_date_window(session: Session, seeded: SeededGaps) -> None:
    days = _points(_trends(session, seeded, projects=SLUG, period="day"))
    assert [point.period_start for point in days] == [date(2026, 11, 3), date(2026, 11, 10)]
    window = _trends(session, seeded, projects=SLUG, judged_from="2026-11-05")
    assert [point.period_start for point in _points(window)] == [date(2026, 11, 9)]
    assert window.periods == [date(2026, 11, 9)]


def test_every_project_by_default(session: Session, people: People, operator: Principal, seeded: SeededGaps) -> None:
    seed_gaps_project(session, people, operator, slug="gaps-two")
    view = _trends(session, seeded)
    assert {"gaps", "gaps-two"} <= {trend.slug for trend in view.projects}
    assert [p.judgments for p in _points(view, "gaps-two")] == [16, 16]
    assert {"gaps", "gaps-two"} <= set(view.project_choices)


def test_bad_parameters_and_annotators_are_refused(session: Session, people: People, seeded: SeededGaps) -> None:
    with pytest.raises(InvalidInput) as period:
        quality_trends.trend_query(period="month")
    assert period.value.field == "period"
    with pytest.raises(NotFound):
        _trends(session, seeded, projects="nope")
    with pytest.raises(PermissionDenied):
        quality_trends.quality_trends(
            session, principal=_principal(session, people, seeded.emails["rosa"]), query=quality_trends.trend_query()
        )


def test_api_json_equals_page_figures(client: TestClient, people: People, seeded: SeededGaps) -> None:
    headers = people.headers(seeded.lead_email)
    body = client.get(API, params={"projects": SLUG, "resamples": 200}, headers=headers).json()
    points = body["projects"][0]["points"]
    assert [point["judgments"] for point in points] == [16, 16]
    page = client.get("/quality/trends", params={"projects": SLUG}, headers=headers)
    assert page.status_code == 200, page.text
    island = re.search(r'<script type="application/json" id="quality-chart-data">(.*?)</script>', page.text, re.S)
    assert island is not None
    chart = json.loads(unescape(island.group(1)))
    weeks = [int(datetime(2026, 11, day, tzinfo=UTC).timestamp()) for day in (2, 9)]
    assert chart["trend_judgments"] == {"labels": [SLUG], "data": [weeks, [16, 16]]}
    assert chart["trend_gold"]["data"][1] == [0.75, 0.0]
    assert chart["trend_alpha"]["data"][1][1] is None
    assert 'data-chart="trend_alpha"' in page.text and 'id="trend-agreement"' in page.text
    assert 'id="nav-trends" aria-current="page"' in page.text
    assert f"{points[0]['alpha']:.3f}" in page.text


def test_annotator_gets_403(client: TestClient, people: People, seeded: SeededGaps) -> None:
    headers = people.headers(seeded.emails["rosa"])
    assert client.get(API, headers=headers).status_code == 403
    assert client.get("/quality/trends", headers=headers).status_code == 403


def test_downloads_open(client: TestClient, people: People, seeded: SeededGaps) -> None:
    headers = people.headers(seeded.lead_email)
    params = {"projects": SLUG, "resamples": "200"}
    text = client.get(API, params={**params, "format": "csv"}, headers=headers)
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert [(row["project"], row["period_start"], row["judgments"]) for row in rows] == [
        (SLUG, "2026-11-02", "16"),
        (SLUG, "2026-11-09", "16"),
    ]
    parquet = pq.read_table(
        io.BytesIO(client.get(API, params={**params, "format": "parquet"}, headers=headers).content)
    )
    assert parquet.column("gold_accuracy").to_pylist() == [0.75, 0.0]
    xlsx = client.get(API, params={**params, "format": "xlsx"}, headers=headers)
    with zipfile.ZipFile(io.BytesIO(xlsx.content)) as workbook:
        assert "xl/worksheets/sheet1.xml" in workbook.namelist()


def test_a_window_without_judgments_renders_empty(client: TestClient, people: People, seeded: SeededGaps) -> None:
    page = client.get(
        "/quality/trends", params={"judged_from": "2030-01-01"}, headers=people.headers(seeded.lead_email)
    )
    assert page.status_code == 200
    assert 'id="trend-volume"' in page.text and '<td class="date">' not in page.text
