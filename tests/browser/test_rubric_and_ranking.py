"""Rubric and ranking tasks in a real browser: keyboard only, drag and drop, stored payloads."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from app.services.verdicts import shown_labels
from tests.browser.doc_images import save_doc_image
from tests.browser.seeding import RANKING_ITEMS, RUBRIC_ITEMS, RUBRIC_OPTIONS, seed_live

if TYPE_CHECKING:
    from tests.browser.conftest import Annotator, LiveServer, PageEvents

pytestmark = pytest.mark.browser

LogIn = Callable[[Page, str, str], None]

TASK_DONE = """previous => {
  const task = document.querySelector('#task');
  return task !== null && task.dataset.assignment !== previous;
}"""


def _open(page: Page, log_in: LogIn, annotator: Annotator, slug: str) -> int:
    """Log in, open the project's task page and return the assignment it shows."""
    log_in(page, annotator.email, annotator.password)
    page.goto(f"/projects/{slug}/annotate")
    expect(page.locator("#task #judgment-form")).to_be_visible()
    page.wait_for_load_state("load")
    assignment = page.locator("#task").get_attribute("data-assignment")
    assert assignment and assignment.isdigit()
    return int(assignment)


def _submit(page: Page, assignment: int) -> None:
    page.wait_for_timeout(20)  # a moment of reading: active time is never zero
    page.keyboard.press("Enter")
    page.wait_for_function(TASK_DONE, arg=str(assignment))


def _positions(server: LiveServer, annotator: Annotator, assignment: int) -> tuple[dict[str, object], dict[str, int]]:
    """The stored payload of the one judgment, and each shown label's stored position."""
    ((judgment, row),) = server.judgments_by(annotator.id)
    assert row.id == assignment
    assert judgment.time_spent_ms is not None and judgment.time_spent_ms > 0
    return judgment.payload, dict(zip(shown_labels(len(row.shown_order)), row.shown_order, strict=True))


def _ranking_shown(page: Page) -> list[tuple[str, str, bool]]:
    """The ordered list as the annotator sees it: (label, rank number, tied with the one above)."""
    chips = page.locator("#ranking .ranking-order .rank-chip")
    return [
        (
            chips.nth(i).get_attribute("data-label") or "",
            chips.nth(i).locator(".rank").inner_text(),
            "tied" in (chips.nth(i).get_attribute("class") or ""),
        )
        for i in range(chips.count())
    ]


def test_rubric_scored_by_keyboard_only(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn
) -> None:
    options = {**RUBRIC_OPTIONS, "rubric_overall_choice": True}
    annotator = seed_live(
        live_server, slug="rubric-keys", kind="rubric", items=RUBRIC_ITEMS, annotator="rui@example.com", options=options
    )
    assignment = _open(page, log_in, annotator, "rubric-keys")
    current = page.locator("#rubric .criterion.current")
    expect(current).to_have_attribute("data-field", "score.A.Helpfulness")
    page.keyboard.press("?")  # the help overlay lists this kind's keys first
    expect(page.locator("#help-kind")).to_contain_text("Next criterion")
    page.keyboard.press("?")
    expect(page.locator("#help-dialog")).not_to_be_visible()

    # A: Helpfulness 4, Safe yes (2nd value), Tone warm (3rd); B: Helpfulness 2, Safe no.
    for key in ("4", "2", "3", "2", "1"):
        page.keyboard.press(key)
    expect(current).to_have_attribute("data-field", "score.B.Tone")
    page.keyboard.press("k")  # back to B's Safe: yes after all
    expect(current).to_have_attribute("data-field", "score.B.Safe")
    page.keyboard.press("2")
    page.keyboard.press("1")  # B: Tone cold
    page.keyboard.press("p")
    page.keyboard.press("j")
    expect(current).to_have_attribute("data-field", "score.B.Tone")
    page.keyboard.press("b")
    for name, value in (
        ("score.A.Helpfulness", "4"),
        ("score.A.Safe", "yes"),
        ("score.A.Tone", "warm"),
        ("score.B.Helpfulness", "2"),
        ("score.B.Safe", "yes"),
        ("score.B.Tone", "cold"),
        ("choice", "B"),
    ):
        expect(page.locator(f'input[name="{name}"][value="{value}"]')).to_be_checked()
    save_doc_image(page, "annotate-rubric.png")
    _submit(page, assignment)

    payload, position = _positions(live_server, annotator, assignment)
    assert payload["scores"] == {
        str(position["A"]): {"Helpfulness": 4, "Safe": True, "Tone": "warm"},
        str(position["B"]): {"Helpfulness": 2, "Safe": True, "Tone": "cold"},
    }
    assert payload["choice"] == "B"
    assert payload["preferred_position"] == position["B"]
    assert page_events.errors == []


