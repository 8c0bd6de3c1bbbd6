"""Which side each response is shown on: random per lease, or drawn from a generator the caller seeds."""

from __future__ import annotations

import random

from sqlalchemy.orm import Session

from app.principal import Principal
from app.services import accounts, annotation, importing, projects
from tests.conftest import People, native_item

SLUG = "sides"
ITEMS = 12


def _annotators(session: Session, operator: Principal, people: People) -> list[Principal]:
    projects.create_project(session, principal=operator, slug=SLUG, name="Sides", overlap=2)
    rows = [(n, native_item(f"s{n:02d}", a=f"first {n}", b=f"second {n}")) for n in range(ITEMS)]
    importing.import_items(session, principal=operator, slug=SLUG, rows=rows)
    emails = [people.make(f"sides-{n}@example.org") for n in range(2)]
    projects.add_members(session, principal=operator, slug=SLUG, emails=emails)
    found = [
        accounts.principal_for_api_token(session, token=people.tokens[email], cache=accounts.TokenCache(0))
        for email in emails
    ]
    assert all(found)
    return [principal for principal in found if principal is not None]


def _sides(session: Session, who: Principal, shuffle: random.Random | None) -> dict[str, bool]:
    """Per item, whether its first response was shown on the left, working the queue to its end."""
    shown: dict[str, bool] = {}
    while (task := annotation.next_task(session, principal=who, slug=SLUG, shuffle=shuffle)) is not None:
        shown[task.external_id] = task.responses[0].content.startswith("first")
        annotation.submit_pairwise(session, principal=who, assignment_id=task.assignment_id, choice="A")
    return shown


def test_generators_seeded_alike_show_the_same_sides(session: Session, operator: Principal, people: People) -> None:
    first, second = _annotators(session, operator, people)

    one = _sides(session, first, random.Random("demo"))
    other = _sides(session, second, random.Random("demo"))

    assert len(one) == ITEMS
    assert one == other  # 1 in 4096 for two independent shuffles
    assert 0 < sum(one.values()) < ITEMS


def test_without_a_generator_sides_are_drawn_per_lease(session: Session, operator: Principal, people: People) -> None:
    first, _second = _annotators(session, operator, people)

    shown = _sides(session, first, None)

    assert len(shown) == ITEMS
    assert 0 < sum(shown.values()) < ITEMS  # all one side: 1 in 2048
