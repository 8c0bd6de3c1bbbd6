"""The rubric and ranking task forms over HTTP: field names and values, stored payloads, 422s."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.services.verdicts import shown_labels
from preference_store.models import Assignment, Judgment, Role
from tests.browser.seeding import RANKING_ITEMS, RUBRIC_ITEMS, RUBRIC_OPTIONS, seed_kind_project
from tests.conftest import People

PASSWORD = "correct horse battery"


class Inputs(HTMLParser):
    """Every <input> of a page, as attribute dicts in document order."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[dict[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "input":
            self.found.append(dict(attrs))

    def values(self, name: str) -> list[str | None]:
        return [attrs.get("value") for attrs in self.found if attrs.get("name") == name]

    def named(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for attrs in self.found if attrs.get("name") == name]


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no csrf field"
    return match.group(1)


def _log_in(client: TestClient, email: str) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": _csrf(page.text), "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def _open_task(client: TestClient, slug: str) -> tuple[str, int]:
    page = client.get(f"/projects/{slug}/annotate")
    assert page.status_code == 200, page.text
    assignment = re.search(r'data-assignment="(\d+)"', page.text)
    assert assignment, page.text
    return page.text, int(assignment.group(1))


def _post(client: TestClient, slug: str, assignment: int, page: str, data: dict[str, str]) -> str:
    response = client.post(
        f"/projects/{slug}/annotate/{assignment}",
        data={"csrf_token": _csrf(page), "time_spent_ms": "900", **data},
        headers={"HX-Request": "true"},
    )
    return f"{response.status_code}\n{response.text}"


def _shown_order(session: Session, assignment: int) -> list[int]:
    return list(session.scalars(select(Assignment.shown_order).where(Assignment.id == assignment)).one())


@pytest.fixture
def rubric_annotator(session: Session, people: People) -> str:
    email = people.make("rubric-ann@example.org", Role.ANNOTATOR, password=PASSWORD)
    options = {**RUBRIC_OPTIONS, "rubric_overall_choice": True}
    seed_kind_project(session, slug="rubric-form", kind="rubric", items=RUBRIC_ITEMS, member=email, options=options)
    return email


@pytest.fixture
def ranking_annotator(session: Session, people: People) -> str:
    email = people.make("ranking-ann@example.org", Role.ANNOTATOR, password=PASSWORD)
    seed_kind_project(session, slug="ranking-form", kind="ranking", items=RANKING_ITEMS, member=email)
    return email


def test_rubric_form_has_a_radio_group_per_response_and_criterion(client: TestClient, rubric_annotator: str) -> None:
    _log_in(client, rubric_annotator)
    page, _ = _open_task(client, "rubric-form")
    inputs = Inputs(page)
    for label in ("A", "B"):
        assert inputs.values(f"score.{label}.Helpfulness") == ["1", "2", "3", "4", "5"]
        assert inputs.values(f"score.{label}.Safe") == ["no", "yes"]
        assert inputs.values(f"score.{label}.Tone") == ["cold", "neutral", "warm"]
        assert all(attrs["type"] == "radio" for attrs in inputs.named(f"score.{label}.Tone"))
        assert all("required" in attrs for attrs in inputs.named(f"score.{label}.Safe"))
        assert not any("required" in attrs for attrs in inputs.named(f"score.{label}.Tone"))
        # Likert digits are the values; other scales count from 1.
        assert [a["data-digit"] for a in inputs.named(f"score.{label}.Helpfulness")] == ["1", "2", "3", "4", "5"]
        assert [a["data-digit"] for a in inputs.named(f"score.{label}.Safe")] == ["1", "2"]
    assert inputs.values("choice") == ["A", "B", "tie", "both_bad"]
    assert "complete" in page  # the anchor of 5 is shown beside it
    assert 'id="kind-help"' in page


