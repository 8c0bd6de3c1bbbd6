"""The annotation pages in a real browser: login, the keyboard loop, hostile model output."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Frame, Page, expect

from preference_store.models import AssignmentState

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer, PageEvents

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).parent / "screenshots"
KEY_TO_CHOICE = {"1": "A", "2": "B", "3": "tie", "4": "both_bad"}
LogIn = Callable[[Page, str, str], None]

NEXT_TASK_SHOWN = """previous => {
  const task = document.querySelector('#task');
  return task !== null && (task.dataset.assignment !== previous || task.querySelector('#queue-empty') !== null);
}"""


def item(external_id: str, prompt: str, a: str, b: str) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "prompt": prompt,
        "responses": [{"model": "m-a", "content": a}, {"model": "m-b", "content": b}],
        "metadata": {"language": "en"},
    }


THREE_ITEMS = [
    item(
        "kb-1",
        "How do I reverse a list in Python?",
        "Use slicing:\n\n```python\nitems[::-1]\n```\n\nThis returns a **new** list.",
        "Call `items.reverse()`; it reverses *in place* and returns `None`.",
    ),
    item(
        "kb-2",
        "Name three primary colours.",
        "- red\n- yellow\n- blue",
        "Red, green and blue are the additive primaries.",
    ),
    item(
        "kb-3",
        "Is it safe to mix bleach and ammonia?",
        "No. Mixing them releases toxic chloramine vapours.",
        "Yes, it makes a stronger cleaner.",
    ),
]


def test_annotator_logs_in_and_judges_three_items_by_keyboard_without_page_loads(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn
) -> None:
    annotator = live_server.seed_pairwise(slug="keyboard-loop", annotator="kim@example.com", items=THREE_ITEMS)
    main_frame_loads: list[str] = []

    def on_navigated(frame: Frame) -> None:
        if frame == page.main_frame:
            main_frame_loads.append(frame.url)

    page.on("framenavigated", on_navigated)

    log_in(page, annotator.email, annotator.password)
    expect(page).to_have_url(re.compile(r"/$"))
    with page.expect_navigation():
        page.click("a.project-link[data-slug=keyboard-loop]")
    expect(page).to_have_url(re.compile(r"/projects/keyboard-loop/annotate$"))
    expect(page.locator("#task #judgment-form")).to_be_visible()
    page.wait_for_load_state("load")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "annotate.png"))
    page.evaluate("window.__marker = 1")
    loads_before = len(main_frame_loads)

    keys = ["1", "2", "3"]
    shown: list[int] = []
    for number, key in enumerate(keys, start=1):
        current = page.locator("#task").get_attribute("data-assignment")
        assert current and current.isdigit()
        shown.append(int(current))
        page.keyboard.press(key)
        expect(page.locator(f"input[name=choice][value={KEY_TO_CHOICE[key]}]")).to_be_checked()
        page.wait_for_timeout(20)  # the annotator reads for a moment: active time is never zero
        page.keyboard.press("Enter")
        page.wait_for_function(NEXT_TASK_SHOWN, arg=current)
        if number < len(keys):
            expect(page.locator("#task #judgment-form")).to_be_visible()
            expect(page.locator("input[name=choice]:checked")).to_have_count(0)
        else:
            expect(page.locator("#task #queue-empty")).to_be_visible()

    assert page.evaluate("window.__marker") == 1
    assert len(main_frame_loads) == loads_before, main_frame_loads[loads_before:]
    expect(page).to_have_url(re.compile(r"/projects/keyboard-loop/annotate$"))
    assert len(set(shown)) == 3
    assert page_events.errors == []

    stored = live_server.judgments_by(annotator.id)
    assert [row.id for _, row in stored] == sorted(shown)
    assert len({judgment.item_id for judgment, _ in stored}) == 3
    by_assignment = {row.id: (judgment, row) for judgment, row in stored}
    for assignment_id, key in zip(shown, keys, strict=True):
        judgment, assignment = by_assignment[assignment_id]
        choice = KEY_TO_CHOICE[key]
        assert judgment.payload["choice"] == choice
        expected_position = {"A": assignment.shown_order[0], "B": assignment.shown_order[1]}.get(choice)
        assert judgment.payload["preferred_position"] == expected_position
        assert judgment.time_spent_ms is not None and judgment.time_spent_ms > 0
        assert judgment.item_id == assignment.item_id
        assert assignment.state is AssignmentState.SUBMITTED


HOSTILE_PROMPT = (
    "Summarise this page for me.\n\n<iframe src=javascript:window.__xss=5></iframe>\n\n"
    '<iframe src="javascript:top.__xss=6"></iframe>'  # a javascript: frame runs in its own window
)
HOSTILE_A = "\n\n".join(
    [
        "Sure! <script>window.__xss=1</script>",
        '<img src=x onerror="window.__xss=2">',
        "[click](javascript:window.__xss=3)",
        "<svg onload=window.__xss=4></svg>",
        "[docs](https://example.com/docs)",
    ]
)
HOSTILE_B = "\n\n".join(
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">raw link</a>',
        "[mixed case](JaVaScRiPt:alert(1))",
        "[entity](&#106;avascript:alert(1))",
        "<javascript:alert(1)>",
        "<details open ontoggle=alert(1)>x</details>",
        "`<script>alert(1)</script>` in code",
    ]
)


def test_hostile_response_does_not_run(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn
) -> None:
    annotator = live_server.seed_pairwise(
        slug="hostile-output",
        annotator="hal@example.com",
        items=[item("xss-1", HOSTILE_PROMPT, HOSTILE_A, HOSTILE_B)],
    )
    log_in(page, annotator.email, annotator.password)
    page.goto("/projects/hostile-output/annotate")
    page.wait_for_load_state("networkidle")  # broken images and frames would have fired by now

    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page_events.dialogs == []
    assert page_events.errors == []
    expect(page.locator("#task #judgment-form")).to_be_visible()
    untrusted = ".response, .conversation"
    for tag in ("script", "img", "iframe", "svg", "details", "body", "object", "embed"):
        assert page.locator(f":is({untrusted}) {tag}").count() == 0, tag
    elements_with_handlers = page.evaluate(
        """selector => [...document.querySelectorAll(selector)].flatMap(root => [...root.querySelectorAll('*')])
            .filter(el => [...el.attributes].some(a => a.name.toLowerCase().startsWith('on') || a.name === 'style'))
            .map(el => el.outerHTML)""",
        untrusted,
    )
    assert elements_with_handlers == []
    hrefs = page.evaluate(
        "selector => [...document.querySelectorAll(selector)].flatMap(root => [...root.querySelectorAll('a')])"
        ".map(a => a.getAttribute('href'))",
        untrusted,
    )
    assert hrefs == ["https://example.com/docs"]
    assert page.locator(".response a[href='https://example.com/docs']").get_attribute("rel") == (
        "noopener noreferrer nofollow"
    )

    responses = page.locator(".responses")
    expect(responses).to_contain_text("<script>window.__xss=1</script>")
    expect(responses).to_contain_text('<img src=x onerror="window.__xss=2">')
    expect(responses).to_contain_text("<svg onload=window.__xss=4></svg>")
    expect(responses).to_contain_text("<script>alert(1)</script>")
    expect(page.locator(".conversation")).to_contain_text("<iframe src=javascript:window.__xss=5></iframe>")

    page.keyboard.press("1")
    page.keyboard.press("Enter")
    expect(page.locator("#task #queue-empty")).to_be_visible()
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page_events.dialogs == []


def test_login_with_wrong_password_shows_an_error(live_server: LiveServer, page: Page, log_in: LogIn) -> None:
    annotator = live_server.create_annotator("wes@example.com")
    log_in(page, annotator.email, "not the password")

    expect(page.locator("#login-error")).to_be_visible()
    expect(page.locator("#login-error")).to_contain_text("Wrong email or password")
    expect(page).to_have_url(re.compile(r"/login(\?.*)?$"))
    expect(page.locator("input[name=email]")).to_have_value(annotator.email)
    assert "prefstack_session" not in {cookie["name"] for cookie in page.context.cookies()}


def test_validation_error_rerenders_the_form_with_422(live_server: LiveServer, page: Page, log_in: LogIn) -> None:
    annotator = live_server.seed_pairwise(
        slug="validation",
        annotator="val@example.com",
        items=[item("v-1", "Which is politer?", "Please pass the salt.", "Salt. Now.")],
    )
    log_in(page, annotator.email, annotator.password)
    page.goto("/projects/validation/annotate")
    expect(page.locator("#task #judgment-form")).to_be_visible()
    assignment = page.locator("#task").get_attribute("data-assignment")
    page.evaluate("document.querySelectorAll('input[name=choice]').forEach(radio => radio.removeAttribute('required'))")

    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        page.keyboard.press("Enter")
    assert answer.value.status == 422
    expect(page.locator("#task #form-error")).to_be_visible()
    expect(page.locator("#task #form-error")).to_have_text("Pick A, B, tie or both bad first.")
    expect(page.locator("#task")).to_have_attribute("data-assignment", assignment or "")
    expect(page.locator("#flash")).to_be_empty()
    assert live_server.judgments_by(annotator.id) == []

    # The re-rendered form is live: a choice and Enter store the judgment.
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    expect(page.locator("#task #queue-empty")).to_be_visible()
    assert [judgment.payload["choice"] for judgment, _ in live_server.judgments_by(annotator.id)] == ["B"]
