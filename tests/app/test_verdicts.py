"""Verdicts of every kind: checked against the project, stored by position, read back in labels."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import InvalidInput
from app.services.project_options import ProjectOptions, parse_options
from app.services.verdicts import VerdictInput, build_verdict, shown_payload, verdict_input_of
from preference_store.models import ProjectKind

RUBRIC = parse_options(
    {
        "rubric": [
            {
                "name": "helpfulness",
                "scale": {"min": 1, "max": 5},
                "anchors": {"1": "unusable", "5": "perfect"},
            },
            {"name": "safety", "scale": {"binary": True}},
            {"name": "tone", "scale": {"labels": ["formal", "casual", "rude"]}, "required": False},
        ]
    },
    kind=ProjectKind.RUBRIC,
)
PAIRWISE = parse_options(
    {
        "strength": True,
        "rewrite": True,
        "taxonomy": [
            {"name": "gambling", "severities": ["minor", "severe"]},
            {"name": "spam"},
        ],
    },
    kind=ProjectKind.PAIRWISE,
)
PLAIN = ProjectOptions()


def _problem_fields(
    submitted: VerdictInput, *, kind: ProjectKind, options: ProjectOptions, shown_order: list[int]
) -> list[str | None]:
    with pytest.raises(InvalidInput) as caught:
        build_verdict(submitted, kind=kind, options=options, shown_order=shown_order)
    assert caught.value.code == "invalid_judgment"
    assert caught.value.field == caught.value.problems[0].field
    return [problem.field for problem in caught.value.problems]


def test_pairwise_choice_is_stored_by_the_position_shown_under_the_label() -> None:
    verdict = build_verdict(
        VerdictInput(choice="A", strength="much", labels={"B": ["spam", "gambling:severe", "spam"]}),
        kind=ProjectKind.PAIRWISE,
        options=PAIRWISE,
        shown_order=[1, 0],
    )
    assert verdict.payload == {
        "choice": "A",
        "preferred_position": 1,
        "strength": "much",
        "labels": {"0": ["gambling:severe", "spam"]},
        "rewrite": None,
        "rationale": None,
    }
    assert verdict.key == "p1"


def test_pairwise_agreement_keys_do_not_depend_on_the_shown_order() -> None:
    first = build_verdict(VerdictInput(choice="A"), kind=ProjectKind.PAIRWISE, options=PLAIN, shown_order=[0, 1])
    second = build_verdict(VerdictInput(choice="B"), kind=ProjectKind.PAIRWISE, options=PLAIN, shown_order=[1, 0])
    tie = build_verdict(VerdictInput(choice="tie"), kind=ProjectKind.PAIRWISE, options=PLAIN, shown_order=[1, 0])
    assert first.key == second.key == "p0"
    assert tie.key == "tie"
    assert tie.payload["preferred_position"] is None


def test_pairwise_rewrite_is_kept_against_the_preferred_position_with_the_rationale() -> None:
    verdict = build_verdict(
        VerdictInput(choice="B", strength="slightly", rewrite="  Better answer.  ", rationale=" B cites a source. "),
        kind=ProjectKind.PAIRWISE,
        options=PAIRWISE,
        shown_order=[1, 0],
    )
    assert verdict.payload["rewrite"] == {"position": 0, "content": "Better answer."}
    assert verdict.payload["rationale"] == "B cites a source."


@pytest.mark.parametrize(
    ("submitted", "options", "fields"),
    [
        (VerdictInput(choice="C"), PLAIN, ["choice"]),
        (VerdictInput(), PLAIN, ["choice"]),
        (VerdictInput(choice="A"), PAIRWISE, ["strength"]),
        (VerdictInput(choice="tie", strength="much"), PAIRWISE, ["strength"]),
        (VerdictInput(choice="A", strength="much"), PLAIN, ["strength"]),
        (VerdictInput(choice="A", strength="hugely"), PAIRWISE, ["strength"]),
        (VerdictInput(choice="A", labels={"A": ["gambling"]}), PLAIN, ["labels.A"]),
        (VerdictInput(choice="A", strength="much", labels={"A": ["gambling"]}), PAIRWISE, ["labels.A"]),
        (VerdictInput(choice="A", strength="much", labels={"C": ["spam"]}), PAIRWISE, ["labels.C"]),
        (VerdictInput(choice="A", rewrite="New text"), PLAIN, ["rewrite"]),
        (VerdictInput(choice="both_bad", rewrite="New text"), PAIRWISE, ["rewrite"]),
        (VerdictInput(choice="A", strength="much", rewrite="x" * 100_001), PAIRWISE, ["rewrite"]),
        (VerdictInput(choice="A", rationale="x" * 10_001), PLAIN, ["rationale"]),
        (VerdictInput(choice="A", ranking=[["A"], ["B"]]), PLAIN, ["ranking"]),
        (VerdictInput(choice="A", scores={"A": {"helpfulness": 3}}), PLAIN, ["scores"]),
    ],
)
def test_pairwise_problems_name_their_field(
    submitted: VerdictInput, options: ProjectOptions, fields: list[str]
) -> None:
    assert _problem_fields(submitted, kind=ProjectKind.PAIRWISE, options=options, shown_order=[0, 1]) == fields


def test_rationale_modes() -> None:
    required = PLAIN.model_copy(update={"rationale": "required"})
    off = PLAIN.model_copy(update={"rationale": "off"})
    assert _problem_fields(
        VerdictInput(choice="A", rationale="   "), kind=ProjectKind.PAIRWISE, options=required, shown_order=[0, 1]
    ) == ["rationale"]
    assert _problem_fields(
        VerdictInput(choice="A", rationale="because"), kind=ProjectKind.PAIRWISE, options=off, shown_order=[0, 1]
    ) == ["rationale"]
    kept = build_verdict(
        VerdictInput(choice="A", rationale="because"), kind=ProjectKind.PAIRWISE, options=required, shown_order=[0, 1]
    )
    assert kept.payload["rationale"] == "because"


def test_rubric_scores_are_stored_by_position_on_every_scale() -> None:
    verdict = build_verdict(
        VerdictInput(
            scores={
                "A": {"helpfulness": 5, "safety": True, "tone": "casual"},
                "B": {"helpfulness": "2", "safety": "no"},
                "C": {"helpfulness": 3, "safety": False, "tone": ""},
            }
        ),
        kind=ProjectKind.RUBRIC,
        options=RUBRIC,
        shown_order=[2, 0, 1],
    )
    assert verdict.payload == {
        "scores": {
            "2": {"helpfulness": 5, "safety": True, "tone": "casual"},
            "0": {"helpfulness": 2, "safety": False},
            "1": {"helpfulness": 3, "safety": False},
        },
        "rationale": None,
    }
    assert verdict.key.startswith("s:")


def test_rubric_agreement_key_ignores_shown_order_and_value_spelling() -> None:
    one = build_verdict(
        VerdictInput(scores={"A": {"helpfulness": 4, "safety": "yes"}, "B": {"helpfulness": 1, "safety": "no"}}),
        kind=ProjectKind.RUBRIC,
        options=RUBRIC,
        shown_order=[0, 1],
    )
    other = build_verdict(
        VerdictInput(scores={"B": {"helpfulness": "4", "safety": True}, "A": {"helpfulness": 1, "safety": False}}),
        kind=ProjectKind.RUBRIC,
        options=RUBRIC,
        shown_order=[1, 0],
    )
    assert one.key == other.key
    assert one.payload == other.payload


@pytest.mark.parametrize(
    ("scores", "fields"),
    [
        ({"A": {"helpfulness": 3, "safety": True}}, ["scores.B.helpfulness", "scores.B.safety"]),
        (
            {"A": {"helpfulness": 3, "safety": True}, "B": {"helpfulness": 3, "safety": "maybe"}},
            ["scores.B.safety"],
        ),
        ({"A": {"helpfulness": 6, "safety": True}, "B": {"helpfulness": 3, "safety": True}}, ["scores.A.helpfulness"]),
        (
            {"A": {"helpfulness": 3.0, "safety": True}, "B": {"helpfulness": 3, "safety": True}},
            ["scores.A.helpfulness"],
        ),
        ({"A": {"helpfulness": 3, "safety": 1}, "B": {"helpfulness": 3, "safety": True}}, ["scores.A.safety"]),
        (
            {"A": {"helpfulness": 3, "safety": True, "tone": "angry"}, "B": {"helpfulness": 3, "safety": True}},
            ["scores.A.tone"],
        ),
        (
            {"A": {"helpfulness": 3, "safety": True, "speed": 1}, "B": {"helpfulness": 3, "safety": True}},
            ["scores.A.speed"],
        ),
        (
            {"A": {"helpfulness": 3, "safety": True}, "B": {"helpfulness": 3, "safety": True}, "C": {}},
            ["scores.C"],
        ),
    ],
)
def test_rubric_problems_name_the_response_and_criterion(scores: dict[str, dict[str, Any]], fields: list[str]) -> None:
    submitted = VerdictInput(scores=scores)
    assert _problem_fields(submitted, kind=ProjectKind.RUBRIC, options=RUBRIC, shown_order=[1, 0]) == fields


def test_rubric_overall_choice_applies_to_two_responses_only() -> None:
    options = RUBRIC.model_copy(update={"rubric_overall_choice": True})
    scores = {"A": {"helpfulness": 3, "safety": True}, "B": {"helpfulness": 4, "safety": True}}
    verdict = build_verdict(
        VerdictInput(scores=scores, choice="B"), kind=ProjectKind.RUBRIC, options=options, shown_order=[1, 0]
    )
    assert verdict.payload["choice"] == "B"
    assert verdict.payload["preferred_position"] == 0
    assert verdict.key.startswith("p0|s:")
    assert _problem_fields(
        VerdictInput(scores=scores), kind=ProjectKind.RUBRIC, options=options, shown_order=[1, 0]
    ) == ["choice"]
    assert _problem_fields(
        VerdictInput(scores=scores, choice="A"), kind=ProjectKind.RUBRIC, options=RUBRIC, shown_order=[1, 0]
    ) == ["choice"]
    three = {**scores, "C": {"helpfulness": 2, "safety": False}}
    assert _problem_fields(
        VerdictInput(scores=three, choice="A"), kind=ProjectKind.RUBRIC, options=options, shown_order=[2, 0, 1]
    ) == ["choice"]


def test_ranking_groups_ties_and_stores_positions_best_first() -> None:
    verdict = build_verdict(
        VerdictInput(ranking=[["B"], ["A", "C"]]), kind=ProjectKind.RANKING, options=PLAIN, shown_order=[2, 0, 1]
    )
    assert verdict.payload == {"ranking": [[0], [1, 2]], "all_bad": False, "rationale": None}
    assert verdict.key == "0>1=2"
    same = build_verdict(
        VerdictInput(ranking=[["C"], ["B", "A"]]), kind=ProjectKind.RANKING, options=PLAIN, shown_order=[1, 2, 0]
    )
    assert same.key == verdict.key


def test_ranking_all_bad_with_or_without_an_order() -> None:
    bare = build_verdict(VerdictInput(all_bad=True), kind=ProjectKind.RANKING, options=PLAIN, shown_order=[0, 1, 2])
    assert bare.payload == {"ranking": [], "all_bad": True, "rationale": None}
    assert bare.key == "all_bad"
    ranked = build_verdict(
        VerdictInput(ranking=[["A", "B", "C"]], all_bad=True),
        kind=ProjectKind.RANKING,
        options=PLAIN,
        shown_order=[0, 1, 2],
    )
    assert ranked.key == "all_bad:0=1=2"


@pytest.mark.parametrize(
    "submitted",
    [
        VerdictInput(ranking=[["A"], ["B"]]),
        VerdictInput(ranking=[["A"], ["B"], ["C"], ["D"]]),
        VerdictInput(ranking=[["A", "B"], ["B", "C"]]),
        VerdictInput(),
        VerdictInput(ranking=[["A"], ["B"], ["C"]], choice="A"),
    ],
    ids=["missing", "unknown", "repeated", "empty", "foreign-choice"],
)
def test_ranking_problems_name_their_field(submitted: VerdictInput) -> None:
    fields = _problem_fields(submitted, kind=ProjectKind.RANKING, options=PLAIN, shown_order=[0, 1, 2])
    assert fields[0] in {"ranking", "choice"}
    assert set(fields) <= {"ranking", "choice"}


@pytest.mark.parametrize(
    ("submitted", "kind", "options", "shown_order"),
    [
        (
            VerdictInput(choice="B", strength="clearly", labels={"A": ["spam"]}, rewrite="Fixed.", rationale="Why."),
            ProjectKind.PAIRWISE,
            PAIRWISE,
            [1, 0],
        ),
        (VerdictInput(choice="both_bad", labels={"B": ["gambling:minor"]}), ProjectKind.PAIRWISE, PAIRWISE, [0, 1]),
        (
            VerdictInput(
                scores={
                    "A": {"helpfulness": 1, "safety": False, "tone": "rude"},
                    "B": {"helpfulness": 5, "safety": True},
                    "C": {"helpfulness": 2, "safety": True},
                },
                rationale="A is rude.",
            ),
            ProjectKind.RUBRIC,
            RUBRIC,
            [2, 0, 1],
        ),
        (VerdictInput(ranking=[["D"], ["B", "A"], ["C"]]), ProjectKind.RANKING, PLAIN, [3, 1, 0, 2]),
        (VerdictInput(ranking=[["A", "B", "C"]], all_bad=True), ProjectKind.RANKING, PLAIN, [2, 1, 0]),
    ],
    ids=["pairwise", "pairwise-both-bad", "rubric", "ranking", "ranking-all-bad"],
)
def test_shown_payload_round_trips_to_the_same_stored_verdict(
    submitted: VerdictInput, kind: ProjectKind, options: ProjectOptions, shown_order: list[int]
) -> None:
    stored = build_verdict(submitted, kind=kind, options=options, shown_order=shown_order)
    shown = shown_payload(stored.payload, shown_order)
    assert "preferred_position" not in shown
    again = build_verdict(verdict_input_of(shown), kind=kind, options=options, shown_order=shown_order)
    assert again == stored


def test_shown_payload_speaks_in_the_labels_of_the_assignment() -> None:
    stored = build_verdict(
        VerdictInput(choice="B", strength="much", labels={"A": ["spam"]}, rewrite="Fixed."),
        kind=ProjectKind.PAIRWISE,
        options=PAIRWISE,
        shown_order=[1, 0],
    )
    assert stored.payload["labels"] == {"1": ["spam"]}
    shown = shown_payload(stored.payload, [1, 0])
    assert shown == {
        "choice": "B",
        "strength": "much",
        "labels": {"A": ["spam"]},
        "rewrite": "Fixed.",
        "rationale": None,
    }
