"""The knowledge-gap matrix on a hand-built project: cell figures, gold accuracy, worst-first order, min-n, links."""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session
from statsmodels.stats.proportion import proportion_confint

from app.errors import InvalidInput, PermissionDenied
from app.principal import Principal
from app.services import accounts, annotation, importing, knowledge_gaps, projects
from app.services.knowledge_gaps import GapCell, GapMatrix
from app.services.verdicts import VerdictInput
from preference_store.models import Assignment, GoldAnswer, Role
from preference_store.projects import get_project_by_slug, item_ids_by_external_id
from preference_store.quality_gaps import JudgmentColumns
from preference_store.users import get_or_create_team
from tests.conftest import People

SLUG = "gaps"
# Import (and serving) order; spam items are judged in the week of 2026-11-02, news a week later.
EXTERNAL_IDS = ["spam-us-0", "spam-us-1", "spam-th-0", "spam-th-1", "news-us-0", "news-us-1", "news-th-0", "news-th-1"]
SPAM_DAY = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
NEWS_DAY = datetime(2026, 11, 10, 10, 0, tzinfo=UTC)
TEAMS = {"rosa": "Red", "rui": "Red", "bea": "Blue", "ben": "Blue"}
SECONDS = {"rosa": 10, "rui": 20, "bea": 30, "ben": 40}
GOLD = {"spam-us-0": ("p0", []), "news-th-0": ("p1", ["tie"])}


@dataclass(frozen=True, slots=True)
class SeededGaps:
    """8 pairwise items (spam/news x US/TH, two each), every one judged by all four annotators.

    Response 1 (position 0) is always shown as A. rosa, rui (Red) and bea (Blue) always choose
    it; ben (Blue) chooses response 2 on spam items (and labels it `gambling`), response 1 on
    news. Every item's majority is response 1 (3 to 1 on spam, 4 to 0 on news). Gold:
    spam-us-0 expects response 1; news-th-0 expects response 2 (or a tie), which nobody chose.
    """

    lead_email: str
    emails: dict[str, str]
    lead: Principal


def _principal(session: Session, people: People, email: str) -> Principal:
    principal = accounts.principal_for_api_token(session, token=people.tokens[email], cache=accounts.TokenCache(0))
    assert principal is not None
    return principal


def seed_gaps_project(
    session: Session, people: People, operator: Principal, password: str | None = None, slug: str = SLUG
) -> SeededGaps:
    get_or_create_team(session, name="Red", is_vendor=True)
    get_or_create_team(session, name="Blue", is_vendor=True)
    lead_email = f"{slug}.lead@example.org"
    if lead_email not in people.tokens:
        people.make(lead_email, Role.LEAD, password=password)
    emails = {}
    for name, team in TEAMS.items():
        email = f"{name}@example.org"
        emails[name] = email if email in people.tokens else people.make(email, password=password, team=team)
    projects.create_project(
        session,
        principal=operator,
        slug=slug,
        name=slug.title(),
        overlap=4,
        options={"taxonomy": [{"name": "gambling", "severities": ["minor", "severe"]}]},
    )
    rows = [
        {
            "external_id": external_id,
            "prompt": f"Question {external_id}?",
            "responses": [{"model": "one", "content": "First answer."}, {"model": "two", "content": "Second."}],
            "metadata": {"market": external_id.split("-")[1].upper(), "category": external_id.split("-")[0]},
        }
        for external_id in EXTERNAL_IDS
    ]
    importing.import_items(session, principal=operator, slug=slug, rows=list(enumerate(rows, start=1)))
    projects.add_members(session, principal=operator, slug=slug, emails=list(emails.values()))
    for name, email in emails.items():
        who = _principal(session, people, email)
        for external_id in EXTERNAL_IDS:
            spam = external_id.startswith("spam")
            now = SPAM_DAY if spam else NEWS_DAY
            task = annotation.next_task(session, principal=who, slug=slug, now=now)
            assert task is not None and task.external_id == external_id
            session.execute(update(Assignment).where(Assignment.id == task.assignment_id).values(shown_order=[0, 1]))
            odd_one = name == "ben" and spam
            annotation.submit_judgment(
                session,
                principal=who,
                assignment_id=task.assignment_id,
                submitted=VerdictInput(
                    choice="B" if odd_one else "A", labels={"B": ["gambling:minor"]} if odd_one else {}
                ),
                time_spent_ms=SECONDS[name] * 1000,
                now=now,
            )
    project = get_project_by_slug(session, slug=slug)
    assert project is not None
    item_ids = item_ids_by_external_id(session, project_id=project.id, external_ids=list(GOLD))
    for external_id, (verdict, accepted) in GOLD.items():
        session.add(
            GoldAnswer(
                item_id=item_ids[external_id],
                project_id=project.id,
                verdict=verdict,
                accepted_verdicts=accepted,
                payload={},
            )
        )
    session.flush()
    return SeededGaps(lead_email, emails, _principal(session, people, lead_email))


