"""Calibration sessions: the blind round, the reveal, agreed answers, gold, closing and the figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypedDict, Unpack

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, PermissionDenied
from app.principal import Principal
from app.services import accounts, annotation, calibration, exporting, importing, projects, quality_reports
from app.services.calibration import blind_agreement
from app.services.verdicts import VerdictInput
from preference_store.calibration import JudgmentVote
from preference_store.models import CalibrationAnswer, GoldAnswer, Item, Judgment, Role
from tests.conftest import People, native_item

SLUG = "calib"


@dataclass(frozen=True, slots=True)
class Seeded:
    lead: Principal
    ann1: Principal
    ann2: Principal
    outsider: Principal


class CalibrationExportOptions(TypedDict, total=False):
    include_calibration: bool


def _principal(session: Session, people: People, email: str) -> Principal:
    principal = accounts.principal_for_api_token(session, token=people.tokens[email], cache=accounts.TokenCache(0))
    assert principal is not None
    return principal


@pytest.fixture
def seeded(session: Session, operator: Principal, people: People) -> Seeded:
    projects.create_project(session, principal=operator, slug=SLUG, name="Calibrate", overlap=2)
    rows = [(n, native_item(f"k-{n}")) for n in range(1, 6)]
    importing.import_items(session, principal=operator, slug=SLUG, rows=rows)
    emails = [
        people.make("cal-lead@example.org", Role.LEAD),
        people.make("cal-a1@example.org", team="Vendor K"),
        people.make("cal-a2@example.org", team="Vendor K"),
        people.make("cal-out@example.org", team="Vendor Z"),
    ]
    lead, ann1, ann2, outsider = (_principal(session, people, email) for email in emails)
    return Seeded(lead, ann1, ann2, outsider)


def _start(session: Session, seeded: Seeded, items: list[str]) -> calibration.SessionDetail:
    detail = calibration.create_session(
        session, principal=seeded.lead, slug=SLUG, name="Week 49", notes="Spam edge cases", teams=["Vendor K"]
    )
    calibration.add_items(session, principal=seeded.lead, slug=SLUG, session_id=detail.id, external_ids=items)
    return detail


def _answer_as(session: Session, who: Principal, session_id: int, external_id: str, position_choice: str) -> None:
    """Answer by the response's stored position ("p0", "p1") or "tie"/"both_bad", whatever order was shown."""
    task = calibration.my_task(session, principal=who, slug=SLUG, session_id=session_id)
    item_id = next(one for one, ext, _ in task.items if ext == external_id)
    shown = calibration.my_task(session, principal=who, slug=SLUG, session_id=session_id, calibration_item_id=item_id)
    assert shown.task is not None
    order = [response.label for response in shown.task.responses]
    choice = position_choice
    if position_choice.startswith("p"):
        slot = session.scalars(select(CalibrationAnswer).where(CalibrationAnswer.id == shown.task.assignment_id)).one()
        choice = order[slot.shown_order.index(int(position_choice[1:]))]
    calibration.answer(
        session,
        principal=who,
        slug=SLUG,
        session_id=session_id,
        calibration_item_id=item_id,
        submitted=VerdictInput(choice=choice, rationale=f"{who.user.name} thinks {position_choice}"),
        time_spent_ms=1200,
    )


def test_create_session_takes_the_teams_active_members_and_validates_fields(session: Session, seeded: Seeded) -> None:
    detail = _start(session, seeded, ["k-1", "k-2"])
    assert [p.name for p in detail.participants] == ["cal-a1", "cal-a2"]
    assert (detail.state, detail.teams, detail.after_days) == ("blind", ["Vendor K"], 14)
    for kwargs, field in [
        ({"name": " ", "teams": ["Vendor K"]}, "name"),
        ({"name": "x", "teams": []}, "teams"),
        ({"name": "x", "teams": ["Nobody"]}, "teams"),
        ({"name": "x", "emails": ["ghost@example.org"]}, "emails"),
        ({"name": "x", "teams": ["Vendor K"], "after_days": 0}, "after_days"),
    ]:
        with pytest.raises(InvalidInput) as error:
            calibration.create_session(session, principal=seeded.lead, slug=SLUG, **kwargs)  # type: ignore[arg-type]
        assert error.value.field == field
        session.rollback()
    with pytest.raises(InvalidInput) as unknown:
        calibration.add_items(session, principal=seeded.lead, slug=SLUG, session_id=detail.id, external_ids=["nope"])
    assert unknown.value.field == "external_ids"
    session.rollback()
    with pytest.raises(PermissionDenied):
        calibration.create_session(session, principal=seeded.ann1, slug=SLUG, name="x", teams=["Vendor K"])


