"""Issue 5's acceptance simulation: 3 teams, 12 annotators, three of them outliers the scorecards must flag.

Items are imported through the services; the judgments of the simulation are bulk-inserted as
the submit path stores them (an assignment with its shown order, then the judgment), so every
annotator can judge every item without 2,400 round trips. Sizes are chosen so each statistic is
decisive, not lucky: 200 items judged by all 12 annotators (the majority of 12 is the truth on
nearly every item), and careful annotators see the better response on the left on exactly half
of their items.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.principal import Principal
from app.services import accounts, importing, projects, quality_reports
from preference_store.models import Assignment, AssignmentState, GoldAnswer, Item, Judgment, Role, User
from preference_store.queue import queue_rank
from preference_store.users import get_or_create_team
from tests.conftest import People

SLUG = "acceptance"
N_ITEMS = 200
TEAMS = ("Vendor North", "Vendor South", "In-house")
BIASED, RANDOM, FAST = "north2", "south1", "house3"
NAMES = [f"{team}{number}" for team in ("north", "south", "house") for number in range(4)]
VERDICTS = ("p0", "p1", "tie", "both_bad")
START = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Simulation:
    lead: Principal
    truth: np.ndarray
    item_ids: list[int]


def _simulate(session: Session, people: People, operator: Principal) -> Simulation:
    for name in TEAMS:
        get_or_create_team(session, name=name, is_vendor=name != "In-house")
    lead_email = people.make("acceptance.lead@example.org", Role.LEAD)
    emails = [
        people.make(f"{name}@example.org", Role.ANNOTATOR, team=TEAMS[index // 4]) for index, name in enumerate(NAMES)
    ]
    project = projects.create_project(session, principal=operator, slug=SLUG, name="Acceptance", overlap=len(NAMES))
    rows = [
        {
            "external_id": f"acc-{index:03d}",
            "prompt": f"Question {index}: which answer is better?",
            "responses": [
                {"model": "m-a", "content": f"Answer one to question {index}. " * 20},
                {"model": "m-b", "content": f"Answer two to question {index}. " * 20},
            ],
        }
        for index in range(N_ITEMS)
    ]
    importing.import_items(session, principal=operator, slug=SLUG, rows=list(enumerate(rows, start=1)))
    projects.add_members(session, principal=operator, slug=SLUG, emails=emails)
    item_ids = list(session.scalars(select(Item.id).where(Item.project_id == project.id).order_by(Item.id)))
    users = {row[0]: row[1] for row in session.execute(select(User.name, User.id).where(User.name.in_(NAMES)))}

    rng = np.random.default_rng(2026)
    truth = rng.integers(0, 2, N_ITEMS)
    assignments = []
    verdicts = []
    for name in NAMES:
        # Careful annotators see the better response on the left on exactly half of the items.
        good_left = rng.permutation(np.arange(N_ITEMS) % 2 == 0)
        for index, item_id in enumerate(item_ids):
            left = int(truth[index]) if good_left[index] else 1 - int(truth[index])
            careful = _careful(rng, int(truth[index]))
            if name == BIASED:
                verdict = left if rng.random() < 0.6 else careful
            elif name == RANDOM:
                verdict = int(rng.integers(0, 4))
            else:
                verdict = careful
            fast = name == FAST and rng.random() < 0.8
            seconds = rng.uniform(0.8, 2.5) if fast else rng.lognormal(np.log(30), 0.4)
            moment = START + timedelta(days=int(index // 10), minutes=int(rng.integers(0, 600)))
            assignments.append(
                {
                    "project_id": project.id,
                    "item_id": item_id,
                    "annotator_id": users[name],
                    "shown_order": [left, 1 - left],
                    "queue_rank": queue_rank(item_id),
                    "state": AssignmentState.SUBMITTED,
                    "leased_until": moment,
                    "created_at": moment,
                    "closed_at": moment,
                }
            )
            verdicts.append((VERDICTS[verdict], int(seconds * 1000)))
    assignment_ids = session.scalars(
        insert(Assignment).returning(Assignment.id, sort_by_parameter_order=True), assignments
    ).all()
    session.execute(
        insert(Judgment),
        [
            {
                "assignment_id": assignment_id,
                "project_id": project.id,
                "item_id": assignment["item_id"],
                "annotator_id": assignment["annotator_id"],
                "payload": {
                    "choice": verdict,
                    "preferred_position": VERDICTS.index(verdict) if verdict[0] == "p" else None,
                },
                "time_spent_ms": spent,
                "guidelines_version": project.guidelines_version,
                "verdict": verdict,
                "revision": 1,
                "created_at": assignment["closed_at"],
            }
            for assignment_id, assignment, (verdict, spent) in zip(assignment_ids, assignments, verdicts, strict=True)
        ],
    )
    session.commit()
    lead = accounts.principal_for_api_token(session, token=people.tokens[lead_email], cache=accounts.TokenCache(0))
    assert lead is not None
    return Simulation(lead, truth, item_ids)


def _careful(rng: np.random.Generator, truth: int) -> int:
    """The better response 88% of the time, the other 8%, a tie or both bad 4%."""
    draw = rng.random()
    if draw < 0.88:
        return truth
    if draw < 0.96:
        return 1 - truth
    return 2 if draw < 0.98 else 3


@pytest.fixture
def simulation(session: Session, people: People, operator: Principal) -> Simulation:
    return _simulate(session, people, operator)


def _flags(session: Session, simulation: Simulation, aggregate: str = "majority") -> dict[str, list[str]]:
    query = quality_reports.report_query(aggregate=aggregate, resamples=100)
    view = quality_reports.annotator_scorecards(session, principal=simulation.lead, slug=SLUG, query=query)
    assert len(view.annotators) == len(NAMES)
    return {card.name: [flag.code for flag in card.flags] for card in view.annotators if card.flags}


@pytest.mark.parametrize("aggregate", ["majority", "dawid_skene"])
def test_the_scorecards_flag_the_biased_the_random_and_the_fast_annotator_and_nobody_else(
    session: Session, simulation: Simulation, aggregate: str
) -> None:
    flagged = _flags(session, simulation, aggregate)

    assert flagged == {BIASED: ["position_bias"], RANDOM: ["low_agreement"], FAST: ["too_fast"]}


def test_the_flags_are_decisive_not_borderline(session: Session, simulation: Simulation) -> None:
    query = quality_reports.report_query(resamples=100)
    view = quality_reports.annotator_scorecards(session, principal=simulation.lead, slug=SLUG, query=query)
    cards = {card.name: card.score for card in view.annotators}
    thresholds = view.thresholds
    biased, random, fast = cards[BIASED], cards[RANDOM], cards[FAST]

    assert biased.left_share is not None and biased.left_share > 0.7
    assert biased.position_bias_p_adjusted is not None and biased.position_bias_p_adjusted < 1e-8
    assert random.agreement_with_aggregate is not None and random.agreement_with_aggregate < 0.35
    assert fast.too_fast_share is not None and fast.too_fast_share > 0.6
    careful = [score for name, score in cards.items() if name not in {BIASED, RANDOM, FAST}]
    for score in careful:
        assert score.agreement_with_aggregate is not None and score.agreement_with_aggregate > 0.8
        assert (
            score.position_bias_p_adjusted is not None
            and score.position_bias_p_adjusted > 10 * thresholds.position_bias_p
        )
        assert score.too_fast_share == 0.0
    assert biased.agreement_with_aggregate is not None and biased.agreement_with_aggregate > 0.58


def test_the_teams_of_the_outliers_are_compared_on_the_same_items(session: Session, simulation: Simulation) -> None:
    report = quality_reports.full_report(session, principal=simulation.lead, slug=SLUG, resamples=100)

    assert report.dashboard.judgments == N_ITEMS * len(NAMES)
    assert {card.team for card in report.teams.teams} == set(TEAMS)
    assert report.benchmark is not None and report.benchmark.shared_items == N_ITEMS
    flagged = {card.name: [flag.code for flag in card.flags] for card in report.annotators.annotators if card.flags}
    assert flagged == _flags(session, simulation)


def test_project_quality_options_set_the_flag_thresholds(
    session: Session, simulation: Simulation, operator: Principal
) -> None:
    projects.update_options(
        session, principal=operator, slug=SLUG, changes={"quality": {"too_fast_seconds": 0.5, "low_agreement": 0.2}}
    )

    flagged = _flags(session, simulation)
    view = quality_reports.annotator_scorecards(
        session, principal=simulation.lead, slug=SLUG, query=quality_reports.report_query(resamples=100)
    )

    assert flagged == {BIASED: ["position_bias"]}
    assert (view.thresholds.too_fast_seconds, view.thresholds.low_agreement) == (0.5, 0.2)
    assert view.thresholds.position_bias_p == quality_reports.DEFAULT_THRESHOLDS.position_bias_p


def test_invalid_quality_options_are_refused_naming_the_field(
    session: Session, simulation: Simulation, operator: Principal
) -> None:
    with pytest.raises(InvalidInput) as refused:
        projects.update_options(session, principal=operator, slug=SLUG, changes={"quality": {"too_fast_share": 1.5}})

    assert [problem.field for problem in refused.value.problems] == ["quality.too_fast_share"]


def test_low_gold_accuracy_is_flagged_with_its_wilson_interval(
    session: Session, simulation: Simulation, operator: Principal
) -> None:
    # The biased annotator is right on about 65% of gold items, the random one on 25%.
    projects.update_options(session, principal=operator, slug=SLUG, changes={"quality": {"low_gold_accuracy": 0.45}})
    project_id = session.scalar(select(Item.project_id).where(Item.id == simulation.item_ids[0]))
    gold = range(0, N_ITEMS, 2)
    session.execute(
        insert(GoldAnswer),
        [
            {
                "item_id": simulation.item_ids[index],
                "project_id": project_id,
                "verdict": VERDICTS[int(simulation.truth[index])],
                "accepted_verdicts": [],
                "payload": {},
            }
            for index in gold
        ],
    )
    session.commit()
    view = quality_reports.annotator_scorecards(
        session, principal=simulation.lead, slug=SLUG, query=quality_reports.report_query(resamples=100)
    )
    cards = {card.name: card for card in view.annotators}

    random = cards[RANDOM]
    assert random.score.gold_judgments == len(gold)
    assert random.score.gold_accuracy is not None and random.score.gold_accuracy < 0.5
    assert random.score.gold_accuracy_low is not None and random.score.gold_accuracy_high is not None
    assert random.score.gold_accuracy_low < random.score.gold_accuracy < random.score.gold_accuracy_high
    assert "low_gold_accuracy" in [flag.code for flag in random.flags]
    flagged_gold = {name for name, card in cards.items() if "low_gold_accuracy" in [f.code for f in card.flags]}
    assert flagged_gold == {RANDOM}
