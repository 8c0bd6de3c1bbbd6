"""Quality reports on a project built through the services with known votes: agreement, flags, teams."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import krippendorff
import numpy as np
import pytest
from scipy.stats import binomtest
from sqlalchemy import update
from sqlalchemy.orm import Session
from statsmodels.stats.proportion import proportion_confint

from app.errors import InvalidInput, PermissionDenied
from app.principal import Principal
from app.services import accounts, annotation, importing, projects, quality_reports
from app.services.quality_reports import ReportQuery
from app.services.verdicts import VerdictInput
from preference_store.models import Assignment, Role
from preference_store.users import get_or_create_team
from tests.conftest import People

SLUG = "quality"
GOOD = "A careful, correct answer."
BAD = "Wrong."
N_ITEMS = 16
FIRST_DAY = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)  # a Tuesday; items 0-7
SECOND_DAY = datetime(2026, 11, 10, 10, 0, tzinfo=UTC)  # the next Tuesday; items 8-15
EXTERNAL_IDS = [f"q-{index:02d}" for index in range(N_ITEMS)]


def _item(index: int) -> dict[str, object]:
    early = index < N_ITEMS // 2
    return {
        "external_id": EXTERNAL_IDS[index],
        "prompt": f"Question {index}?",
        "responses": [{"model": "good", "content": GOOD}, {"model": "bad", "content": BAD}],
        "metadata": {
            "language": "en" if early else "th",
            "market": "US" if early else "TH",
            "category": "spam" if early else "news",
        },
    }


@dataclass(frozen=True, slots=True)
class SeededQuality:
    """16 pairwise items, overlap 4; GOOD (position 0) is shown left on even items, right on odd ones.

    alice (Vendor One) always prefers GOOD; bob (Vendor One) too, but ties on items 0 and 1;
    carol (Vendor Two) prefers GOOD in 0.8 s each (too fast); dave (Vendor Two) always picks
    the left response (position bias). Items 0-7 are judged on FIRST_DAY, 8-15 a week later.
    """

    lead: Principal
    annotator: Principal
    lead_email: str
    emails: dict[str, str]
    outcomes: dict[str, list[str]]


def _principal(session: Session, people: People, email: str) -> Principal:
    principal = accounts.principal_for_api_token(session, token=people.tokens[email], cache=accounts.TokenCache(0))
    assert principal is not None
    return principal


def seed_quality_project(
    session: Session, people: People, operator: Principal, password: str | None = None
) -> SeededQuality:
    get_or_create_team(session, name="Vendor One", is_vendor=True)
    get_or_create_team(session, name="Vendor Two", is_vendor=True)
    lead_email = people.make("quality.lead@example.org", Role.LEAD, password=password)
    teams = {"alice": "Vendor One", "bob": "Vendor One", "carol": "Vendor Two", "dave": "Vendor Two"}
    emails = {
        name: people.make(f"{name}@example.org", Role.ANNOTATOR, password=password, team=team)
        for name, team in teams.items()
    }
    projects.create_project(session, principal=operator, slug=SLUG, name="Quality", overlap=4)
    importing.import_items(
        session, principal=operator, slug=SLUG, rows=list(enumerate((_item(i) for i in range(N_ITEMS)), start=1))
    )
    projects.add_members(session, principal=operator, slug=SLUG, emails=list(emails.values()))
    outcomes: dict[str, list[str]] = {name: [] for name in teams}
    for name, email in emails.items():
        who = _principal(session, people, email)
        for index in range(N_ITEMS):
            now = FIRST_DAY if index < N_ITEMS // 2 else SECOND_DAY
            task = annotation.next_task(session, principal=who, slug=SLUG, now=now)
            assert task is not None and task.external_id == EXTERNAL_IDS[index]
            good_left = index % 2 == 0
            session.execute(
                update(Assignment)
                .where(Assignment.id == task.assignment_id)
                .values(shown_order=[0, 1] if good_left else [1, 0])
            )
            good_label = "A" if good_left else "B"
            if name == "bob" and index < 2:
                choice, outcome = "tie", "tie"
            elif name == "dave":
                choice, outcome = "A", "first" if good_left else "second"
            else:
                choice, outcome = good_label, "first"
            annotation.submit_judgment(
                session,
                principal=who,
                assignment_id=task.assignment_id,
                submitted=VerdictInput(choice=choice),
                time_spent_ms=800 if name == "carol" else 20_000,
                now=now,
            )
            outcomes[name].append(outcome)
    return SeededQuality(
        lead=_principal(session, people, lead_email),
        annotator=_principal(session, people, emails["alice"]),
        lead_email=lead_email,
        emails=emails,
        outcomes=outcomes,
    )


@pytest.fixture
def seeded(session: Session, people: People, operator: Principal) -> SeededQuality:
    return seed_quality_project(session, people, operator)


CODES = {"first": 0, "second": 1, "tie": 2, "both_bad": 3}


def _reference_alpha(outcomes: dict[str, list[str]], names: list[str], items: list[int] | None = None) -> float:
    rows = [[CODES[outcomes[name][index]] for index in (items or range(N_ITEMS))] for name in names]
    return float(krippendorff.alpha(reliability_data=np.asarray(rows, dtype=float), level_of_measurement="nominal"))


def _query(**filters: str) -> ReportQuery:
    return quality_reports.report_query(resamples=200, **filters)


def test_dashboard_alpha_and_percent_agreement_match_the_known_votes(session: Session, seeded: SeededQuality) -> None:
    view = quality_reports.dashboard(session, principal=seeded.lead, slug=SLUG, query=_query())
    [overall] = view.agreement
    assert overall.measure == "outcome"
    assert overall.units == N_ITEMS
    expected = _reference_alpha(seeded.outcomes, ["alice", "bob", "carol", "dave"])
    assert overall.alpha == pytest.approx(expected, abs=1e-12)
    # By hand: D_o = 2 (item 0) + 10/3 (item 1) + 7 * 2 (odd items) coincidences, n = 64, n_c = 54, 8, 2.
    assert overall.alpha == pytest.approx(1 - 63 * (2 + 10 / 3 + 14) / (64**2 - 54**2 - 8**2 - 2**2))
    # Per item, the share of agreeing rater pairs: 7 unanimous, item 0 and 7 odd items 1/2, item 1 1/6.
    assert overall.percent == pytest.approx((7 + 0.5 + 1 / 6 + 7 * 0.5) / 16)
    assert overall.alpha is not None and overall.alpha_low is not None and overall.alpha_high is not None
    assert overall.alpha_low <= overall.alpha <= overall.alpha_high
    assert (view.judgments, view.items, view.annotators) == (64, 16, 4)


def test_dashboard_counts_volume_per_day_and_agreement_per_week(session: Session, seeded: SeededQuality) -> None:
    view = quality_reports.dashboard(session, principal=seeded.lead, slug=SLUG, query=_query())
    assert [(entry.day.isoformat(), entry.judgments) for entry in view.volume] == [
        ("2026-11-03", 32),
        ("2026-11-10", 32),
    ]
    assert [week.week_start.isoformat() for week in view.weekly] == ["2026-11-02", "2026-11-09"]
    first, second = (week.agreement[0] for week in view.weekly)
    everyone = ["alice", "bob", "carol", "dave"]
    assert first.alpha == pytest.approx(_reference_alpha(seeded.outcomes, everyone, list(range(8))))
    assert second.alpha == pytest.approx(_reference_alpha(seeded.outcomes, everyone, list(range(8, 16))))


def test_dashboard_label_distribution_counts_each_outcome(session: Session, seeded: SeededQuality) -> None:
    view = quality_reports.dashboard(session, principal=seeded.lead, slug=SLUG, query=_query())
    counts = {entry.label: entry.count for entry in view.labels}
    assert counts == {"first": 54, "second": 8, "tie": 2, "both_bad": 0}


def test_dashboard_groups_by_team_and_filters_by_team_and_date(session: Session, seeded: SeededQuality) -> None:
    view = quality_reports.dashboard(session, principal=seeded.lead, slug=SLUG, query=_query(group_by="team"))
    groups = {group.group: group for group in view.groups}
    assert set(groups) == {"Vendor One", "Vendor Two"}
    assert groups["Vendor One"].agreement[0].alpha == pytest.approx(_reference_alpha(seeded.outcomes, ["alice", "bob"]))
    filtered = quality_reports.dashboard(
        session, principal=seeded.lead, slug=SLUG, query=_query(teams="Vendor Two", judged_until="2026-11-03")
    )
    assert (filtered.judgments, filtered.annotators) == (16, 2)
    assert filtered.agreement[0].alpha == pytest.approx(
        _reference_alpha(seeded.outcomes, ["carol", "dave"], list(range(8)))
    )
    by_language = quality_reports.dashboard(session, principal=seeded.lead, slug=SLUG, query=_query(language="th"))
    assert by_language.judgments == 32


def test_scorecards_flag_the_left_biased_and_the_fast_annotator_only(session: Session, seeded: SeededQuality) -> None:
    view = quality_reports.annotator_scorecards(session, principal=seeded.lead, slug=SLUG, query=_query())
    cards = {card.name: card for card in view.annotators}
    assert {name: [flag.code for flag in card.flags] for name, card in cards.items()} == {
        "alice": [],
        "bob": [],
        "carol": ["too_fast"],
        "dave": ["position_bias"],
    }
    dave = cards["dave"].score
    assert (dave.left_share, dave.decided) == (1.0, 16)
    assert dave.position_bias_p == pytest.approx(2 * 0.5**16)
    assert dave.position_bias_p_adjusted == pytest.approx(4 * 2 * 0.5**16)
    assert dave.agreement_with_aggregate == 0.5
    [bias] = cards["dave"].flags
    assert bias.items == EXTERNAL_IDS and bias.count == N_ITEMS
    [fast] = cards["carol"].flags
    assert fast.count == N_ITEMS
    assert cards["carol"].score.too_fast_share == 1.0
    bob = cards["bob"].score
    assert (bob.tie_rate, bob.agreement_with_aggregate, bob.left_share) == (2 / 16, 14 / 16, 0.5)
    chars = len(GOOD) + len(BAD)
    assert cards["alice"].score.seconds_per_1k_chars == pytest.approx(20 / (chars / 1000))
    assert cards["alice"].team == "Vendor One"
    assert cards["alice"].score.competence is not None and cards["alice"].score.competence > 0.9


def test_scorecards_with_dawid_skene_aggregate(session: Session, seeded: SeededQuality) -> None:
    view = quality_reports.annotator_scorecards(
        session, principal=seeded.lead, slug=SLUG, query=_query(aggregate="dawid_skene")
    )
    cards = {card.name: card for card in view.annotators}
    assert cards["alice"].score.agreement_with_aggregate == 1.0
    assert cards["dave"].score.agreement_with_aggregate == 0.5


def test_team_scorecards_pool_their_members(session: Session, seeded: SeededQuality) -> None:
    view = quality_reports.team_scorecards(session, principal=seeded.lead, slug=SLUG, query=_query())
    teams = {card.team: card for card in view.teams}
    assert set(teams) == {"Vendor One", "Vendor Two"}
    two = teams["Vendor Two"]
    assert (two.annotators, two.score.judgments, two.is_vendor) == (2, 32, True)
    assert two.score.left_share == 24 / 32
    assert two.score.too_fast_share == 0.5
    assert two.within_team[0].alpha == pytest.approx(_reference_alpha(seeded.outcomes, ["carol", "dave"]))
    # 24 of 32 left is p = 0.007, but 0.014 once adjusted for the two teams tested.
    assert two.score.position_bias_p_adjusted == pytest.approx(2 * binomtest(24, 32).pvalue)
    assert [flag.code for flag in two.flags] == ["too_fast"]
    assert teams["Vendor One"].flags == []


def test_team_benchmark_compares_teams_on_shared_items(session: Session, seeded: SeededQuality) -> None:
    view = quality_reports.team_benchmark(
        session, principal=seeded.lead, slug=SLUG, query=_query(), teams=["Vendor One", "Vendor Two"]
    )
    assert view.shared_items == N_ITEMS
    one, two = view.teams
    assert one.within_team[0].alpha == pytest.approx(_reference_alpha(seeded.outcomes, ["alice", "bob"]))
    assert two.within_team[0].alpha == pytest.approx(_reference_alpha(seeded.outcomes, ["carol", "dave"]))
    assert (one.vs_aggregate, one.vs_aggregate_units) == (30 / 32, 32)
    assert (two.vs_aggregate, two.vs_aggregate_units) == (24 / 32, 32)
    low, high = proportion_confint(24, 32, method="wilson")
    assert two.vs_aggregate_low == pytest.approx(low)
    assert two.vs_aggregate_high == pytest.approx(high)
    # Team majorities: Vendor One is split on items 0-1, Vendor Two on every odd item; the 7 even
    # items 2-14 have both and agree, without any variation (alpha undefined).
    [between] = view.between_teams
    assert (between.units, between.percent, between.alpha) == (7, 1.0, None)


def test_benchmark_needs_two_known_teams(session: Session, seeded: SeededQuality) -> None:
    with pytest.raises(InvalidInput) as raised:
        quality_reports.team_benchmark(session, principal=seeded.lead, slug=SLUG, query=_query(), teams=["Vendor One"])
    assert raised.value.code == "invalid_teams"
    with pytest.raises(InvalidInput) as unknown:
        quality_reports.team_benchmark(
            session, principal=seeded.lead, slug=SLUG, query=_query(), teams=["Vendor One", "Nobody"]
        )
    assert unknown.value.code == "unknown_team"


@pytest.mark.parametrize(
    "report", [quality_reports.dashboard, quality_reports.annotator_scorecards, quality_reports.team_scorecards]
)
def test_annotators_may_not_read_quality_reports(session: Session, seeded: SeededQuality, report: object) -> None:
    with pytest.raises(PermissionDenied):
        report(session, principal=seeded.annotator, slug=SLUG, query=_query())  # type: ignore[operator]


@pytest.mark.parametrize(
    ("filters", "code"),
    [
        ({"judged_from": "03/11/2026"}, "invalid_judged_from"),
        ({"judged_from": "2026-11-10", "judged_until": "2026-11-03"}, "invalid_judged_until"),
        ({"group_by": "planet"}, "invalid_group_by"),
        ({"aggregate": "vibes"}, "invalid_aggregate"),
    ],
)
def test_invalid_filters_are_refused(filters: dict[str, str], code: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        quality_reports.report_query(**filters)  # type: ignore[arg-type]
    assert raised.value.code == code


def test_unknown_team_filter_is_refused(session: Session, seeded: SeededQuality) -> None:
    with pytest.raises(InvalidInput) as raised:
        quality_reports.dashboard(session, principal=seeded.lead, slug=SLUG, query=_query(teams="Nobody"))
    assert raised.value.code == "unknown_team"


def test_tables_flatten_each_report(session: Session, seeded: SeededQuality) -> None:
    table = quality_reports.annotators_table(
        quality_reports.annotator_scorecards(session, principal=seeded.lead, slug=SLUG, query=_query())
    )
    assert table.columns[:3] == ["annotator_id", "annotator", "team"]
    flags = {row[1]: row[-1] for row in table.rows}
    assert flags == {"alice": "", "bob": "", "carol": "too_fast", "dave": "position_bias"}
    dashboard = quality_reports.dashboard(session, principal=seeded.lead, slug=SLUG, query=_query())
    agreement = quality_reports.dashboard_table(dashboard, "agreement")
    assert [row[0] for row in agreement.rows] == ["overall", "week", "week"]
    assert quality_reports.dashboard_table(dashboard, "volume").rows == [["2026-11-03", 32], ["2026-11-10", 32]]


VerdictOf = Callable[[int, dict[str, str]], VerdictInput]


def _judge_all(session: Session, people: People, slug: str, email: str, verdict_of: VerdictOf) -> None:
    """Judge every item of `slug` as `email`; `verdict_of(index, label_of_content)` gives the verdict."""
    who = _principal(session, people, email)
    index = 0
    while (task := annotation.next_task(session, principal=who, slug=slug)) is not None:
        label_of = {response.content: response.label for response in task.responses}
        submitted = verdict_of(index, label_of)
        annotation.submit_judgment(
            session, principal=who, assignment_id=task.assignment_id, submitted=submitted, time_spent_ms=15_000
        )
        index += 1


def test_rubric_agreement_is_per_criterion_and_flat_scores_are_flagged(
    session: Session, people: People, operator: Principal
) -> None:
    lead = _principal(session, people, people.make("rubric.lead@example.org", Role.LEAD))
    criteria = [{"name": "helpful", "scale": {"min": 1, "max": 5}}, {"name": "accurate", "scale": {"min": 1, "max": 5}}]
    projects.create_project(
        session,
        principal=operator,
        slug="rubric-q",
        name="Rubric",
        kind="rubric",
        overlap=2,
        options={"rubric": criteria},
    )
    rows = [
        (n, {"external_id": f"r-{n:02d}", "prompt": "?", "responses": [{"content": GOOD}, {"content": BAD}]})
        for n in range(12)
    ]
    importing.import_items(session, principal=operator, slug="rubric-q", rows=rows)
    emails = [people.make(f"{name}@example.org", Role.ANNOTATOR) for name in ("varied", "flat")]
    projects.add_members(session, principal=operator, slug="rubric-q", emails=emails)
    varied = {GOOD: {"helpful": 5, "accurate": 4}, BAD: {"helpful": 2, "accurate": 1}}
    _judge_all(
        session,
        people,
        "rubric-q",
        emails[0],
        lambda i, label: VerdictInput(scores={label[c]: dict(s) for c, s in varied.items()}),
    )
    _judge_all(
        session,
        people,
        "rubric-q",
        emails[1],
        lambda i, label: VerdictInput(scores={label[c]: {"helpful": 3, "accurate": 3} for c in (GOOD, BAD)}),
    )
    view = quality_reports.dashboard(session, principal=lead, slug="rubric-q", query=_query())
    assert [(entry.measure, entry.level, entry.units) for entry in view.agreement] == [
        ("helpful", "ordinal", 24),
        ("accurate", "ordinal", 24),
    ]
    for entry, (good, bad) in zip(view.agreement, ((5, 2), (4, 1)), strict=True):
        reference = krippendorff.alpha(
            reliability_data=np.asarray([[good, bad] * 12, [3, 3] * 12], dtype=float),
            level_of_measurement="ordinal",
            value_domain=[1, 2, 3, 4, 5],
        )
        assert entry.alpha == pytest.approx(reference)
    cards = {
        card.name: card
        for card in quality_reports.annotator_scorecards(
            session, principal=lead, slug="rubric-q", query=_query()
        ).annotators
    }
    assert cards["flat"].score.straight_lining_share == 1.0
    assert cards["varied"].score.straight_lining_share == 0.0
    assert [flag.code for flag in cards["flat"].flags] == ["straight_lining"]
    assert cards["flat"].flags[0].count == 12
    assert cards["varied"].flags == []


def test_ranking_agreement_is_on_the_order_of_each_response_pair(
    session: Session, people: People, operator: Principal
) -> None:
    lead = _principal(session, people, people.make("ranking.lead@example.org", Role.LEAD))
    projects.create_project(session, principal=operator, slug="rank-q", name="Rank", kind="ranking", overlap=2)
    three = [{"content": f"answer {n}"} for n in range(3)]
    importing.import_items(
        session,
        principal=operator,
        slug="rank-q",
        rows=[(n, {"external_id": f"k-{n}", "prompt": "?", "responses": three}) for n in range(4)],
    )
    emails = [people.make(f"ranker{n}@example.org", Role.ANNOTATOR) for n in (1, 2)]
    projects.add_members(session, principal=operator, slug="rank-q", emails=emails)

    def ranking(order: list[list[int]]) -> VerdictOf:
        return lambda i, label: VerdictInput(ranking=[[label[f"answer {n}"] for n in group] for group in order])

    _judge_all(session, people, "rank-q", emails[0], ranking([[0], [1], [2]]))
    # The second ranker agrees on items 0-1 and on items 2-3 puts response 2 first and ties 0 with 1.
    second = [[[0], [1], [2]], [[0], [1], [2]], [[2], [0, 1]], [[2], [0, 1]]]
    _judge_all(
        session,
        people,
        "rank-q",
        emails[1],
        lambda i, label: VerdictInput(ranking=[[label[f"answer {n}"] for n in group] for group in second[i]]),
    )
    view = quality_reports.dashboard(session, principal=lead, slug="rank-q", query=_query())
    [entry] = view.agreement
    assert (entry.measure, entry.units) == ("pair order", 12)
    # Pairs (0,1), (0,2), (1,2): 0 = above, 1 = below, 2 = tied.
    first_rater = [0, 0, 0] * 4
    second_rater = [0, 0, 0, 0, 0, 0, 2, 1, 1, 2, 1, 1]
    reference = krippendorff.alpha(
        reliability_data=np.asarray([first_rater, second_rater], dtype=float), level_of_measurement="nominal"
    )
    assert entry.alpha == pytest.approx(reference)
    assert entry.percent == pytest.approx(6 / 12)


def test_reports_of_a_filter_without_judgments_are_empty(session: Session, seeded: SeededQuality) -> None:
    query = _query(judged_from="2027-01-01")
    view = quality_reports.dashboard(session, principal=seeded.lead, slug=SLUG, query=query)
    assert (view.judgments, view.agreement, view.weekly, view.volume, view.labels) == (0, [], [], [], [])
    assert view.facets.teams == ["Vendor One", "Vendor Two"]
    assert quality_reports.annotator_scorecards(session, principal=seeded.lead, slug=SLUG, query=query).annotators == []
    assert quality_reports.team_scorecards(session, principal=seeded.lead, slug=SLUG, query=query).teams == []
    benchmark = quality_reports.team_benchmark(
        session, principal=seeded.lead, slug=SLUG, query=query, teams=["Vendor One", "Vendor Two"]
    )
    assert benchmark.shared_items == 0
    assert [team.vs_aggregate for team in benchmark.teams] == [None, None]