def test_each_participant_gets_a_random_order_stored_per_answer(session: Session, seeded: Seeded) -> None:
    detail = _start(session, seeded, [f"k-{n}" for n in range(1, 6)])
    orders = session.scalars(select(CalibrationAnswer.shown_order).where(CalibrationAnswer.session_id == detail.id))
    seen = [tuple(order) for order in orders]
    assert len(seen) == 10
    assert set(seen) <= {(0, 1), (1, 0)}
    adding_again = calibration.add_items(
        session, principal=seeded.lead, slug=SLUG, session_id=detail.id, external_ids=["k-1"]
    )
    assert adding_again == 0


def test_blind_round_hides_answers_and_allows_revisions_until_the_reveal(session: Session, seeded: Seeded) -> None:
    detail = _start(session, seeded, ["k-1", "k-2"])
    _answer_as(session, seeded.ann1, detail.id, "k-1", "p0")
    _answer_as(session, seeded.ann1, detail.id, "k-1", "p1")
    mine = calibration.my_task(session, principal=seeded.ann2, slug=SLUG, session_id=detail.id)
    assert mine.answer is None and mine.answered == 0
    lead_view = calibration.get_session(session, principal=seeded.lead, slug=SLUG, session_id=detail.id)
    assert lead_view.items == [] and lead_view.figures is None
    assert [(p.name, p.answered, p.total) for p in lead_view.participants] == [("cal-a1", 1, 2), ("cal-a2", 0, 2)]
    stored = session.scalars(select(CalibrationAnswer.verdict).where(CalibrationAnswer.verdict.is_not(None))).all()
    assert stored == ["p1"]
    with pytest.raises(PermissionDenied):
        calibration.my_task(session, principal=seeded.outsider, slug=SLUG, session_id=detail.id)
    with pytest.raises(PermissionDenied):
        calibration.get_session(session, principal=seeded.ann1, slug=SLUG, session_id=detail.id)


def test_invalid_answers_name_the_field(session: Session, seeded: Seeded) -> None:
    detail = _start(session, seeded, ["k-1"])
    task = calibration.my_task(session, principal=seeded.ann1, slug=SLUG, session_id=detail.id)
    assert task.calibration_item_id is not None
    with pytest.raises(InvalidInput) as error:
        calibration.answer(
            session,
            principal=seeded.ann1,
            slug=SLUG,
            session_id=detail.id,
            calibration_item_id=task.calibration_item_id,
            submitted=VerdictInput(choice="C"),
        )
    assert error.value.field == "choice"


def test_answers_are_not_judgments(session: Session, seeded: Seeded) -> None:
    detail = _start(session, seeded, ["k-1"])
    _answer_as(session, seeded.ann1, detail.id, "k-1", "p0")
    assert session.execute(select(func.count()).select_from(Judgment)).scalar_one() == 0


