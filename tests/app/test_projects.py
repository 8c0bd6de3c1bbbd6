"""Projects: who sees which, and the progress leads see."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.principal import Principal
from app.services import accounts, annotation, importing, projects
from preference_store.models import Role
from tests.conftest import People, native_item


def test_leads_see_progress_of_every_project_and_annotators_only_their_own(
    session: Session, operator: Principal, people: People
) -> None:
    for slug, count in (("prog-one", 3), ("prog-two", 1)):
        projects.create_project(session, principal=operator, slug=slug, name=slug, overlap=2)
        importing.import_items(
            session, principal=operator, slug=slug, rows=[(n, native_item(f"{slug}-{n}")) for n in range(count)]
        )
    email = people.make("prog@example.org", Role.ANNOTATOR)
    projects.add_members(session, principal=operator, slug="prog-one", emails=[email])
    annotator = accounts.principal_for_api_token(session, token=people.tokens[email], cache=accounts.TokenCache(0))
    assert annotator is not None
    task = annotation.next_task(session, principal=annotator, slug="prog-one")
    assert task is not None
    annotation.submit_pairwise(session, principal=annotator, assignment_id=task.assignment_id, choice="B")

    seen_by_lead = {summary.slug: summary.progress for summary in projects.list_projects(session, principal=operator)}
    one, two = seen_by_lead["prog-one"], seen_by_lead["prog-two"]
    assert one is not None and two is not None
    assert (one.items, one.judgments, one.open_slots) == (3, 1, 5)
    assert (two.items, two.judgments, two.open_slots) == (1, 0, 2)

    seen_by_annotator = projects.list_projects(session, principal=annotator)
    assert [summary.slug for summary in seen_by_annotator] == ["prog-one"]
    assert seen_by_annotator[0].progress is None