@pytest.fixture
def seeded(session: Session, people: People, operator: Principal) -> SeededGaps:
    return seed_gaps_project(session, people, operator)


def _wilson(hits: int, total: int) -> tuple[float, float]:
    low, high = proportion_confint(hits, total, alpha=0.05, method="wilson")
    return float(low), float(high)


def _cell(view: GapMatrix, team: str, column: str, market: str | None = None) -> GapCell:
    if market is None:
        found = view.matrix[view.teams.index(team)][view.columns.index(column)]
        assert found is not None
        return found
    return next(c for c in view.cells if (c.team, c.column, c.market) == (team, column, market))


def _gaps(session: Session, seeded: SeededGaps, **params: str) -> GapMatrix:
    return knowledge_gaps.knowledge_gaps(
        session, principal=seeded.lead, slug=SLUG, query=knowledge_gaps.gap_query(**params)
    )


def test_cells_hold_agreement_and_gold_accuracy_with_wilson_intervals(session: Session, seeded: SeededGaps) -> None:
    view = _gaps(session, seeded)
    assert view.judgments == 32 and view.has_gold
    assert view.teams == ["Blue", "Red"] and view.columns == ["news", "spam"]
    blue_spam_us = _cell(view, "Blue", "spam", "US")
    assert (blue_spam_us.judgments, blue_spam_us.items, blue_spam_us.agreement_judgments) == (4, 2, 4)
    assert blue_spam_us.agreement == 0.5
    assert (blue_spam_us.agreement_low, blue_spam_us.agreement_high) == pytest.approx(_wilson(2, 4))
    assert (blue_spam_us.gold_accuracy, blue_spam_us.gold_judgments) == (0.5, 2)
    assert (blue_spam_us.gold_low, blue_spam_us.gold_high) == pytest.approx(_wilson(1, 2))
    assert sorted(blue_spam_us.examples) == ["spam-us-0", "spam-us-1"]
    red_spam_us = _cell(view, "Red", "spam", "US")
    assert (red_spam_us.agreement, red_spam_us.gold_accuracy, red_spam_us.misses) == (1.0, 1.0, 0)
    red_news_th = _cell(view, "Red", "news", "TH")
    assert (red_news_th.agreement, red_news_th.gold_accuracy, red_news_th.gold_judgments) == (1.0, 0.0, 2)
    assert red_news_th.examples == ["news-th-0"]
    assert _cell(view, "Red", "news", "US").gold_accuracy is None
    pooled = _cell(view, "Blue", "spam")
    assert (pooled.market, pooled.judgments, pooled.items, pooled.agreement) == (None, 8, 4, 0.5)
    assert (pooled.agreement_low, pooled.agreement_high) == pytest.approx(_wilson(4, 8))