def test_whole_lifecycle_with_figures_agreed_answers_and_close(session: Session, seeded: Seeded) -> None:
    detail = _start(session, seeded, ["k-1", "k-2", "k-3"])
    for external_id, one, two in [("k-1", "p0", "p0"), ("k-2", "p0", "p1"), ("k-3", "tie", "tie")]:
        _answer_as(session, seeded.ann1, detail.id, external_id, one)
        _answer_as(session, seeded.ann2, detail.id, external_id, two)
    revealed = calibration.reveal(session, principal=seeded.lead, slug=SLUG, session_id=detail.id)
    assert revealed.state == "revealed"
    figures = revealed.figures
    assert figures is not None
    # By hand: items (p0,p0), (p0,p1), (tie,tie); 2 of 3 items agree -> 66.7%.
    # Coincidences: p0-p0 2, p0-p1 1, p1-p0 1, tie-tie 2; n = 6, n_p0 = 3, n_p1 = 1, n_tie = 2.
    # D_o = 2/6; D_e = (3*1 + 3*2 + 1*3 + 1*2 + 2*3 + 2*1) / (6 * 5) = 22/30; alpha = 1 - (1/3) / (22/30) = 6/11.
    assert figures.percent_agreement == pytest.approx(2 / 3)
    assert figures.alpha == pytest.approx(6 / 11)
    assert figures.alpha_low is not None and figures.alpha is not None and figures.alpha_high is not None
    assert figures.alpha_low <= figures.alpha <= figures.alpha_high
    by_id = {item.external_id: item for item in revealed.items}
    assert [(d.verdict, d.count) for d in by_id["k-2"].distribution] == [("p0", 1), ("p1", 1)]
    assert [(d.verdict, d.count) for d in by_id["k-1"].distribution] == [("p0", 2)]
    assert {a.verdict.rationale for a in by_id["k-1"].answers} == {"cal-a1 thinks p0", "cal-a2 thinks p0"}
    with pytest.raises(Conflict):
        calibration.answer(
            session,
            principal=seeded.ann1,
            slug=SLUG,
            session_id=detail.id,
            calibration_item_id=by_id["k-1"].id,
            submitted=VerdictInput(choice="A"),
        )
    session.rollback()
    # The lead speaks in stored order: A is position 0.
    review = calibration.agree(
        session,
        principal=seeded.lead,
        slug=SLUG,
        session_id=detail.id,
        calibration_item_id=by_id["k-2"].id,
        submitted=VerdictInput(choice="B"),
        note="Response 2 refuses correctly.",
    )
    assert review.agreed is not None and review.agreed.preferred_position == 1
    assert review.note == "Response 2 refuses correctly."
    assert [a.agrees for a in review.answers].count(True) == 1
    calibration.agree(
        session,
        principal=seeded.lead,
        slug=SLUG,
        session_id=detail.id,
        calibration_item_id=by_id["k-1"].id,
        submitted=VerdictInput(choice="A"),
    )
    with pytest.raises(InvalidInput) as bad:
        calibration.agree(
            session,
            principal=seeded.lead,
            slug=SLUG,
            session_id=detail.id,
            calibration_item_id=by_id["k-3"].id,
            submitted=VerdictInput(choice="Z"),
        )
    assert bad.value.field == "choice"
    session.rollback()
    closed = calibration.close(session, principal=seeded.lead, slug=SLUG, session_id=detail.id)
    assert closed.state == "closed" and closed.closed_at is not None
    # Agreed answers exist for k-1 (p0: both agree) and k-2 (p1: one of two) -> 3 of 4 answers.
    assert closed.figures is not None and closed.figures.agreed_share == pytest.approx(3 / 4)
    assert closed.figures.alpha == pytest.approx(6 / 11)
    with pytest.raises(Conflict):
        calibration.close(session, principal=seeded.lead, slug=SLUG, session_id=detail.id)


def test_reveal_needs_items_and_happens_once(session: Session, seeded: Seeded) -> None:
    detail = calibration.create_session(session, principal=seeded.lead, slug=SLUG, name="Empty", teams=["Vendor K"])
    with pytest.raises(Conflict):
        calibration.reveal(session, principal=seeded.lead, slug=SLUG, session_id=detail.id)
    session.rollback()
    calibration.add_items(session, principal=seeded.lead, slug=SLUG, session_id=detail.id, external_ids=["k-1"])
    calibration.reveal(session, principal=seeded.lead, slug=SLUG, session_id=detail.id)
    with pytest.raises(Conflict):
        calibration.reveal(session, principal=seeded.lead, slug=SLUG, session_id=detail.id)
    session.rollback()
    with pytest.raises(Conflict):
        calibration.add_items(session, principal=seeded.lead, slug=SLUG, session_id=detail.id, external_ids=["k-2"])


def test_random_items_with_disagreement_are_picked(session: Session, seeded: Seeded, operator: Principal) -> None:
    projects.add_members(session, principal=operator, slug=SLUG, emails=["cal-a1@example.org", "cal-a2@example.org"])
    first = annotation.next_task(session, principal=seeded.ann1, slug=SLUG)
    second = annotation.next_task(session, principal=seeded.ann2, slug=SLUG)
    assert first is not None and second is not None and first.external_id == second.external_id
    annotation.submit_pairwise(session, principal=seeded.ann1, assignment_id=first.assignment_id, choice="A")
    # The other annotator prefers the other response, whichever side it was shown on.
    same_text = second.responses[0].content == first.responses[0].content
    annotation.submit_pairwise(
        session, principal=seeded.ann2, assignment_id=second.assignment_id, choice="B" if same_text else "A"
    )
    assert len(set(session.execute(select(Judgment.verdict)).scalars())) == 2
    detail = calibration.create_session(session, principal=seeded.lead, slug=SLUG, name="R", teams=["Vendor K"])
    added = calibration.add_items(
        session, principal=seeded.lead, slug=SLUG, session_id=detail.id, random_disagreements=3
    )
    shown = calibration.get_session(session, principal=seeded.lead, slug=SLUG, session_id=detail.id)
    assert added == 1 and shown.external_ids == [first.external_id]