def test_rubric_form_post_stores_scores_by_position(
    client: TestClient, rubric_annotator: str, session: Session
) -> None:
    _log_in(client, rubric_annotator)
    page, assignment = _open_task(client, "rubric-form")
    answer = _post(
        client,
        "rubric-form",
        assignment,
        page,
        {
            "score.A.Helpfulness": "4",
            "score.A.Safe": "yes",
            "score.A.Tone": "warm",
            "score.B.Helpfulness": "2",
            "score.B.Safe": "no",
            "choice": "A",
        },
    )
    assert answer.startswith("200"), answer
    payload = session.scalars(select(Judgment.payload).where(Judgment.assignment_id == assignment)).one()
    position = dict(zip(shown_labels(2), _shown_order(session, assignment), strict=True))
    assert payload["scores"] == {
        str(position["A"]): {"Helpfulness": 4, "Safe": True, "Tone": "warm"},
        str(position["B"]): {"Helpfulness": 2, "Safe": False},
    }
    assert payload["choice"] == "A"
    assert payload["preferred_position"] == position["A"]


def test_rubric_missing_required_score_is_422_naming_the_field(
    client: TestClient, rubric_annotator: str, session: Session
) -> None:
    _log_in(client, rubric_annotator)
    page, assignment = _open_task(client, "rubric-form")
    answer = _post(
        client,
        "rubric-form",
        assignment,
        page,
        {"score.A.Helpfulness": "4", "score.A.Safe": "yes", "score.B.Helpfulness": "2", "choice": "tie"},
    )
    assert answer.startswith("422"), answer[:300]
    assert re.search(r'data-field="score\.B\.Safe"\s+aria-invalid="true"', answer)
    assert not re.search(r'data-field="score\.A\.Safe"\s+aria-invalid', answer)
    kept = Inputs(answer)
    assert [a["value"] for a in kept.named("score.A.Helpfulness") if "checked" in a] == ["4"]
    assert [a["value"] for a in kept.named("choice") if "checked" in a] == ["tie"]
    assert session.scalars(select(Judgment.id).where(Judgment.assignment_id == assignment)).first() is None


def test_ranking_form_has_the_ranking_field_and_a_chip_per_response(client: TestClient, ranking_annotator: str) -> None:
    _log_in(client, ranking_annotator)
    page, _ = _open_task(client, "ranking-form")
    inputs = Inputs(page)
    assert [(a["type"], a["value"]) for a in inputs.named("ranking")] == [("hidden", "")]
    assert [(a["type"], a["value"]) for a in inputs.named("all_bad")] == [("checkbox", "1")]
    assert re.findall(r'class="rank-chip" draggable="true" data-label="([A-Z])"', page) == ["A", "B", "C", "D"]
    assert 'data-labels="ABCD"' in page


def test_ranking_form_post_stores_groups_by_position(
    client: TestClient, ranking_annotator: str, session: Session
) -> None:
    _log_in(client, ranking_annotator)
    page, assignment = _open_task(client, "ranking-form")
    answer = _post(client, "ranking-form", assignment, page, {"ranking": "C;A,D;B"})
    assert answer.startswith("200"), answer
    payload = session.scalars(select(Judgment.payload).where(Judgment.assignment_id == assignment)).one()
    position = dict(zip(shown_labels(4), _shown_order(session, assignment), strict=True))
    assert payload["ranking"] == [[position["C"]], sorted([position["A"], position["D"]]), [position["B"]]]
    assert payload["all_bad"] is False


def test_ranking_all_bad_alone_is_a_verdict(client: TestClient, ranking_annotator: str, session: Session) -> None:
    _log_in(client, ranking_annotator)
    page, assignment = _open_task(client, "ranking-form")
    answer = _post(client, "ranking-form", assignment, page, {"ranking": "", "all_bad": "1"})
    assert answer.startswith("200"), answer
    payload = session.scalars(select(Judgment.payload).where(Judgment.assignment_id == assignment)).one()
    assert payload["ranking"] == []
    assert payload["all_bad"] is True


def test_ranking_missing_a_response_is_422_keeping_the_order(
    client: TestClient, ranking_annotator: str, session: Session
) -> None:
    _log_in(client, ranking_annotator)
    page, assignment = _open_task(client, "ranking-form")
    answer = _post(client, "ranking-form", assignment, page, {"ranking": "B;A,C"})
    assert answer.startswith("422"), answer[:300]
    assert re.search(r'class="ranking-board invalid"\s+aria-invalid="true"', answer)
    assert "Rank every response, or mark them all bad." in answer  # in the annotator's language
    assert Inputs(answer).values("ranking") == ["B;A,C"]
    assert session.scalars(select(Judgment.id).where(Judgment.assignment_id == assignment)).first() is None