def test_cells_come_worst_first_and_small_cells_are_unranked(session: Session, seeded: SeededGaps) -> None:
    view = _gaps(session, seeded, min_judgments="4")
    order = [(c.team, c.column, c.market) for c in view.cells]
    assert order[:2] == [("Blue", "spam", "TH"), ("Blue", "spam", "US")]
    assert len(order) == 8 and all(cell.ranked for cell in view.cells)
    assert order[2:] == sorted(order[2:])
    by_gold = _gaps(session, seeded, min_judgments="2", rank_by="gold")
    ranked = [(c.team, c.column, c.market, c.gold_accuracy) for c in by_gold.cells if c.ranked]
    assert ranked == [
        ("Blue", "news", "TH", 0.0),
        ("Red", "news", "TH", 0.0),
        ("Blue", "spam", "US", 0.5),
        ("Red", "spam", "US", 1.0),
    ]
    assert [c.gold_judgments for c in by_gold.cells[4:]] == [0, 0, 0, 0]
    unranked = _gaps(session, seeded, min_judgments="5")
    assert not any(cell.ranked for cell in unranked.cells)
    assert all(cell.ranked for row in unranked.matrix for cell in row if cell is not None)


def test_filters_keep_the_majority_of_every_team(session: Session, seeded: SeededGaps) -> None:
    view = _gaps(session, seeded, teams="Blue", market="US")
    assert view.teams == ["Blue"]
    assert {(c.column, c.market) for c in view.cells} == {("spam", "US"), ("news", "US")}
    assert _cell(view, "Blue", "spam").agreement == 0.5


def test_policy_label_columns_group_items_by_the_labels_put_on_them(session: Session, seeded: SeededGaps) -> None:
    view = _gaps(session, seeded, columns="label")
    assert view.columns == ["(none)", "gambling"]
    gambling = _cell(view, "Red", "gambling")
    assert (gambling.judgments, gambling.items, gambling.agreement) == (8, 4, 1.0)
    assert _cell(view, "Blue", "gambling").agreement == 0.5
    assert _cell(view, "Blue", "(none)").agreement == 1.0


def test_invalid_parameters_name_the_field(session: Session, seeded: SeededGaps) -> None:
    for params, field in (
        ({"columns": "team"}, "columns"),
        ({"rank_by": "speed"}, "rank_by"),
        ({"min_judgments": "0"}, "min_judgments"),
        ({"min_judgments": "many"}, "min_judgments"),
        ({"judged_from": "soon"}, "judged_from"),
    ):
        with pytest.raises(InvalidInput) as raised:
            knowledge_gaps.gap_query(**params)
        assert raised.value.field == field
    with pytest.raises(InvalidInput) as unknown:
        _gaps(session, seeded, teams="Green")
    assert unknown.value.field == "teams"


def test_annotators_may_not_read_the_gaps(session: Session, people: People, seeded: SeededGaps) -> None:
    with pytest.raises(PermissionDenied):
        knowledge_gaps.knowledge_gaps(
            session,
            principal=_principal(session, people, seeded.emails["ben"]),
            slug=SLUG,
            query=knowledge_gaps.gap_query(),
        )


# --- API and page --------------------------------------------------------------------------

API = f"/api/v1/projects/{SLUG}/quality/gaps"


def test_api_json_equals_the_page_figures(client: TestClient, people: People, seeded: SeededGaps) -> None:
    headers = people.headers(seeded.lead_email)
    body = client.get(API, params={"min_judgments": "4"}, headers=headers).json()
    assert [(c["team"], c["column"], c["market"]) for c in body["cells"][:2]] == [
        ("Blue", "spam", "TH"),
        ("Blue", "spam", "US"),
    ]
    page = client.get(f"/projects/{SLUG}/quality/gaps", params={"min_judgments": "4"}, headers=headers)
    assert page.status_code == 200, page.text
    rows = page.text.split('class="gap-row')[1:]
    for cell, row in zip(body["cells"], rows, strict=True):
        assert f'data-team="{cell["team"]}" data-column="{cell["column"]}" data-market="{cell["market"]}"' in row
        assert f"{cell['agreement'] * 100:.1f}" in row
    assert 'id="gap-matrix"' in page.text and 'id="nav-gaps" aria-current="page"' in page.text
    assert 'href="/projects/gaps/items/spam-us-0" class="cell-item"' in page.text
    assert 'href="/projects/gaps/items?category=spam&amp;market=US&amp;has_disagreement=true"' in page.text
    assert "background-color: hsl(60, 70%, 86%)" in page.text  # 50 %, half-way from red to green
    assert f'href="{API}?min_judgments=4&amp;format=csv"' in page.text


