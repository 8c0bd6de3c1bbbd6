"""A calibration session in a real browser: a lead starts it, two annotators answer blind by keyboard,
the lead reveals, records an agreed answer with a note, makes the item gold and closes the session."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from app.services import accounts
from preference_store.models import CalibrationAnswer, GoldAnswer, Item, Role
from tests.browser.conftest import VIEWPORT
from tests.conftest import native_item

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer, PageEvents

pytestmark = pytest.mark.browser

SLUG = "calib-browser"
PASSWORD = "correct horse battery"
TEAM = "Vendor Calibra"
LogIn = Callable[[Page, str, str], None]


def _answer_all_by_keyboard(page: Page, key: str, rationale: str) -> None:
    """Answer the session's three items: a choice key, a rationale, Enter; htmx brings the next item."""
    for number in (1, 2, 3):
        expect(page.locator("#calibration-progress")).to_contain_text(f"Item {number} of 3")
        page.keyboard.press(key)
        page.keyboard.press("r")
        page.keyboard.type(f"{rationale} {number}")
        page.keyboard.press("Escape")
        page.keyboard.press("Enter")
    expect(page.locator("#calibration-done")).to_be_visible()


def test_lead_runs_a_calibration_session_end_to_end(
    page: Page, chromium: Browser, live_server: LiveServer, log_in: LogIn, page_events: PageEvents
) -> None:
    items = [native_item(f"cb-{n}", a=f"Answer A{n}", b=f"Answer B{n}") for n in (1, 2, 3)]
    live_server.seed_project(slug=SLUG, annotator="calib-member@example.com", items=items)
    with live_server.sessions() as session:
        accounts.create_user(session, email="calib-lead@example.com", name="Lia", role=Role.LEAD, password=PASSWORD)
        for email in ("calib-ann1@example.com", "calib-ann2@example.com"):
            accounts.create_user(
                session, email=email, name=email.split("@")[0], role=Role.ANNOTATOR, password=PASSWORD, team=TEAM
            )

    log_in(page, "calib-lead@example.com", PASSWORD)
    page.goto(f"/projects/{SLUG}/calibration")
    page.fill("#session-name", "December round")
    page.check(f"input[name=teams][value='{TEAM}']")
    page.fill("#session-items", "cb-1\ncb-2\ncb-3")
    with page.expect_navigation():
        page.click("#create-session")
    expect(page.locator("#session-state")).to_have_text("blind")
    session_url = page.url

    for email, key, rationale in [
        ("calib-ann1@example.com", "1", "first says A"),
        ("calib-ann2@example.com", "2", "second says B"),
    ]:
        annotator_context = chromium.new_context(base_url=live_server.url, viewport=VIEWPORT)
        annotator = annotator_context.new_page()
        annotator.on("pageerror", lambda error: page_events.errors.append(str(error)))
        log_in(annotator, email, PASSWORD)
        annotator.goto("/")
        with annotator.expect_navigation():
            annotator.click("#calibration-waiting a.calibration-link")
        # Blind: the first item shows no answer, nobody else's rationale either.
        expect(annotator.locator("input[name=choice]:checked")).to_have_count(0)
        expect(annotator.locator("#task")).not_to_contain_text("first says A")
        _answer_all_by_keyboard(annotator, key, rationale)
        # Reopening an item shows the annotator's own answer, to revise it.
        with annotator.expect_navigation():
            annotator.click("#calibration-items a >> nth=0")
        expect(annotator.locator("#rationale")).to_have_value(f"{rationale} 1")
        expect(
            annotator.locator("input[name=choice][value='A']" if key == "1" else "input[name=choice][value='B']")
        ).to_be_checked()
        annotator_context.close()

    with live_server.sessions() as session:
        answered = session.scalars(
            select(CalibrationAnswer.verdict).where(CalibrationAnswer.verdict.is_not(None))
        ).all()
    assert len(answered) == 6

    page.goto(session_url)
    expect(page.locator("#participants")).to_contain_text("3 / 3")
    with page.expect_navigation():
        page.click("#reveal")
    expect(page.locator("#session-state")).to_have_text("revealed")
    expect(page.locator("#figures")).to_be_visible()
    first = page.locator(".calibration-item").first
    expect(first.locator(".distribution tbody tr")).not_to_have_count(0)
    first_id = (first.get_attribute("id") or "").removeprefix("item-")

    with page.expect_navigation():
        page.click(f"#agree-{first_id}")
    page.keyboard.press("1")
    page.fill("#agree-note", "Response 1 answers the question.")
    with page.expect_navigation():
        page.click("#submit")
    agreed = page.locator(f"#agreed-{first_id}")
    expect(agreed).to_contain_text("Response 1 answers the question.")
    expect(agreed).to_contain_text("Preferred: Response 1")

    with page.expect_navigation():
        page.click(f"#make-gold-{first_id}")
    expect(page.locator(f"#gold-{first_id}")).to_be_visible()
    with page.expect_navigation():
        page.click("#close-session")
    expect(page.locator("#session-state")).to_have_text("closed")
    expect(page.locator("#agreed-share")).not_to_contain_text("kept when")

    with live_server.sessions() as session:
        gold = session.execute(
            select(GoldAnswer.source, Item.external_id)
            .join(Item, Item.id == GoldAnswer.item_id)
            .where(Item.project_id == select(Item.project_id).where(Item.external_id == "cb-1").scalar_subquery())
        ).all()
    assert [tuple(row) for row in gold] == [("calibration", "cb-1")]
    assert page_events.errors == []