def test_ranking_with_a_tie_by_keyboard_only(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn
) -> None:
    annotator = seed_live(
        live_server, slug="ranking-keys", kind="ranking", items=RANKING_ITEMS, annotator="rin@example.com"
    )
    assignment = _open(page, log_in, annotator, "ranking-keys")
    field = page.locator("#judgment-form input[name=ranking]")

    for key in ("c", "=", "a", "d", "b"):
        page.keyboard.press(key)
    expect(field).to_have_value("C,A;D;B")
    page.keyboard.press("Backspace")
    expect(field).to_have_value("C,A;D")
    expect(page.locator("#ranking .ranking-pool .rank-chip")).to_have_count(1)
    page.keyboard.press("b")
    expect(field).to_have_value("C,A;D;B")
    assert _ranking_shown(page) == [("C", "1", False), ("A", "1", True), ("D", "2", False), ("B", "3", False)]
    page.keyboard.press("0")
    expect(page.locator("input[name=all_bad]")).to_be_checked()
    page.keyboard.press("0")
    expect(page.locator("input[name=all_bad]")).not_to_be_checked()
    save_doc_image(page, "annotate-ranking.png")
    _submit(page, assignment)

    payload, position = _positions(live_server, annotator, assignment)
    assert payload["ranking"] == [sorted([position["C"], position["A"]]), [position["D"]], [position["B"]]]
    assert payload["all_bad"] is False
    assert page_events.errors == []


def test_ranking_reordered_by_drag_and_drop_and_a_tie_click(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn
) -> None:
    annotator = seed_live(
        live_server, slug="ranking-drag", kind="ranking", items=RANKING_ITEMS, annotator="dan@example.com"
    )
    assignment = _open(page, log_in, annotator, "ranking-drag")
    field = page.locator("#judgment-form input[name=ranking]")
    for key in ("a", "b", "c"):
        page.keyboard.press(key)
    expect(field).to_have_value("A;B;C")

    # D from the pool onto the top half of A: placed first.
    page.locator('#ranking .ranking-pool .rank-chip[data-label="D"]').drag_to(
        page.locator('#ranking .ranking-order .rank-chip[data-label="A"]'), target_position={"x": 30, "y": 3}
    )
    expect(field).to_have_value("D;A;B;C")
    # C onto the bottom half of D: between D and A.
    page.locator('#ranking .ranking-order .rank-chip[data-label="C"]').drag_to(
        page.locator('#ranking .ranking-order .rank-chip[data-label="D"]'), target_position={"x": 30, "y": 25}
    )
    expect(field).to_have_value("D;C;A;B")
    page.reload()  # the draft keeps the order, and the board shows it again
    expect(field).to_have_value("D;C;A;B")
    assert _ranking_shown(page) == [("D", "1", False), ("C", "2", False), ("A", "3", False), ("B", "4", False)]
    page.locator('#ranking .rank-chip[data-label="B"] .tie-toggle').click()
    expect(field).to_have_value("D;C;A,B")
    expect(page.locator('#ranking .rank-chip[data-label="B"] .tie-toggle')).to_have_attribute("aria-pressed", "true")
    page.evaluate("document.activeElement.blur()")  # Enter on the toggle would toggle it again
    _submit(page, assignment)

    payload, position = _positions(live_server, annotator, assignment)
    assert payload["ranking"] == [[position["D"]], [position["C"]], sorted([position["A"], position["B"]])]
    assert page_events.errors == []
