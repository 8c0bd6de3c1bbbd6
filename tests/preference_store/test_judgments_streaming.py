"""The streamed read of judged items: one project's judgments only, in id order, across batches."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.principal import Principal
from app.services import accounts, annotation, importing, projects
from preference_store.judgments import JudgmentFilter, iter_judged_items
from preference_store.models import Item, Judgment, Role
from preference_store.projects import get_project_by_slug
from tests.conftest import People, native_item

SLUGS = ("north", "south")


def _project_id(session: Session, slug: str) -> int:
    project = get_project_by_slug(session, slug=slug)
    assert project is not None
    return project.id


@pytest.fixture
def two_projects(session: Session, operator: Principal, people: People) -> dict[str, int]:
    """Two projects whose items were imported in turn (their ids interleave), each judged by two annotators."""
    for slug in SLUGS:
        projects.create_project(session, principal=operator, slug=slug, name=slug.title(), overlap=2)
    for number in range(1, 4):
        for slug in SLUGS:
            item = native_item(
                f"{slug}-{number}", prompt=f"{slug} question {number}?", a=f"{slug} A{number}", b=f"{slug} B{number}"
            )
            importing.import_items(session, principal=operator, slug=slug, rows=[(number, item)])
    emails = [people.make(f"annotator{n}@example.org", Role.ANNOTATOR) for n in (1, 2)]
    for slug in SLUGS:
        projects.add_members(session, principal=operator, slug=slug, emails=emails)
    for email, choice in zip(emails, ("A", "B"), strict=True):
        principal = accounts.principal_for_api_token(session, token=people.tokens[email], cache=accounts.TokenCache(0))
        assert principal is not None
        for slug in SLUGS:
            while (task := annotation.next_task(session, principal=principal, slug=slug)) is not None:
                annotation.submit_pairwise(
                    session, principal=principal, assignment_id=task.assignment_id, choice=choice
                )
    return {slug: _project_id(session, slug) for slug in SLUGS}


@pytest.mark.parametrize("batch_size", [1, 2, 500])
def test_each_project_reads_only_its_own_items_in_id_order_whatever_the_batch(
    session: Session, two_projects: dict[str, int], batch_size: int
) -> None:
    for slug, project_id in two_projects.items():
        items = list(iter_judged_items(session, project_id=project_id, batch_size=batch_size))
        assert [item.external_id for item in items] == [f"{slug}-{number}" for number in range(1, 4)]
        assert [item.item_id for item in items] == sorted(item.item_id for item in items)
        for item in items:
            assert len(item.payloads) == len(item.votes) == 2
            assert [payload["choice"] for payload in item.payloads] == ["A", "B"]
            assert item.messages[-1]["content"].startswith(slug)
            number = item.external_id[-1]
            assert [(r.position, r.content) for r in item.responses] == [
                (0, f"{slug} A{number}"),
                (1, f"{slug} B{number}"),
            ]


@pytest.mark.parametrize("batch_size", [1, 500])
def test_filters_hold_whether_a_batch_is_read_by_id_range_or_by_id_list(
    session: Session, two_projects: dict[str, int], batch_size: int
) -> None:
    north = two_projects["north"]
    north_ids = session.scalars(select(Item.id).where(Item.project_id == north).order_by(Item.id)).all()
    # The first and third north items lie four ids apart (south's items sit between): in one
    # batch of two they are read by id list, in batches of one by id range.
    kept = [north_ids[0], north_ids[2]]
    session.execute(
        update(Item).where(Item.id.in_(kept)).values(metadata_={"language": "en", "market": "TH", "category": "x"})
    )
    where = JudgmentFilter(markets=("TH",), guidelines_versions=(1,))
    items = list(iter_judged_items(session, project_id=north, batch_size=batch_size, where=where))
    assert [item.external_id for item in items] == ["north-1", "north-3"]
    assert [item.metadata["market"] for item in items] == ["TH", "TH"]
    for item in items:
        assert len(item.votes) == 2
        assert item.messages[-1]["content"] == f"north question {item.external_id[-1]}?"
        number = item.external_id[-1]
        assert [response.content for response in item.responses] == [f"north A{number}", f"north B{number}"]


def test_json_the_standard_library_wrote_but_orjson_refuses_reads_back(
    session: Session, two_projects: dict[str, int]
) -> None:
    south = two_projects["south"]
    judgment_id = session.scalar(select(func.min(Judgment.id)).where(Judgment.project_id == south))
    # Beyond 64 bits, and not a float either: orjson alone would read 2**70 + 1 as 1.1805916207174113e21.
    huge = 2**70 + 1
    payload = {"choice": "A", "count": huge, "below": -(2**63) - 1, "small": 12, "text": "0123456789" * 3}
    session.execute(update(Judgment).where(Judgment.id == judgment_id).values(payload=payload))
    first = next(iter(iter_judged_items(session, project_id=south)))
    assert first.payloads[0] == payload
    assert type(first.payloads[0]["count"]) is int


def test_leaving_the_stream_early_keeps_the_session_usable(session: Session, two_projects: dict[str, int]) -> None:
    stream = iter_judged_items(session, project_id=two_projects["north"], batch_size=1)
    assert next(stream).external_id == "north-1"
    stream.close()
    again = [item.external_id for item in iter_judged_items(session, project_id=two_projects["south"])]
    assert again == ["south-1", "south-2", "south-3"]
    assert session.scalar(select(func.count()).select_from(Judgment)) == 12
