"""Model vs human: imported judge verdicts against the human majority on a project with known votes."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fastapi.testclient import TestClient
from sklearn.metrics import cohen_kappa_score
from sqlalchemy.orm import Session
from statsmodels.stats.proportion import proportion_confint

from app.errors import InvalidInput, PermissionDenied
from app.principal import Principal
from app.services import model_vs_human
from tests.app.test_leaderboard import SLUG, SeededBoard, add_judge_verdicts, principal_of, seed_board
from tests.conftest import People

# Human majorities (three votes each, both bad counted as a tie): lb-1 second, every other item first.
# judge-a: lb-0 first, lb-1 tie, lb-2 second, lb-3..5 first, lb-6 second.
JUDGE = ["first", "tie", "second", "first", "first", "first", "second"]
HUMAN = ["first", "second", "first", "first", "first", "first", "first"]


@pytest.fixture
def seeded(session: Session, people: People, operator: Principal) -> SeededBoard:
    board = seed_board(session, people, operator)
    add_judge_verdicts(session, board, operator)
    return board


def _query(**filters: object) -> model_vs_human.JudgesQuery:
    return model_vs_human.judges_query(**filters)  # type: ignore[arg-type]


def test_judge_agreement_kappa_and_confusion_match_the_known_verdicts(session: Session, seeded: SeededBoard) -> None:
    view = model_vs_human.judges_report(session, principal=seeded.lead, slug=SLUG, query=_query())
    reports = {(report.source, report.judge): report for report in view.judges}
    report = reports[("llm", "judge-a")]
    assert (report.verdicts, report.compared, report.no_human, report.split, report.unsupported) == (7, 7, 0, 0, 0)
    overall = report.overall
    assert (overall.items, overall.agreeing) == (7, 4)
    assert overall.agreement == pytest.approx(4 / 7)
    low, high = proportion_confint(4, 7, alpha=0.05, method="wilson")
    assert (overall.low, overall.high) == pytest.approx((low, high))
    assert overall.kappa == pytest.approx(cohen_kappa_score(JUDGE, HUMAN))
    # judge rows x human columns: first, second, tie
    assert report.confusion == [[4, 0, 0], [2, 0, 0], [0, 1, 0]]
    assert [(row.group, row.items, row.agreeing) for row in report.by_category] == [("chat", 3, 2), ("code", 4, 2)]
    assert [(row.group, row.items, row.agreeing) for row in report.by_market] == [("TH", 2, 1), ("US", 5, 3)]
    disagreements = {entry.external_id: entry for entry in report.disagreements}
    assert sorted(disagreements) == ["lb-1", "lb-2", "lb-6"]
    assert disagreements["lb-2"].votes == {"first": 2, "second": 0, "tie": 0, "both_bad": 1}
    assert (disagreements["lb-2"].judge_verdict, disagreements["lb-2"].human_verdict) == ("second", "first")
    assert report.disagreement_count == 3


def test_scores_compare_through_the_higher_overall_score(session: Session, seeded: SeededBoard) -> None:
    view = model_vs_human.judges_report(
        session, principal=seeded.lead, slug=SLUG, query=_query(source="uf", judge="scorer")
    )
    [report] = view.judges
    assert (report.compared, report.overall.agreeing) == (2, 1)
    [disagreement] = report.disagreements
    assert (disagreement.external_id, disagreement.judge_verdict, disagreement.human_verdict) == (
        "lb-1",
        "tie",
        "second",
    )


def test_min_judgments_and_filters_narrow_the_items(session: Session, seeded: SeededBoard) -> None:
    view = model_vs_human.judges_report(
        session, principal=seeded.lead, slug=SLUG, query=_query(min_judgments=4, source="llm", judge="judge-a")
    )
    [report] = view.judges
    assert (report.compared, report.no_human) == (0, 7)
    assert report.overall.agreement is None
    view = model_vs_human.judges_report(
        session, principal=seeded.lead, slug=SLUG, query=_query(category="chat", source="llm", judge="judge-a")
    )
    assert view.judges[0].overall.items == 3


def test_bad_input_and_annotators_are_refused(session: Session, people: People, seeded: SeededBoard) -> None:
    with pytest.raises(InvalidInput) as raised:
        _query(min_judgments=0)
    assert raised.value.field == "min_judgments"
    with pytest.raises(InvalidInput):
        model_vs_human.judges_report(session, principal=seeded.lead, slug=SLUG, query=_query(source="a", judge="b"))
    annotator = principal_of(session, people, seeded.annotator_email)
    with pytest.raises(PermissionDenied):
        model_vs_human.judges_report(session, principal=annotator, slug=SLUG, query=_query())


def test_api_downloads_tables_and_jsonl_examples(client: TestClient, people: People, seeded: SeededBoard) -> None:
    base = f"/api/v1/projects/{SLUG}/quality/judges"
    headers = people.headers(seeded.lead_email)
    body = client.get(base, headers=headers).json()
    assert {judge["judge"] for judge in body["judges"]} == {"judge-a", "scorer"}
    response = client.get(f"{base}?format=csv&table=disagreements&source=llm&judge=judge-a", headers=headers)
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert sorted(row["external_id"] for row in rows) == ["lb-1", "lb-2", "lb-6"]
    assert {row["votes_first"] for row in rows if row["external_id"] == "lb-2"} == {"2"}
    examples = client.get(f"{base}?format=jsonl&source=llm&judge=judge-a", headers=headers)
    assert examples.status_code == 200
    lines = [json.loads(line) for line in examples.text.splitlines()]
    assert [line["external_id"] for line in lines] == ["lb-1", "lb-2", "lb-6"]
    first = lines[0]
    assert first["prompt"] == [{"role": "user", "content": "Prompt of lb-1?"}]
    assert [response["model"] for response in first["responses"]] == ["beta", "alpha"]
    assert (first["judge_verdict"], first["human_verdict"], first["votes"]["second"]) == ("tie", "second", 2)
    confusion = client.get(f"{base}?format=csv&table=confusion", headers=headers)
    assert confusion.status_code == 200 and "human_first" in confusion.text
    assert client.get(base, headers=people.headers(seeded.annotator_email)).status_code == 403
    assert client.get(f"{base}?format=csv&table=nope", headers=headers).status_code == 422