def test_blind_agreement_matches_a_hand_computed_example() -> None:
    table: list[list[str | None]] = [["p0", "p0", None], ["p0", "p1", "p1"], ["tie", "tie", "tie"], [None, "p1", None]]
    figures = blind_agreement(table)
    # Item 2 has pairs (p0,p1),(p0,p1),(p1,p1) -> 1/3 agree; items 1 and 3 agree fully; item 4 is unpairable.
    assert figures.percent_agreement == pytest.approx((1 + 1 / 3 + 1) / 3)
    assert figures.alpha is not None and -1 <= figures.alpha <= 1
    assert blind_agreement([["p0", None]]).alpha is None


def test_agreement_with_majority_counts_own_votes_against_the_item_majority() -> None:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    own = [JudgmentVote(1, 7, "p0", at), JudgmentVote(2, 7, "p0", at), JudgmentVote(3, 7, "p1", at)]
    everyone = [
        *own,
        JudgmentVote(1, 8, "p0", at),
        JudgmentVote(2, 8, "p1", at),
        JudgmentVote(2, 9, "p1", at),
        JudgmentVote(3, 8, "p0", at),
    ]
    # Item 1: majority p0 (hit); item 2: p1 (miss); item 3: tied 1-1 (left out).
    assert calibration.agreement_with_majority(own, everyone) == pytest.approx(1 / 2)
    assert calibration.agreement_with_majority([], everyone) is None


def test_production_agreement_before_and_after_the_reveal(
    session: Session, seeded: Seeded, operator: Principal
) -> None:
    projects.add_members(session, principal=operator, slug=SLUG, emails=["cal-a1@example.org", "cal-a2@example.org"])
    for who, choice in [(seeded.ann1, "A"), (seeded.ann2, "A")]:
        task = annotation.next_task(session, principal=who, slug=SLUG)
        assert task is not None
        annotation.submit_pairwise(session, principal=who, assignment_id=task.assignment_id, choice=choice)
    detail = _start(session, seeded, ["k-2"])
    revealed = calibration.reveal(
        session, principal=seeded.lead, slug=SLUG, session_id=detail.id, now=datetime.now(UTC) - timedelta(days=1)
    )
    assert revealed.figures is not None
    before, after = revealed.figures.before, revealed.figures.after
    assert before is not None and before.judgments == 0 and before.share is None
    verdicts = session.execute(select(Judgment.verdict)).scalars().all()
    assert after is not None and after.judgments == 2
    assert after.share == (1.0 if len(set(verdicts)) == 1 else None)
    assert revealed.figures.after_complete is False


def _judge_all(session: Session, seeded: Seeded, operator: Principal) -> None:
    projects.add_members(session, principal=operator, slug=SLUG, emails=["cal-a1@example.org"])
    while (task := annotation.next_task(session, principal=seeded.ann1, slug=SLUG)) is not None:
        annotation.submit_pairwise(session, principal=seeded.ann1, assignment_id=task.assignment_id, choice="A")


def test_calibration_items_are_left_out_of_exports_unless_asked(
    session: Session, seeded: Seeded, operator: Principal
) -> None:
    _judge_all(session, seeded, operator)
    detail = _start(session, seeded, ["k-2"])
    _answer_as(session, seeded.ann2, detail.id, "k-2", "p1")
    project = exporting.authorize_export(session, principal=seeded.lead, slug=SLUG)

    def exported(**options: Unpack[CalibrationExportOptions]) -> set[str]:
        request = exporting.resolve_request(
            session, project=project, request=exporting.ExportRequest(kind="dpo", provenance=True, **options)
        )
        return {str(row["external_id"]) for row in exporting.rows_for(session, project=project, request=request)}

    assert exported() == {"k-1", "k-3", "k-4", "k-5"}
    assert exported(include_calibration=True) == {"k-1", "k-2", "k-3", "k-4", "k-5"}


