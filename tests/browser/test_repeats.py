"""A repeat in a real browser: the same page as any task, the responses swapped, the answer kept apart."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from app.principal import AuthMethod, Principal, command_line_principal
from app.services import annotation, projects
from preference_store import users as user_store
from preference_store.models import Judgment, RepeatAssignment
from tests.browser.test_annotate_in_browser import item

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser
LogIn = Callable[[Page, str, str], None]
SLUG = "repeats-browser"


def _shown(page: Page) -> list[str]:
    return [page.locator(f"#response-{label} .markdown.content").inner_text() for label in ("A", "B")]


def test_a_repeat_is_served_like_any_task_with_the_sides_swapped(
    live_server: LiveServer, page: Page, log_in: LogIn
) -> None:
    items = [item(f"rep-{n}", f"Is reply {n} polite?", f"Reply one of {n}.", f"Reply two of {n}.") for n in range(30)]
    annotator = live_server.seed_project(
        slug=SLUG,
        annotator="repeater@example.com",
        items=items,
        overlap=2,
        options={"quality": {"repeat_rate": 0.2, "repeat_after": 1}},
    )
    helper = live_server.create_annotator("repeat-helper@example.com")
    with live_server.sessions() as session:
        projects.add_members(session, principal=command_line_principal(), slug=SLUG, emails=[helper.email])
        user = user_store.get_user_by_email(session, email=helper.email)
        assert user is not None
        for _ in range(5):
            helper_task = annotation.next_task(session, principal=Principal(user, AuthMethod.SESSION), slug=SLUG)
            assert helper_task is not None
            annotation.submit_pairwise(
                session,
                principal=Principal(user, AuthMethod.SESSION),
                assignment_id=helper_task.assignment_id,
                choice="A",
            )

    log_in(page, annotator.email, annotator.password)
    page.goto(f"{live_server.url}/projects/{SLUG}/annotate")
    task = page.locator("#task")
    first_seen: dict[str, list[str]] = {}
    repeated: str | None = None
    for _ in range(30):
        expect(page.locator("#task #judgment-form")).to_be_visible()
        external_id = task.get_attribute("data-external-id") or ""
        if external_id in first_seen:
            repeated = external_id
            break
        first_seen[external_id] = _shown(page)
        assignment = task.get_attribute("data-assignment") or ""
        page.keyboard.press("1")
        page.wait_for_timeout(20)
        page.keyboard.press("Enter")
        expect(task).not_to_have_attribute("data-assignment", assignment)
    assert repeated is not None, "no repeat within 30 tasks"
    assert _shown(page) == list(reversed(first_seen[repeated]))
    assignment = task.get_attribute("data-assignment") or ""
    page.keyboard.press("2")
    page.wait_for_timeout(20)
    page.keyboard.press("Enter")
    expect(task).not_to_have_attribute("data-assignment", assignment)
    with live_server.sessions() as session:
        answered = session.scalars(
            select(RepeatAssignment).where(
                RepeatAssignment.annotator_id == annotator.id, RepeatAssignment.public_id == int(assignment)
            )
        ).one()
        assert answered.verdict is not None
        judged = session.scalar(select(func.count()).select_from(Judgment).where(Judgment.annotator_id == annotator.id))
        assert judged == len(first_seen)
