"""Knowledge gaps and trends in a real browser: the matrix, a cell followed to its item, the trend charts."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from app.principal import command_line_principal
from tests.app.test_quality_gaps import seed_gaps_project
from tests.browser.doc_images import save_doc_image
from tests.conftest import People

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer, PageEvents

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
SLUG = "gaps-browser"
LogIn = Callable[[Page, str, str], None]


def test_lead_opens_a_weak_cell_and_reads_the_trends(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn
) -> None:
    with live_server.sessions() as session:
        seeded = seed_gaps_project(session, People(session), command_line_principal(), password=PASSWORD, slug=SLUG)
        session.commit()
    log_in(page, seeded.lead_email, PASSWORD)
    page.goto(f"/projects/{SLUG}/quality")
    page.click("#nav-gaps")
    expect(page).to_have_url(re.compile(rf"/projects/{SLUG}/quality/gaps$"))
    expect(page.locator("#gap-matrix tbody tr")).to_have_count(2)
    weak = page.locator('#gap-matrix tr[data-team="Blue"] td[data-column="spam"]')
    expect(weak.locator("summary")).to_contain_text("50.0")

    page.evaluate("window.__marker = 1")
    page.fill("#filter-min_judgments", "4")
    page.click("#quality-filters button[type=submit]")
    expect(page.locator("#gap-cells tr.gap-row").first).to_have_attribute("data-column", "spam")
    expect(page.locator("#gap-cells tr.gap-row.unranked")).to_have_count(0)
    assert page.evaluate("window.__marker") == 1  # htmx swapped the report, no page load

    weak = page.locator('#gap-matrix tr[data-team="Blue"] td[data-column="spam"]')
    weak.locator("summary").click()
    save_doc_image(page, "quality-gaps.png")
    weak.locator("a.cell-item", has_text="spam-us-1").click()
    expect(page).to_have_url(re.compile(rf"/projects/{SLUG}/items/spam-us-1$"))
    expect(page.locator("article.judgment")).to_have_count(4)

    page.goto(f"/projects/{SLUG}/quality/gaps")
    page.click("#nav-trends")
    expect(page).to_have_url(re.compile(rf"/quality/trends\?projects={SLUG}$"))
    expect(page.locator("#chart-trend-alpha canvas").first).to_be_visible()
    expect(page.locator("#chart-trend-judgments canvas").first).to_be_visible()
    expect(page.locator("#chart-trend-gold canvas").first).to_be_visible()
    expect(page.locator("#trend-volume tbody tr")).to_have_count(2)
    save_doc_image(page, "quality-trends.png")
    page.select_option("#filter-period", "day")
    page.click("#quality-filters button[type=submit]")
    expect(page.locator("#trend-volume tbody tr td.date").first).to_have_text("2026-11-03")
    expect(page.locator("#chart-trend-judgments canvas").first).to_be_visible()
    assert page_events.errors == []