def test_page_fragment_for_htmx(client: TestClient, people: People, seeded: SeededGaps) -> None:
    response = client.get(
        f"/projects/{SLUG}/quality/gaps",
        params={"columns": "label"},
        headers={**people.headers(seeded.lead_email), "HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="report"')
    assert "gambling" in response.text


def test_annotator_gets_403_from_api_and_page(client: TestClient, people: People, seeded: SeededGaps) -> None:
    headers = people.headers(seeded.emails["rosa"])
    assert client.get(API, headers=headers).json()["error"]["code"] == "lead_role_required"
    assert client.get(API, headers=headers).status_code == 403
    assert client.get(f"/projects/{SLUG}/quality/gaps", headers=headers).status_code == 403


def test_bad_parameter_answers_422_naming_it(client: TestClient, people: People, seeded: SeededGaps) -> None:
    response = client.get(API, params={"min_judgments": "-3"}, headers=people.headers(seeded.lead_email))
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "min_judgments"


def test_downloads_open(client: TestClient, people: People, seeded: SeededGaps) -> None:
    headers = people.headers(seeded.lead_email)
    text = client.get(API, params={"format": "csv", "min_judgments": "4"}, headers=headers)
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert (rows[0]["team"], rows[0]["category"], rows[0]["market"], rows[0]["agreement"]) == (
        "Blue",
        "spam",
        "TH",
        "0.5",
    )
    assert len(rows) == 8
    suffixed = client.get(f"{API}.csv", params={"min_judgments": "4"}, headers=headers)
    assert suffixed.text == text.text
    parquet = client.get(f"{API}.parquet", headers=headers)
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == 8 and "gold_accuracy" in table.column_names
    xlsx = client.get(API, params={"format": "xlsx"}, headers=headers)
    with zipfile.ZipFile(io.BytesIO(xlsx.content)) as workbook:
        assert "xl/worksheets/sheet1.xml" in workbook.namelist()
    assert client.get(f"{API}.pdf", headers=headers).status_code == 422


def test_no_matching_judgments_give_an_empty_matrix(client: TestClient, people: People, seeded: SeededGaps) -> None:
    params = {"judged_from": "2030-01-01", "columns": "label"}
    body = client.get(API, params=params, headers=people.headers(seeded.lead_email)).json()
    assert (body["judgments"], body["teams"], body["cells"], body["has_gold"]) == (0, [], [], False)
    page = client.get(f"/projects/{SLUG}/quality/gaps", params=params, headers=people.headers(seeded.lead_email))
    assert page.status_code == 200 and 'id="no-cells"' in page.text and 'id="no-gold"' in page.text


def test_judge_counts_single_majorities_on_items_judged_twice() -> None:
    columns = JudgmentColumns()
    rows = [
        (1, "p0|s:aa", None),  # item 1: p0 twice, p1 once -> majority p0 (rubric overall choice)
        (1, "p0|s:bb", None),
        (1, "p1|s:aa", None),
        (2, "s:aa", ("s:aa",)),  # item 2: two different score sets -> tied, not counted
        (2, "s:bb", ("s:aa",)),
        (3, "0>1=2", ("1>0>2", "0>1=2")),  # item 3: judged once -> not counted; right on gold
    ]
    for item_id, verdict, gold in rows:
        columns.item_id.append(item_id)
        columns.verdict.append(verdict)
        columns.gold.append(gold)
    judged = knowledge_gaps.judge(columns)
    assert judged.counted.tolist() == [True, True, True, False, False, False]
    assert judged.agrees.tolist() == [True, True, False, False, False, False]
    assert judged.on_gold.tolist() == [False, False, False, True, True, True]
    assert judged.correct.tolist() == [False, False, False, True, False, True]
