"""Clarifications in a real browser: ask from a task (task and draft kept), a lead answers, the asker reads it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.services import accounts
from preference_store.models import Clarification, Item, Role
from tests.conftest import native_item

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

    from tests.browser.conftest import LiveServer, PageEvents

pytestmark = pytest.mark.browser

SLUG = "clar-browser"
PASSWORD = "correct horse battery"
QUESTION = "Is a promo code in a username spam?"
ANSWER = "Only when the username links to a shop."
LogIn = Callable[[Page, str, str], None]


def test_annotator_asks_from_a_task_and_reads_the_leads_answer(
    page: Page, context: BrowserContext, live_server: LiveServer, log_in: LogIn, page_events: PageEvents
) -> None:
    asker = live_server.seed_project(
        slug=SLUG,
        annotator="asker@example.com",
        items=[native_item("clar-1"), native_item("clar-2")],
        guidelines="# Spam\nPromo codes in chat are spam.",
    )
    with live_server.sessions() as session:
        accounts.create_user(session, email="clar-lead@example.com", name="Lena", role=Role.LEAD, password=PASSWORD)

    log_in(page, asker.email, asker.password)
    page.goto(f"/projects/{SLUG}/annotate")
    task = page.locator("#task")
    assignment = task.get_attribute("data-assignment")
    page.keyboard.press("1")
    page.keyboard.press("r")
    page.keyboard.type("A is fine")
    page.keyboard.press("Escape")

    page.keyboard.press("m")
    expect(page.locator("#guidelines-panel")).to_be_visible()
    question = page.locator("#ask-question")
    expect(question).to_be_focused()
    question.type(QUESTION)
    question.press("Control+Enter")
    expect(page.locator("#ask-sent")).to_be_visible()
    expect(page.locator("#my-questions")).to_contain_text(QUESTION)

    expect(task).to_have_attribute("data-assignment", assignment or "")
    expect(page.locator('input[name="choice"][value="A"]')).to_be_checked()
    expect(page.locator("#rationale")).to_have_value("A is fine")
    draft = page.evaluate(f"localStorage.getItem('prefstack:draft:{assignment}')")
    assert draft is not None and "A is fine" in draft
    with live_server.sessions() as session:
        stored = session.execute(
            select(Clarification.question, Item.external_id).join(Item, Item.id == Clarification.item_id)
        ).all()
    assert [tuple(row) for row in stored] == [(QUESTION, task.get_attribute("data-external-id"))]

    lead_page = context.browser.new_context(base_url=live_server.url).new_page() if context.browser else None
    assert lead_page is not None
    log_in(lead_page, "clar-lead@example.com", PASSWORD)
    lead_page.goto("/")
    expect(lead_page.locator(f'.clarifications-link[data-slug="{SLUG}"] .badge')).to_have_text(re.compile("1"))
    lead_page.goto(f"/projects/{SLUG}/clarifications")
    card = lead_page.locator("#open-questions article.clarification")
    expect(card).to_contain_text(QUESTION)
    card.locator("textarea[name=answer]").fill(ANSWER)
    card.get_by_role("button", name="Answer").click()
    answered = lead_page.locator("#open-questions article.clarification-answered")
    expect(answered).to_contain_text(ANSWER)
    assert lead_page.url.endswith(f"/projects/{SLUG}/clarifications")
    lead_page.context.close()

    page.locator("#tab-guidelines").click()
    expect(page.locator("#guidelines-text")).to_be_visible()
    page.locator("#tab-clarifications").click()
    expect(page.locator("#my-questions")).to_contain_text(ANSWER)
    page.locator("#answers-q").fill("USERNAME")
    expect(page.locator("#clarification-answers")).to_contain_text(ANSWER)
    expect(task).to_have_attribute("data-assignment", assignment or "")
    assert page_events.errors == []
