"""Policy clarifications: asking, answering, dismissing, searching, who sees what, absorbing."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.principal import Principal
from app.services import accounts, clarifications, importing, projects
from app.services.clarifications import ClarificationFilters, clarification_filters
from preference_store.models import Clarification, Role
from tests.conftest import People, native_item

SLUG = "clarify"


@dataclass(frozen=True, slots=True)
class Seeded:
    lead: Principal
    annotator: Principal
    other_annotator: Principal
    outsider: Principal


def _principal(session: Session, people: People, email: str) -> Principal:
    principal = accounts.principal_for_api_token(session, token=people.tokens[email], cache=accounts.TokenCache(0))
    assert principal is not None
    return principal


@pytest.fixture
def seeded(session: Session, operator: Principal, people: People) -> Seeded:
    projects.create_project(session, principal=operator, slug=SLUG, name="Clarify", guidelines="# v1")
    projects.create_project(session, principal=operator, slug="clarify-other", name="Other")
    importing.import_items(session, principal=operator, slug=SLUG, rows=[(1, native_item("c-1"))])
    importing.import_items(session, principal=operator, slug="clarify-other", rows=[(1, native_item("o-1"))])
    emails = [
        people.make("clar-lead@example.org", Role.LEAD),
        people.make("clar-ann@example.org"),
        people.make("clar-ann2@example.org"),
        people.make("clar-out@example.org"),
    ]
    projects.add_members(session, principal=operator, slug=SLUG, emails=emails[1:3])
    projects.add_members(session, principal=operator, slug="clarify-other", emails=[emails[3]])
    lead, annotator, other, outsider = (_principal(session, people, email) for email in emails)
    return Seeded(lead=lead, annotator=annotator, other_annotator=other, outsider=outsider)


def _stored(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(Clarification)).scalar_one())


def test_ask_from_an_item_records_the_item_asker_and_version(session: Session, seeded: Seeded) -> None:
    asked = clarifications.ask(
        session, principal=seeded.annotator, slug=SLUG, question="  Is sarcasm spam?  ", external_id="c-1"
    )
    assert (asked.question, asked.item_external_id, asked.asked_by) == ("Is sarcasm spam?", "c-1", "clar-ann")
    assert (asked.state, asked.guidelines_version, asked.answer) == ("open", 1, None)


def test_submitting_the_same_question_twice_stores_it_once(session: Session, seeded: Seeded) -> None:
    first = clarifications.ask(session, principal=seeded.annotator, slug=SLUG, question="Is sarcasm spam?")
    second = clarifications.ask(session, principal=seeded.annotator, slug=SLUG, question="Is sarcasm spam? ")
    assert first.id == second.id
    assert _stored(session) == 1
    clarifications.ask(session, principal=seeded.other_annotator, slug=SLUG, question="Is sarcasm spam?")
    clarifications.ask(session, principal=seeded.annotator, slug=SLUG, question="Is irony spam?")
    assert _stored(session) == 3


def test_ask_checks_membership_item_length_and_version(session: Session, seeded: Seeded) -> None:
    with pytest.raises(NotFound):
        clarifications.ask(session, principal=seeded.outsider, slug=SLUG, question="May I ask here?")
    session.rollback()
    with pytest.raises(NotFound) as not_here:
        clarifications.ask(session, principal=seeded.annotator, slug=SLUG, question="About o-1?", external_id="o-1")
    assert not_here.value.code == "item_not_found"
    session.rollback()
    with pytest.raises(InvalidInput) as short:
        clarifications.ask(session, principal=seeded.annotator, slug=SLUG, question=" ok ")
    assert short.value.code == "question_too_short"
    with pytest.raises(InvalidInput) as long:
        clarifications.ask(
            session, principal=seeded.annotator, slug=SLUG, question="x" * (clarifications.MAX_QUESTION_CHARS + 1)
        )
    assert long.value.code == "question_too_long"
    with pytest.raises(InvalidInput) as version:
        clarifications.ask(session, principal=seeded.annotator, slug=SLUG, question="Which one?", guidelines_version=2)
    assert version.value.code == "invalid_version"
    session.rollback()
    assert _stored(session) == 0


def test_lead_answers_edits_and_dismisses(session: Session, seeded: Seeded) -> None:
    first = clarifications.ask(session, principal=seeded.annotator, slug=SLUG, question="Is sarcasm spam?")
    second = clarifications.ask(session, principal=seeded.annotator, slug=SLUG, question="Duplicate of the above")
    answered = clarifications.answer(
        session, principal=seeded.lead, slug=SLUG, clarification_id=first.id, text="No, judge the intent."
    )
    assert (answered.state, answered.answer, answered.answered_by) == ("answered", "No, judge the intent.", "clar-lead")
    edited = clarifications.answer(
        session, principal=seeded.lead, slug=SLUG, clarification_id=first.id, text="No: judge the intent."
    )
    assert edited.answer == "No: judge the intent."
    dismissed = clarifications.dismiss(session, principal=seeded.lead, slug=SLUG, clarification_id=second.id)
    assert (dismissed.state, dismissed.answer) == ("dismissed", None)
    with pytest.raises(Conflict):
        clarifications.dismiss(session, principal=seeded.lead, slug=SLUG, clarification_id=first.id)
    session.rollback()
    assert clarifications.open_count(session, principal=seeded.lead, slug=SLUG) == 0


def test_annotator_cannot_answer_dismiss_or_list_everything(session: Session, seeded: Seeded) -> None:
    asked = clarifications.ask(session, principal=seeded.annotator, slug=SLUG, question="Is sarcasm spam?")
    with pytest.raises(PermissionDenied):
        clarifications.answer(session, principal=seeded.annotator, slug=SLUG, clarification_id=asked.id, text="Yes")
    with pytest.raises(PermissionDenied):
        clarifications.dismiss(session, principal=seeded.annotator, slug=SLUG, clarification_id=asked.id)
    with pytest.raises(PermissionDenied):
        clarifications.list_all(session, principal=seeded.annotator, slug=SLUG, filters=ClarificationFilters())
    with pytest.raises(PermissionDenied):
        clarifications.open_count(session, principal=seeded.annotator, slug=SLUG)


def test_annotators_see_their_own_questions_and_only_answered_ones_of_others(session: Session, seeded: Seeded) -> None:
    mine = clarifications.ask(session, principal=seeded.annotator, slug=SLUG, question="My open question")
    theirs_open = clarifications.ask(session, principal=seeded.other_annotator, slug=SLUG, question="Their open one")
    theirs = clarifications.ask(session, principal=seeded.other_annotator, slug=SLUG, question="Their answered one")
    clarifications.answer(session, principal=seeded.lead, slug=SLUG, clarification_id=theirs.id, text="Answer")

    assert [c.id for c in clarifications.my_questions(session, principal=seeded.annotator, slug=SLUG)] == [mine.id]
    log = clarifications.answered_log(session, principal=seeded.annotator, slug=SLUG)
    assert [c.id for c in log] == [theirs.id]
    assert theirs_open.id not in [c.id for c in log]
    open_only = clarification_filters(state="open")
    assert clarifications.answered_log(session, principal=seeded.annotator, slug=SLUG, filters=open_only) == []
    with pytest.raises(NotFound):
        clarifications.answered_log(session, principal=seeded.outsider, slug=SLUG)


def test_search_is_case_insensitive_and_takes_wildcards_literally(session: Session, seeded: Seeded) -> None:
    percent = clarifications.ask(session, principal=seeded.annotator, slug=SLUG, question="Is 100% sure enough?")
    underscore = clarifications.ask(session, principal=seeded.annotator, slug=SLUG, question="What is snake_case?")
    plain = clarifications.ask(session, principal=seeded.annotator, slug=SLUG, question="Is 1000 sure enough?")
    answered = clarifications.ask(session, principal=seeded.annotator, slug=SLUG, question="Question about tone")
    clarifications.answer(session, principal=seeded.lead, slug=SLUG, clarification_id=answered.id, text="Mind SARCASM")

    def found(q: str, **kwargs: object) -> list[int]:
        filters = clarification_filters(q=q, **kwargs)  # type: ignore[arg-type]
        return [c.id for c in clarifications.list_all(session, principal=seeded.lead, slug=SLUG, filters=filters)]

    assert found("0%") == [percent.id]
    assert found("e_c") == [underscore.id]
    assert found("SURE enough") == [plain.id, percent.id]
    assert found("sarcasm") == [answered.id]
    assert found("sarcasm", state="open") == []
    assert found("sure", state="open", guidelines_version=1) == [plain.id, percent.id]
    assert found("sure", guidelines_version=2) == []


def test_absorbing_links_answered_questions_to_a_later_version(session: Session, seeded: Seeded) -> None:
    answered = clarifications.ask(session, principal=seeded.annotator, slug=SLUG, question="Is sarcasm spam?")
    still_open = clarifications.ask(session, principal=seeded.annotator, slug=SLUG, question="Is irony spam?")
    clarifications.answer(session, principal=seeded.lead, slug=SLUG, clarification_id=answered.id, text="No.")
    with pytest.raises(InvalidInput) as too_early:
        clarifications.absorb(session, principal=seeded.lead, slug=SLUG, clarification_ids=[answered.id], version=1)
    assert too_early.value.code == "version_not_later"
    session.rollback()
    projects.update_guidelines(session, principal=seeded.lead, slug=SLUG, text="# v2: sarcasm is not spam")
    with pytest.raises(InvalidInput) as not_answered:
        clarifications.absorb(session, principal=seeded.lead, slug=SLUG, clarification_ids=[still_open.id], version=2)
    assert not_answered.value.code == "clarification_not_answered"
    session.rollback()
    with pytest.raises(PermissionDenied):
        clarifications.absorb(
            session, principal=seeded.annotator, slug=SLUG, clarification_ids=[answered.id], version=2
        )

    [absorbed] = clarifications.absorb(
        session, principal=seeded.lead, slug=SLUG, clarification_ids=[answered.id], version=2
    )
    assert absorbed.absorbed_in_version == 2
    by_version = clarifications.answered_log(
        session, principal=seeded.annotator, slug=SLUG, filters=clarification_filters(guidelines_version=2)
    )
    assert [c.id for c in by_version] == [answered.id]


def test_ids_of_another_project_are_not_found(session: Session, seeded: Seeded) -> None:
    elsewhere = clarifications.ask(session, principal=seeded.outsider, slug="clarify-other", question="Other project?")
    with pytest.raises(NotFound):
        clarifications.answer(session, principal=seeded.lead, slug=SLUG, clarification_id=elsewhere.id, text="No")
    session.rollback()
    with pytest.raises(NotFound):
        clarifications.dismiss(session, principal=seeded.lead, slug=SLUG, clarification_id=elsewhere.id)
    session.rollback()
    projects.update_guidelines(session, principal=seeded.lead, slug=SLUG, text="# v2")
    with pytest.raises(NotFound):
        clarifications.absorb(session, principal=seeded.lead, slug=SLUG, clarification_ids=[elsewhere.id], version=2)
