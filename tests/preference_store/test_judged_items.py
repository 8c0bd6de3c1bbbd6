"""Reading judged items back for exports: every judgment with who and when, and the filters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from app.principal import Principal
from app.services import accounts, annotation, importing, projects
from preference_store.base import utcnow
from preference_store.judgments import JudgmentFilter, iter_judged_items
from preference_store.models import Role
from preference_store.projects import get_project_by_slug
from preference_store.users import get_user_by_email
from tests.conftest import People, native_item

SLUG = "judged"
ITEMS = {
    "th-1": {"language": "th-TH", "market": "TH", "category": "gambling"},
    "th-2": {"language": "th", "market": "TH", "category": "spam"},
    "en-1": {"language": "en", "market": "US", "category": "gambling"},
}


@pytest.fixture
def judged(session: Session, operator: Principal, people: People) -> int:
    """Three items judged by two annotators of two teams, the second under guidelines v2, a day later."""
    projects.create_project(session, principal=operator, slug=SLUG, name="Judged", overlap=2)
    rows = []
    for number, (external_id, metadata) in enumerate(ITEMS.items(), start=1):
        item = native_item(external_id)
        item["metadata"] = metadata
        rows.append((number, item))
    importing.import_items(session, principal=operator, slug=SLUG, rows=rows)
    emails = [
        people.make("bkk@example.org", Role.ANNOTATOR, team="Vendor Bangkok"),
        people.make("jkt@example.org", Role.ANNOTATOR, team="Vendor Jakarta"),
    ]
    projects.add_members(session, principal=operator, slug=SLUG, emails=emails)
    now = utcnow()
    for day, email in enumerate(emails):
        if day == 1:
            projects.update_guidelines(session, principal=operator, slug=SLUG, text="# v2")
        principal = accounts.principal_for_api_token(session, token=people.tokens[email], cache=accounts.TokenCache(0))
        assert principal is not None
        when = now + timedelta(days=day)
        while (task := annotation.next_task(session, principal=principal, slug=SLUG, now=when)) is not None:
            choice = "A" if day == 0 else "tie"
            annotation.submit_pairwise(
                session, principal=principal, assignment_id=task.assignment_id, choice=choice, now=when
            )
    project = get_project_by_slug(session, slug=SLUG)
    assert project is not None
    return project.id


def _read(session: Session, project_id: int, where: JudgmentFilter | None = None) -> dict[str, list[str]]:
    items = iter_judged_items(session, project_id=project_id, batch_size=2, where=where)
    return {item.external_id: [vote.verdict for vote in item.votes] for item in items}


def test_every_judgment_comes_back_with_its_annotator_team_version_and_time(session: Session, judged: int) -> None:
    items = list(iter_judged_items(session, project_id=judged, batch_size=2))
    assert [item.external_id for item in items] == list(ITEMS)
    bangkok = get_user_by_email(session, email="bkk@example.org")
    jakarta = get_user_by_email(session, email="jkt@example.org")
    assert bangkok is not None and jakarta is not None
    for item in items:
        first, second = item.votes
        assert (first.annotator_id, first.team_id, first.guidelines_version) == (bangkok.id, bangkok.team_id, 1)
        assert (second.annotator_id, second.team_id, second.guidelines_version) == (jakarta.id, jakarta.team_id, 2)
        assert second.judged_at - first.judged_at >= timedelta(hours=23)
        assert second.verdict == "tie"
        assert item.annotator_ids == [vote.annotator_id for vote in item.votes]
        assert [payload["choice"] for payload in item.payloads] == ["A", "tie"]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (JudgmentFilter(languages=("th",)), ["th-1", "th-2"]),
        (JudgmentFilter(languages=("en-US",)), ["en-1"]),
        (JudgmentFilter(markets=("TH",), categories=("gambling",)), ["th-1"]),
        (JudgmentFilter(categories=("gambling", "spam")), ["th-1", "th-2", "en-1"]),
        (JudgmentFilter(markets=("VN",)), []),
    ],
)
def test_item_filters_keep_whole_items(
    session: Session, judged: int, where: JudgmentFilter, expected: list[str]
) -> None:
    read = _read(session, judged, where)
    assert list(read) == expected
    assert all(len(verdicts) == 2 for verdicts in read.values())


def test_judgment_filters_keep_only_matching_judgments(session: Session, judged: int) -> None:
    jakarta = get_user_by_email(session, email="jkt@example.org")
    assert jakarta is not None and jakarta.team_id is not None
    first_day = [verdict for verdicts in _read(session, judged).values() for verdict in verdicts[:1]]
    assert set(first_day) <= {"p0", "p1"}  # "A" as shown: the response in either stored position

    by_version = _read(session, judged, JudgmentFilter(guidelines_versions=(2,)))
    assert by_version == {external_id: ["tie"] for external_id in ITEMS}
    by_team = _read(session, judged, JudgmentFilter(team_ids=(jakarta.team_id,)))
    assert by_team == by_version
    tomorrow = utcnow() + timedelta(hours=12)
    assert _read(session, judged, JudgmentFilter(judged_from=tomorrow)) == by_version
    assert all(
        len(verdicts) == 1 for verdicts in _read(session, judged, JudgmentFilter(judged_until=tomorrow)).values()
    )
    combined = JudgmentFilter(languages=("th",), guidelines_versions=(1,))
    assert list(_read(session, judged, combined)) == ["th-1", "th-2"]
    assert _read(session, judged, JudgmentFilter(guidelines_versions=(3,))) == {}
