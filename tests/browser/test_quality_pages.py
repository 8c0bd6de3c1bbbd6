"""Quality pages in a real browser: the dashboard's chart, a team filter, a scorecard flag followed to its item."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from app.principal import command_line_principal
from tests.app.test_quality_reports import EXTERNAL_IDS, SLUG, seed_quality_project
from tests.browser.doc_images import save_doc_image
from tests.conftest import People

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer, PageEvents

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
LogIn = Callable[[Page, str, str], None]


def test_lead_reads_the_dashboard_filters_by_team_and_follows_a_flag_to_the_item(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn
) -> None:
    with live_server.sessions() as session:
        seeded = seed_quality_project(session, People(session), command_line_principal(), password=PASSWORD)
    log_in(page, seeded.lead_email, PASSWORD)
    page.goto("/")
    page.locator(f'a.quality-link[data-slug="{SLUG}"]').click()
    expect(page).to_have_url(re.compile(rf"/projects/{SLUG}/quality$"))
    expect(page.locator("#chart-agreement canvas").first).to_be_visible()
    expect(page.locator("#chart-volume canvas").first).to_be_visible()
    expect(page.locator(".summary")).to_contain_text("64")
    save_doc_image(page, "quality-dashboard.png")

    page.evaluate("window.__marker = 1")
    page.select_option("#filter-teams", "Vendor Two")
    page.select_option("#filter-group_by", "team")
    page.click("#quality-filters button[type=submit]")
    expect(page.locator("#groups tr[data-group]")).to_have_count(1)
    expect(page.locator("#groups tr[data-group]")).to_have_attribute("data-group", "Vendor Two")
    expect(page.locator(".summary")).to_contain_text("32")
    expect(page).to_have_url(re.compile(r"teams=Vendor(\+|%20)Two"))
    assert page.evaluate("window.__marker") == 1  # htmx swapped the report, no page load
    expect(page.locator("#chart-agreement canvas").first).to_be_visible()

    page.click("#nav-annotators")
    dave = page.locator('tr.scorecard[data-annotator="dave"]')
    expect(dave).to_have_class(re.compile(r"\bflagged\b"))
    dave.locator('details[data-flag="position_bias"] summary').click()
    save_doc_image(page, "quality-annotators.png")
    dave.locator("a.flag-item", has_text=EXTERNAL_IDS[3]).click()
    expect(page).to_have_url(re.compile(rf"/projects/{SLUG}/items/{EXTERNAL_IDS[3]}$"))
    expect(page.locator("article.judgment")).to_have_count(4)
    assert page_events.errors == []
