"""The model leaderboard on projects judged through the services with known votes."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound, PermissionDenied
from app.principal import Principal
from app.quality.bradley_terry import bradley_terry
from app.services import accounts, annotation, importing, leaderboard, projects
from app.services.leaderboard import human_pairs
from app.services.verdicts import VerdictInput
from preference_store import browse
from preference_store.external_verdicts import NewVerdict, upsert_verdicts
from preference_store.models import Assignment, ProjectKind, Role
from tests.conftest import People

SLUG = "board"
RANKED = "board-ranked"
ANNOTATORS = ("ann1", "ann2", "ann3")
# external id: (model at position 0, model at position 1, category, market, one verdict per annotator)
ITEMS: dict[str, tuple[str, str, str, str, tuple[str, str, str]]] = {
    "lb-0": ("alpha", "beta", "code", "US", ("p0", "p0", "p1")),
    "lb-1": ("beta", "alpha", "code", "US", ("p1", "tie", "p1")),
    "lb-2": ("alpha", "gamma", "chat", "TH", ("p0", "both_bad", "p0")),
    "lb-3": ("gamma", "beta", "chat", "TH", ("p0", "p1", "p0")),
    "lb-4": ("beta", "gamma", "code", "US", ("p0", "p0", "p0")),
    "lb-5": ("alpha", "", "chat", "US", ("p0", "p0", "p1")),
    "lb-6": ("alpha", "alpha", "code", "US", ("p0", "p1", "p0")),
}
CHOICES = {"p0": "A", "p1": "B", "tie": "tie", "both_bad": "both_bad"}
RANKINGS = {"r-0": [["A"], ["B", "C"]], "r-1": [["C"], ["B"], ["A"]]}


@dataclass(frozen=True, slots=True)
class SeededBoard:
    lead: Principal
    lead_email: str
    annotator_email: str
    item_ids: dict[str, int]


def principal_of(session: Session, people: People, email: str) -> Principal:
    principal = accounts.principal_for_api_token(session, token=people.tokens[email], cache=accounts.TokenCache(0))
    assert principal is not None
    return principal


def _item(external_id: str, models: list[str], category: str, market: str) -> dict[str, object]:
    responses = [
        {"model": model, "content": f"Answer {index} to {external_id}."} if model else {"content": f"Unnamed {index}."}
        for index, model in enumerate(models)
    ]
    return {
        "external_id": external_id,
        "prompt": f"Prompt of {external_id}?",
        "responses": responses,
        "metadata": {"language": "en", "market": market, "category": category},
    }


def _judge_all(
    session: Session, who: Principal, slug: str, submit: dict[str, VerdictInput], responses: int = 2
) -> None:
    while (task := annotation.next_task(session, principal=who, slug=slug)) is not None:
        session.execute(
            update(Assignment).where(Assignment.id == task.assignment_id).values(shown_order=list(range(responses)))
        )
        annotation.submit_judgment(
            session, principal=who, assignment_id=task.assignment_id, submitted=submit[task.external_id]
        )


def seed_board(session: Session, people: People, operator: Principal, password: str | None = None) -> SeededBoard:
    """The pairwise project of `ITEMS` judged by three annotators, and a ranking project of `RANKINGS` by one."""
    lead_email = people.make("board.lead@example.org", Role.LEAD, password=password)
    emails = {
        name: people.make(
            f"{name}@example.org", Role.ANNOTATOR, password=password, team="Red" if name != "ann3" else None
        )
        for name in ANNOTATORS
    }
    projects.create_project(session, principal=operator, slug=SLUG, name="Board", overlap=3)
    rows = [_item(key, [a, b], category, market) for key, (a, b, category, market, _) in ITEMS.items()]
    importing.import_items(session, principal=operator, slug=SLUG, rows=list(enumerate(rows, start=1)))
    projects.add_members(session, principal=operator, slug=SLUG, emails=list(emails.values()))
    for index, name in enumerate(ANNOTATORS):
        submit = {key: VerdictInput(choice=CHOICES[entry[4][index]]) for key, entry in ITEMS.items()}
        _judge_all(session, principal_of(session, people, emails[name]), SLUG, submit)

    projects.create_project(session, principal=operator, slug=RANKED, name="Ranked", kind="ranking")
    ranked = [_item(key, ["alpha", "beta", "gamma"], "code", "US") for key in RANKINGS]
    importing.import_items(session, principal=operator, slug=RANKED, rows=list(enumerate(ranked, start=1)))
    projects.add_members(session, principal=operator, slug=RANKED, emails=[emails["ann1"]])
    submit = {key: VerdictInput(ranking=ranking) for key, ranking in RANKINGS.items()}
    _judge_all(session, principal_of(session, people, emails["ann1"]), RANKED, submit, responses=3)

    project_id = projects.get_project(session, principal=operator, slug=SLUG).id
    item_ids = {key: browse.item_id_by_external_id(session, project_id=project_id, external_id=key) for key in ITEMS}
    return SeededBoard(
        lead=principal_of(session, people, lead_email),
        lead_email=lead_email,
        annotator_email=emails["ann1"],
        item_ids={key: value for key, value in item_ids.items() if value is not None},
    )


def add_judge_verdicts(session: Session, seeded: SeededBoard, operator: Principal) -> None:
    """`llm/judge-a` chooses on every item; `uf/scorer` scores lb-0 (first better) and lb-1 (equal)."""
    choices: dict[str, int | str] = {"lb-0": 0, "lb-1": "tie", "lb-2": 1, "lb-3": 0, "lb-4": 0, "lb-5": 0, "lb-6": 1}
    verdicts = [
        NewVerdict(seeded.item_ids[key], "llm", "judge-a", "choice", {"choice": choice}, None)
        for key, choice in choices.items()
    ]
    verdicts.append(
        NewVerdict(
            seeded.item_ids["lb-0"],
            "uf",
            "scorer",
            "scores",
            {"scores": {"0": {"helpfulness": 5, "honesty": 4}, "1": {"helpfulness": 2, "honesty": None}}},
            None,
        )
    )
    verdicts.append(
        NewVerdict(
            seeded.item_ids["lb-1"],
            "uf",
            "scorer",
            "scores",
            {"scores": {"0": {"overall": 3}, "1": {"overall": 3}}},
            None,
        )
    )
    project_id = projects.get_project(session, principal=operator, slug=SLUG).id
    upsert_verdicts(session, project_id=project_id, verdicts=verdicts)
    session.commit()


@pytest.fixture
def seeded(session: Session, people: People, operator: Principal) -> SeededBoard:
    return seed_board(session, people, operator)


def _query(**filters: str) -> leaderboard.LeaderboardQuery:
    return leaderboard.leaderboard_query(resamples=200, **filters)


def _expected(keys: list[str]) -> tuple[list[str], list[int], list[int], list[int], list[str]]:
    """The outcomes between named, distinct models that the votes on `keys` give, computed apart from the service."""
    names: list[str] = []
    first: list[int] = []
    second: list[int] = []
    outcome: list[int] = []
    items: list[str] = []
    for key in keys:
        a, b, _, _, votes = ITEMS[key]
        if not a or not b or a == b:
            continue
        for name in (a, b):
            if name not in names:
                names.append(name)
        for vote in votes:
            [(_, _, result)] = human_pairs(vote, ProjectKind.PAIRWISE)
            first.append(names.index(a))
            second.append(names.index(b))
            outcome.append(result)
            items.append(key)
    return names, first, second, outcome, items


def test_pairwise_judgments_give_the_known_counts_and_bradley_terry_ratings(
    session: Session, seeded: SeededBoard
) -> None:
    view = leaderboard.leaderboard(session, principal=seeded.lead, slug=SLUG, query=_query())
    [board] = view.boards
    assert board.group == leaderboard.OVERALL
    by_model = {rating.model: rating for rating in board.ratings}
    assert set(by_model) == {"alpha", "beta", "gamma"}  # the unnamed response and alpha-vs-alpha are skipped
    alpha = by_model["alpha"]
    assert (alpha.comparisons, alpha.wins, alpha.ties, alpha.losses) == (9, 6, 2, 1)
    assert alpha.score == pytest.approx(7 / 9)
    assert board.comparisons == 5 * 3
    assert board.items == 5

    names, first, second, outcome, items = _expected(list(ITEMS))
    reference = bradley_terry(first, second, outcome, n_models=len(names), items=items, resamples=0)
    for index, name in enumerate(names):
        assert by_model[name].strength == pytest.approx(reference.strength[index], abs=1e-9)
        assert by_model[name].rating == pytest.approx(1000 + 400 / np.log(10) * reference.strength[index], abs=1e-6)
    assert [rating.model for rating in board.ratings] == ["alpha", "beta", "gamma"]
    assert [rating.rank for rating in board.ratings] == [1, 2, 3]
    for rating in board.ratings:
        assert rating.rating_low is not None and rating.rating_high is not None
        assert rating.rating_low <= rating.rating <= rating.rating_high
    # win-rate matrix in rating order: alpha scored 4.5 of 6 against beta (4 wins, 1 tie, 1 loss)
    assert board.win_rate[0][1] == pytest.approx(4.5 / 6)
    assert board.counts[0][1] == board.counts[1][0] == 6
    assert board.win_rate[1][0] == pytest.approx(1.5 / 6)
    assert board.win_rate[0][0] is None


def test_ranking_judgments_become_every_pair_of_the_ranking(session: Session, seeded: SeededBoard) -> None:
    view = leaderboard.leaderboard(session, principal=seeded.lead, slug=RANKED, query=_query())
    [board] = view.boards
    by_model = {rating.model: rating for rating in board.ratings}
    # r-0: alpha > beta = gamma; r-1: gamma > beta > alpha
    assert (by_model["alpha"].wins, by_model["alpha"].ties, by_model["alpha"].losses) == (2, 0, 2)
    assert (by_model["beta"].wins, by_model["beta"].ties, by_model["beta"].losses) == (1, 1, 2)
    assert (by_model["gamma"].wins, by_model["gamma"].ties, by_model["gamma"].losses) == (2, 1, 1)
    assert board.comparisons == 6
    assert board.ratings[0].model == "gamma"


def test_group_by_category_gives_one_board_per_category(session: Session, seeded: SeededBoard) -> None:
    view = leaderboard.leaderboard(session, principal=seeded.lead, slug=SLUG, query=_query(group_by="category"))
    assert [board.group for board in view.boards] == ["chat", "code"]
    chat, code = view.boards
    assert chat.comparisons == 6 and code.comparisons == 9
    names, first, second, outcome, items = _expected(["lb-2", "lb-3"])
    reference = bradley_terry(first, second, outcome, n_models=len(names), items=items, resamples=0)
    by_model = {rating.model: rating.strength for rating in chat.ratings}
    for index, name in enumerate(names):
        assert by_model[name] == pytest.approx(reference.strength[index], abs=1e-9)


def test_filters_and_reference_model(session: Session, seeded: SeededBoard) -> None:
    view = leaderboard.leaderboard(session, principal=seeded.lead, slug=SLUG, query=_query(market="TH"))
    [board] = view.boards
    assert board.comparisons == 6
    anchored = leaderboard.leaderboard(session, principal=seeded.lead, slug=SLUG, query=_query(reference="beta"))
    by_model = {rating.model: rating for rating in anchored.boards[0].ratings}
    assert by_model["beta"].rating == pytest.approx(1000.0)
    assert by_model["beta"].strength == pytest.approx(0.0)
    red = leaderboard.leaderboard(session, principal=seeded.lead, slug=SLUG, query=_query(teams="Red"))
    assert red.boards[0].comparisons == 5 * 2  # ann1 and ann2
    with pytest.raises(InvalidInput) as unknown:
        leaderboard.leaderboard(session, principal=seeded.lead, slug=SLUG, query=_query(teams="Nobody"))
    assert unknown.value.field == "teams"
    empty = leaderboard.leaderboard(session, principal=seeded.lead, slug=SLUG, query=_query(judged_from="2999-01-01"))
    assert empty.boards == []


def test_judge_verdicts_make_their_own_leaderboard(session: Session, seeded: SeededBoard, operator: Principal) -> None:
    add_judge_verdicts(session, seeded, operator)
    view = leaderboard.leaderboard(
        session, principal=seeded.lead, slug=SLUG, query=_query(source="llm", judge="judge-a")
    )
    [board] = view.boards
    by_model = {rating.model: rating for rating in board.ratings}
    # lb-0 alpha>beta, lb-1 tie, lb-2 gamma>alpha, lb-3 gamma>beta, lb-4 beta>gamma
    assert (by_model["alpha"].wins, by_model["alpha"].ties, by_model["alpha"].losses) == (1, 1, 1)
    assert (by_model["gamma"].wins, by_model["gamma"].ties, by_model["gamma"].losses) == (2, 0, 1)
    assert {(judge.source, judge.judge) for judge in view.judges} == {("llm", "judge-a"), ("uf", "scorer")}
    scored = leaderboard.leaderboard(
        session, principal=seeded.lead, slug=SLUG, query=_query(source="uf", judge="scorer")
    )
    ratings = {rating.model: rating for rating in scored.boards[0].ratings}
    assert (ratings["alpha"].wins, ratings["alpha"].ties, ratings["alpha"].losses) == (1, 1, 0)
    with pytest.raises(NotFound):
        leaderboard.leaderboard(session, principal=seeded.lead, slug=SLUG, query=_query(source="x", judge="y"))


def test_bad_queries_and_annotators_are_refused(session: Session, people: People, seeded: SeededBoard) -> None:
    for filters, field in (({"group_by": "team"}, "group_by"), ({"source": "llm"}, "judge")):
        with pytest.raises(InvalidInput) as raised:
            _query(**filters)
        assert raised.value.field == field
    annotator = principal_of(session, people, seeded.annotator_email)
    with pytest.raises(PermissionDenied):
        leaderboard.leaderboard(session, principal=annotator, slug=SLUG, query=_query())


def test_api_answers_json_and_downloads(client: TestClient, people: People, seeded: SeededBoard) -> None:
    base = f"/api/v1/projects/{SLUG}/leaderboard"
    headers = people.headers(seeded.lead_email)
    body = client.get(f"{base}?resamples=100&group_by=market", headers=headers).json()
    assert [board["group"] for board in body["boards"]] == ["TH", "US"]
    response = client.get(f"{base}?resamples=100&format=csv", headers=headers)
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["model"] for row in rows] == ["alpha", "beta", "gamma"]
    assert rows[0]["wins"] == "6"
    matrix = client.get(f"{base}?resamples=100&format=parquet&table=win_rate", headers=headers)
    table = pq.read_table(io.BytesIO(matrix.content)).to_pylist()
    assert {"group": "(all)", "model": "alpha", "opponent": "beta", "score": 0.75, "comparisons": 6} in table
    workbook = client.get(f"{base}?resamples=100&format=xlsx", headers=headers)
    assert workbook.status_code == 200 and workbook.content[:2] == b"PK"
    refused = client.get(base, headers=people.headers(seeded.annotator_email))
    assert refused.status_code == 403
    bad = client.get(f"{base}?format=pdf", headers=headers)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "format"
