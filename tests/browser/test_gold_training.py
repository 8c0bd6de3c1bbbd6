"""A training project in a real browser: answer gold items by keyboard, read the feedback, go on."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from app.principal import command_line_principal
from app.services import gold
from app.services.verdicts import VerdictInput
from tests.browser.test_annotate_in_browser import item

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer, PageEvents

pytestmark = pytest.mark.browser
LogIn = Callable[[Page, str, str], None]
KEY_OF = {"A": "1", "B": "2"}


def _label_showing(page: Page, text: str) -> str:
    for label in ("A", "B"):
        if text in page.locator(f"#response-{label} .markdown.content").inner_text():
            return label
    raise AssertionError(f"no response shows {text!r}")


def test_trainee_answers_gold_by_keyboard_and_sees_feedback(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn
) -> None:
    items = [
        item("gold-1", "Which answer is polite?", "Please wait a moment.", "Shut up and wait."),
        item("gold-2", "Which answer is correct?", "Paris is the capital of France.", "Lyon is the capital of France."),
    ]
    annotator = live_server.seed_project(
        slug="training-keys", annotator="trainee@example.com", items=items, options={"purpose": "training"}
    )
    with live_server.sessions() as session:
        for external_id, why in (("gold-1", "Politeness *matters*."), ("gold-2", "Paris is the capital.")):
            gold.mark_gold(
                session,
                principal=command_line_principal(),
                slug="training-keys",
                external_id=external_id,
                verdict_input=VerdictInput(choice="A"),
                explanation=why,
            )

    log_in(page, annotator.email, annotator.password)
    page.goto(f"{live_server.url}/projects/training-keys/annotate")
    expect(page.locator("#task #judgment-form")).to_be_visible()
    page.wait_for_load_state("load")
    served_first = page.locator("#task").get_attribute("data-external-id")
    right_text = "Please wait a moment." if served_first == "gold-1" else "Paris is the capital of France."
    right = _label_showing(page, right_text)

    page.keyboard.press(KEY_OF[right])
    page.wait_for_timeout(20)
    page.keyboard.press("Enter")
    expect(page.locator("#gold-feedback")).to_be_visible()
    expect(page.locator("#gold-verdict")).to_have_text("Right")
    expect(page.locator("#gold-explanation")).to_be_visible()
    expect(page.locator("#gold-next")).to_be_focused()

    page.keyboard.press("n")
    expect(page.locator("#task #judgment-form")).to_be_visible()
    second = page.locator("#task").get_attribute("data-external-id")
    assert second != served_first
    right_text = "Please wait a moment." if second == "gold-1" else "Paris is the capital of France."
    right = _label_showing(page, right_text)
    wrong = "B" if right == "A" else "A"

    page.keyboard.press(KEY_OF[wrong])
    page.wait_for_timeout(20)
    page.keyboard.press("Enter")
    expect(page.locator("#gold-verdict")).to_have_text("Not quite")
    expect(page.locator("#gold-expected")).to_contain_text(f"{right} is better")
    expect(page.locator("#gold-given")).to_contain_text(f"{wrong} is better")
    expected_why = "Politeness matters." if second == "gold-1" else "Paris is the capital."
    expect(page.locator("#gold-explanation")).to_have_text(expected_why)

    page.keyboard.press("Enter")
    expect(page.locator("#task #queue-empty")).to_be_visible()
    assert page_events.errors == []
