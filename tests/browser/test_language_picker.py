"""The interface language picker in a real browser: picking a language reloads the page in it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer, PageEvents

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).parent / "screenshots"
LogIn = Callable[[Page, str, str], None]


def test_picking_thai_reloads_the_page_in_thai_and_sticks(
    page: Page, live_server: LiveServer, log_in: LogIn, page_events: PageEvents
) -> None:
    annotator = live_server.create_annotator("picker@example.org")
    log_in(page, annotator.email, annotator.password)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    picker = page.locator("#language-picker select")
    expect(picker.locator("option")).to_have_text(["English", "ไทย", "Bahasa Indonesia", "Tiếng Việt"])

    with page.expect_navigation():
        picker.select_option("th")  # htmx posts on change; the answer reloads the page
    expect(page.locator("html")).to_have_attribute("lang", "th")
    expect(page.locator("h1")).to_have_text("โครงการ")
    expect(page.locator("#language-picker select")).to_have_value("th")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "language-picker-thai.png"))

    page.goto("/")
    expect(page.locator("button", has_text="ออกจากระบบ")).to_be_visible()
    assert page_events.errors == []
