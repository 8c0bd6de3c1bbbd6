"""The pages' icon in chromium: linked, served, allowed by the CSP, and no failed request in the console."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, Response

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer, PageEvents

pytestmark = pytest.mark.browser

LogIn = Callable[[Page, str, str], None]
ICON = "/static/favicon.svg"


def test_pages_show_their_icon_without_console_errors(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn
) -> None:
    annotator = live_server.seed_pairwise(
        slug="icon",
        annotator="icon@example.org",
        items=[
            {
                "external_id": "icon-1",
                "prompt": "Say hello.",
                "responses": [{"model": "m-a", "content": "Hello!"}, {"model": "m-b", "content": "Hi."}],
            }
        ],
    )
    console_errors: list[str] = []
    failed: list[str] = []
    icons: list[int] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(message.text)

    def on_response(response: Response) -> None:
        if response.status >= 400:
            failed.append(f"{response.status} {response.url}")
        if response.url.endswith(ICON):
            icons.append(response.status)

    page.on("console", on_console)
    page.on("response", on_response)
    log_in(page, annotator.email, annotator.password)
    for path in ("/", "/projects/icon/annotate"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
    assert page.locator("link[rel=icon]").get_attribute("href") == ICON
    assert icons and set(icons) == {200}, "chromium fetched the icon the pages link"
    assert failed == []
    assert console_errors == []
    assert page_events.errors == []


def test_browsers_asking_for_favicon_ico_are_sent_to_the_icon(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as http:
        asked = http.get("/favicon.ico")
        icon = http.get(asked.headers["location"])
    assert asked.status_code == 301
    assert asked.headers["location"] == ICON
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in icon.text