def test_calibration_answers_stay_out_of_the_quality_reports(
    session: Session, seeded: Seeded, operator: Principal
) -> None:
    _judge_all(session, seeded, operator)
    before = quality_reports.dashboard(session, principal=seeded.lead, slug=SLUG, query=quality_reports.report_query())
    detail = _start(session, seeded, ["k-1", "k-2"])
    for external_id in ("k-1", "k-2"):
        _answer_as(session, seeded.ann1, detail.id, external_id, "p1")
        _answer_as(session, seeded.ann2, detail.id, external_id, "p1")
    after = quality_reports.dashboard(session, principal=seeded.lead, slug=SLUG, query=quality_reports.report_query())
    assert (
        (after.judgments, after.annotators, after.items)
        == (before.judgments, before.annotators, before.items)
        == (
            5,
            1,
            5,
        )
    )


def test_make_gold_stores_the_agreed_answer_as_calibration_gold(session: Session, seeded: Seeded) -> None:
    detail = _start(session, seeded, ["k-1", "k-2"])
    _answer_as(session, seeded.ann1, detail.id, "k-1", "p1")
    revealed = calibration.reveal(session, principal=seeded.lead, slug=SLUG, session_id=detail.id)
    first, second = revealed.items
    with pytest.raises(Conflict) as no_answer:
        calibration.make_gold(
            session, principal=seeded.lead, slug=SLUG, session_id=detail.id, calibration_item_id=second.id
        )
    assert no_answer.value.code == "no_agreed_answer"
    session.rollback()
    calibration.agree(
        session,
        principal=seeded.lead,
        slug=SLUG,
        session_id=detail.id,
        calibration_item_id=first.id,
        submitted=VerdictInput(choice="B"),
        note="B declines the spam request.",
    )
    review = calibration.make_gold(
        session, principal=seeded.lead, slug=SLUG, session_id=detail.id, calibration_item_id=first.id
    )
    assert review.is_gold
    gold = session.execute(
        select(GoldAnswer.verdict, GoldAnswer.source, GoldAnswer.explanation)
        .join(Item, Item.id == GoldAnswer.item_id)
        .where(Item.external_id == "k-1")
    ).one()
    assert tuple(gold) == ("p1", "calibration", "B declines the spam request.")


def test_rubric_sessions_show_score_histograms_by_response_position(
    session: Session, seeded: Seeded, operator: Principal
) -> None:
    projects.create_project(
        session,
        principal=operator,
        slug="calib-rubric",
        name="Rubric",
        kind="rubric",
        options={"rubric": [{"name": "helpfulness", "scale": {"min": 1, "max": 3}}]},
    )
    importing.import_items(session, principal=operator, slug="calib-rubric", rows=[(1, native_item("r-1"))])
    detail = calibration.create_session(
        session, principal=seeded.lead, slug="calib-rubric", name="R", teams=["Vendor K"]
    )
    calibration.add_items(
        session, principal=seeded.lead, slug="calib-rubric", session_id=detail.id, external_ids=["r-1"]
    )
    # Both give Response 1 (position 0) a 3 and Response 2 a 1, whatever side they saw them on.
    for who in (seeded.ann1, seeded.ann2):
        task = calibration.my_task(session, principal=who, slug="calib-rubric", session_id=detail.id)
        assert task.task is not None and task.calibration_item_id is not None
        slot = session.scalars(select(CalibrationAnswer).where(CalibrationAnswer.id == task.task.assignment_id)).one()
        labels = [response.label for response in task.task.responses]
        scores = {
            labels[slot.shown_order.index(0)]: {"helpfulness": 3},
            labels[slot.shown_order.index(1)]: {"helpfulness": 1},
        }
        calibration.answer(
            session,
            principal=who,
            slug="calib-rubric",
            session_id=detail.id,
            calibration_item_id=task.calibration_item_id,
            submitted=VerdictInput(scores=scores),
        )
    revealed = calibration.reveal(session, principal=seeded.lead, slug="calib-rubric", session_id=detail.id)
    (item,) = revealed.items
    assert len(item.distribution) == 1 and item.distribution[0].count == 2
    histograms = {(h.criterion, h.position): [(c.value, c.count) for c in h.counts] for h in item.histograms}
    assert histograms == {
        ("helpfulness", 0): [("1", 0), ("2", 0), ("3", 2)],
        ("helpfulness", 1): [("1", 2), ("2", 0), ("3", 0)],
    }
