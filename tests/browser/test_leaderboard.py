"""The leaderboard and model-vs-human pages in a real browser: chart, tables, a judge's board, disagreements."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from app.principal import command_line_principal
from tests.app.test_leaderboard import SLUG, add_judge_verdicts, seed_board
from tests.browser.doc_images import save_doc_image
from tests.conftest import People

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer, PageEvents

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
LogIn = Callable[[Page, str, str], None]


def test_lead_reads_the_leaderboard_switches_to_a_judge_and_lists_its_disagreements(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn
) -> None:
    operator = command_line_principal()
    with live_server.sessions() as session:
        seeded = seed_board(session, People(session), operator, password=PASSWORD)
        add_judge_verdicts(session, seeded, operator)
    log_in(page, seeded.lead_email, PASSWORD)
    page.goto("/")
    page.locator(f'a.leaderboard-link[data-slug="{SLUG}"]').click()
    expect(page).to_have_url(re.compile(rf"/projects/{SLUG}/leaderboard$"))
    expect(page.locator("#chart-board-0 canvas").first).to_be_visible()
    expect(page.locator("#ratings-0 tbody tr")).to_have_count(3)
    expect(page.locator("#ratings-0 tbody tr").first).to_have_attribute("data-model", "alpha")
    expect(page.locator("#win-rate-0")).to_be_visible()
    save_doc_image(page, "leaderboard.png")

    page.evaluate("window.__marker = 1")
    page.select_option("#filter-judge", "llm/judge-a")
    page.select_option("#filter-group_by", "category")
    page.click("#quality-filters button[type=submit]")
    expect(page.locator("section.board")).to_have_count(2)
    expect(page.locator("#chart-board-1 canvas").first).to_be_visible()
    assert page.evaluate("window.__marker") == 1  # htmx swapped the report, no page load

    page.click("#nav-judges")
    expect(page).to_have_url(re.compile(rf"/projects/{SLUG}/quality/judges$"))
    judge = page.locator('section.judge[data-judge="judge-a"]')
    expect(judge.locator("tr.disagreement")).to_have_count(3)
    save_doc_image(page, "quality-judges.png")
    judge.locator('tr.disagreement[data-item="lb-2"] a').click()
    expect(page).to_have_url(re.compile(rf"/projects/{SLUG}/items/lb-2$"))
    assert page_events.errors == []
