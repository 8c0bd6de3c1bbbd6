"""The pairwise workbench in a real browser: keyboard-only extras, blur, skip, drafts, help, diff."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.principal import command_line_principal
from app.services import projects
from preference_store.models import AssignmentState, Judgment, JudgmentRevision
from tests.browser.doc_images import save_doc_image

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer, PageEvents

pytestmark = pytest.mark.browser

LogIn = Callable[[Page, str, str], None]
OPTIONS: dict[str, Any] = {
    "strength": True,
    "rewrite": True,
    "taxonomy": [{"name": "gambling", "severities": ["minor", "severe"]}, {"name": "spam"}],
    "break_after_minutes": 5,
}
NEXT_TASK_SHOWN = """previous => {
  const task = document.querySelector('#task');
  return task !== null && (task.dataset.assignment !== previous || task.querySelector('#queue-empty') !== null);
}"""
ANSWER_A = "Use slicing: `items[::-1]` returns a new list and leaves the original alone."
ANSWER_B = "Use `items.reverse()`: it reverses the list in place and returns None."
GRAPHIC = (
    "The report describes the injuries in graphic detail, with the names of the victims, "
    "the weapons used and the order of events. " * 4
)


def item(external_id: str, a: str = ANSWER_A, b: str = ANSWER_B, **metadata: Any) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "prompt": "How do I reverse a list in Python?",
        "responses": [{"model": "m-a", "content": a}, {"model": "m-b", "content": b}],
        "metadata": {"language": "en", **metadata},
    }


def shown(page: Page) -> str:
    current = page.locator("#task").get_attribute("data-assignment")
    assert current and current.isdigit()
    return current


def test_pairwise_with_strength_labels_rationale_and_rewrite_by_keyboard_only(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn
) -> None:
    annotator = live_server.seed_project(
        slug="wb-keys", annotator="kai@example.com", items=[item("k-1")], options=OPTIONS, guidelines="v1"
    )
    with live_server.sessions() as session:
        projects.update_guidelines(session, principal=command_line_principal(), slug="wb-keys", text="# v2\nBe fair.")
    log_in(page, annotator.email, annotator.password)
    page.goto("/projects/wb-keys/annotate")
    expect(page.locator("#judgment-form")).to_be_visible()
    current = shown(page)
    page.wait_for_timeout(30)  # reading: active time is never zero

    page.keyboard.press("1")
    page.keyboard.press("w")
    expect(page.locator("input[name=choice][value=A]")).to_be_checked()
    expect(page.locator("input[name=strength][value=clearly]")).to_be_checked()
    for response, digit in (("a", "2"), ("b", "3")):
        page.keyboard.press("l")
        page.keyboard.press(response)
        expect(page.locator(f"#labels-{response.upper()}")).to_have_attribute("open", "")
        page.keyboard.press(digit)
        page.keyboard.press("Escape")
    expect(page.locator("input[name='labels.A'][value='gambling:severe']")).to_be_checked()
    expect(page.locator("input[name='labels.B'][value='spam']")).to_be_checked()
    expect(page.locator("input[name^='labels.']:checked")).to_have_count(2)

    page.keyboard.press("r")
    expect(page.locator("#rationale")).to_be_focused()
    page.keyboard.type("A keeps the original list.")
    page.keyboard.press("Escape")
    page.keyboard.press("t")
    expect(page.locator("#rewrite")).to_be_focused()
    started_from = page.input_value("#rewrite")  # shown A: either stored response, shuffled per assignment
    page.keyboard.type(" Both work.")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    page.wait_for_function(NEXT_TASK_SHOWN, arg=current)
    expect(page.locator("#queue-empty")).to_be_visible()
    assert page_events.errors == []

    [(judgment, assignment)] = live_server.judgments_by(annotator.id)
    a, b = assignment.shown_order
    assert judgment.payload == {
        "choice": "A",
        "preferred_position": a,
        "strength": "clearly",
        "labels": {str(a): ["gambling:severe"], str(b): ["spam"]},
        "rewrite": {"position": a, "content": started_from + " Both work."},
        "rationale": "A keeps the original list.",
    }
    assert started_from == (ANSWER_A, ANSWER_B)[a]
    assert judgment.time_spent_ms is not None and judgment.time_spent_ms > 0
    assert judgment.guidelines_version == 2
    assert assignment.state is AssignmentState.SUBMITTED
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('prefstack:draft:'))") == []


def test_blurred_response_is_unreadable_until_revealed(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn
) -> None:
    flagged = item("s-1", a=GRAPHIC, b=GRAPHIC)
    flagged["responses"][1]["metadata"] = {"sensitive": True}
    annotator = live_server.seed_project(slug="wb-blur", annotator="bo@example.com", items=[flagged])
    log_in(page, annotator.email, annotator.password)
    page.goto("/projects/wb-blur/annotate")
    response = page.locator("#response-B")
    expect(response.locator(".sensitive-marker")).to_be_visible()
    assert response.locator(".content").first.evaluate("el => getComputedStyle(el).userSelect") == "none"
    assert "blur" in response.locator(".content").first.evaluate("el => getComputedStyle(el).filter")
    content = response.locator(".markdown.content")
    blurred = decode_png(content.screenshot(animations="disabled"))

    page.keyboard.press("v")  # the first blurred block: the prompt
    expect(page.locator("#conversation")).to_have_class(re.compile(r"\brevealed\b"))
    expect(response).not_to_have_class(re.compile(r"\brevealed\b"))
    page.click("[data-reveal=response-B]")
    expect(response).to_have_class(re.compile(r"\brevealed\b"))
    revealed = decode_png(content.screenshot(animations="disabled"))

    assert (blurred.width, blurred.height) == (revealed.width, revealed.height)
    changed = sum(abs(x - y) > 40 for x, y in zip(blurred.gray, revealed.gray, strict=True)) / len(blurred.gray)
    assert changed > 0.03, changed  # text strokes cover a few percent of the box
    blurred_detail, sharp_detail = blurred.edge_energy(), revealed.edge_energy()
    assert blurred_detail < 0.25 * sharp_detail, (blurred_detail, sharp_detail)
    assert page_events.errors == []


def test_skip_draft_help_guidelines_diff_and_break(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn
) -> None:
    annotator = live_server.seed_project(
        slug="wb-shell",
        annotator="sam@example.com",
        items=[item("d-1"), item("d-2"), item("d-3")],
        options=OPTIONS,
        guidelines="# Reverse lists\n\nPrefer answers that **explain** side effects.",
    )
    log_in(page, annotator.email, annotator.password)
    page.goto("/projects/wb-shell/annotate")
    expect(page.locator("#judgment-form")).to_be_visible()
    first = shown(page)

    # Drafts survive a reload.
    page.keyboard.press("2")
    page.keyboard.press("e")
    page.keyboard.press("r")
    page.keyboard.type("Half-written thought")
    page.keyboard.press("Escape")
    page.reload()
    expect(page.locator("#task")).to_have_attribute("data-assignment", first)
    expect(page.locator("input[name=choice][value=B]")).to_be_checked()
    expect(page.locator("input[name=strength][value=much]")).to_be_checked()
    expect(page.locator("#rationale")).to_have_value("Half-written thought")

    # The help overlay lists this kind's keys and the shared ones.
    page.keyboard.press("?")
    help_dialog = page.locator("#help-dialog")
    expect(help_dialog).to_be_visible()
    expect(help_dialog).to_contain_text("Slightly, clearly or much better")
    expect(help_dialog).to_contain_text("Skip this item")
    page.keyboard.press("?")
    expect(help_dialog).to_be_hidden()

    # Guidelines open beside the task, without a page load.
    page.evaluate("window.__marker = 1")
    page.keyboard.press("g")
    panel = page.locator("#guidelines-panel")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("version 1")
    expect(panel.locator("strong")).to_have_text("explain")
    page.keyboard.press("g")
    expect(panel).to_be_hidden()
    assert page.evaluate("window.__marker") == 1

    # The word diff marks what differs, as text.
    page.keyboard.press("d")
    expect(page.locator("#response-A .diff")).to_be_visible()
    expect(page.locator("#response-A .markdown.content")).to_be_hidden()
    own_words = {ANSWER_A: {"slicing:", "new", "leaves"}, ANSWER_B: {"reverses", "place", "None."}}
    for label, mark in (("A", "diff-del"), ("B", "diff-ins")):
        source = page.locator(f"#response-{label} template.source").evaluate("t => t.content.textContent")
        marked = set(page.locator(f"#response-{label} .diff mark.{mark}").all_text_contents())
        assert own_words[source] <= marked, (label, marked)
        assert "Use" not in marked, marked  # both answers start with it
    page.keyboard.press("d")
    expect(page.locator("#response-A .markdown.content")).to_be_visible()

    # Skip with a reason: the next task comes, the draft goes, the progress strip changes, all
    # from the one request the skip sends.
    left = page.locator("#progress [data-stat=left] b")
    left_before = left.inner_text()
    page.keyboard.press("s")
    expect(page.locator("#skip-dialog")).to_be_visible()
    sent: list[str] = []
    page.on("request", lambda request: sent.append(f"{request.method} {urlparse(request.url).path}"))
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.wait_for_function(NEXT_TASK_SHOWN, arg=first)
    expect(page.locator("#skip-dialog")).to_have_count(1)
    expect(page.locator("#skip-dialog")).to_be_hidden()
    assert page.evaluate(f"localStorage.getItem('prefstack:draft:{first}')") is None
    with live_server.sessions() as session:
        from preference_store.models import Assignment

        skipped = session.get(Assignment, int(first))
        assert skipped is not None
        assert skipped.state is AssignmentState.SKIPPED
        assert skipped.skip_reason == "Too disturbing to judge"
    expect(left).to_have_text(str(int(left_before) - 1))
    page.wait_for_timeout(200)  # a reload the answer triggered would have gone out by now
    assert sent == [f"POST /projects/wb-shell/annotate/{first}/skip"], sent

    # A long stretch of work shows the break reminder, which stays dismissed.
    page.evaluate("sessionStorage.setItem('prefstack:work-start', String(Date.now() - 6 * 60000))")
    page.evaluate("sessionStorage.setItem('prefstack:last-work', String(Date.now()))")
    page.reload()
    expect(page.locator("#break-banner")).to_be_visible()
    page.click("[data-action=dismiss-break]")
    expect(page.locator("#break-banner")).to_be_hidden()
    assert page_events.errors == []


def test_screenshots_for_the_annotator_docs(live_server: LiveServer, page: Page, log_in: LogIn) -> None:
    annotator = live_server.seed_project(
        slug="wb-docs",
        annotator="doc@example.com",
        items=[item("doc-1")],
        options=OPTIONS,
        guidelines="# Guidelines\n\nPrefer answers that explain side effects.",
    )
    log_in(page, annotator.email, annotator.password)
    page.goto("/projects/wb-docs/annotate")
    expect(page.locator("#progress .stat")).to_have_count(4)
    for key in ("1", "w", "l", "b", "3", "Escape", "d"):
        page.keyboard.press(key)
    save_doc_image(page, "annotate-pairwise.png")
    page.keyboard.press("?")
    expect(page.locator("#help-dialog")).to_be_visible()
    save_doc_image(page, "help-overlay.png")

    flagged = item("doc-2", a=GRAPHIC[: len(GRAPHIC) // 4], b="I can't describe that; here is a neutral summary.")
    flagged["responses"][0]["metadata"] = {"sensitive": True}
    other = live_server.seed_project(slug="wb-docs-flagged", annotator="doc2@example.com", items=[flagged])
    page.context.clear_cookies()
    log_in(page, other.email, other.password)
    page.goto("/projects/wb-docs-flagged/annotate")
    expect(page.locator("#task .response.sensitive")).to_have_count(2)
    save_doc_image(page, "sensitive-blurred.png")


class Gray:
    """A decoded screenshot as 8-bit luminance, row by row."""

    def __init__(self, width: int, height: int, gray: list[int]) -> None:
        self.width, self.height, self.gray = width, height, gray

    def edge_energy(self) -> float:
        """Mean absolute difference between horizontal and vertical neighbours: high for sharp text."""
        total = 0
        w = self.width
        for y in range(self.height - 1):
            row = y * w
            for x in range(w - 1):
                here = self.gray[row + x]
                total += abs(here - self.gray[row + x + 1]) + abs(here - self.gray[row + w + x])
        return total / ((self.width - 1) * (self.height - 1))


def decode_png(data: bytes) -> Gray:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what chromium writes) with zlib alone."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, idat, header = 8, b"", b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    channels = 4 if color == 6 else 3
    stride = width * channels
    raw = zlib.decompress(idat)
    previous = bytearray(stride)
    gray: list[int] = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + predictor) & 0xFF
        gray.extend((299 * line[x] + 587 * line[x + 1] + 114 * line[x + 2]) // 1000 for x in range(0, stride, channels))
        previous = line
    return Gray(width, height, gray)


def test_a_recent_judgment_reopens_prefilled_and_its_change_is_kept_as_a_revision(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn
) -> None:
    annotator = live_server.seed_project(
        slug="wb-revise", annotator="rev@example.com", items=[item("r-1"), item("r-2")], options=OPTIONS
    )
    log_in(page, annotator.email, annotator.password)
    page.goto("/projects/wb-revise/annotate")
    for choice, strength in (("1", "q"), ("2", "e")):
        current = shown(page)
        page.keyboard.press(choice)
        page.keyboard.press(strength)
        page.keyboard.press("Enter")
        page.wait_for_function(NEXT_TASK_SHOWN, arg=current)
    expect(page.locator("#queue-empty")).to_be_visible()
    first, second = live_server.judgments_by(annotator.id)

    recent = page.locator(f"#recent li[data-judgment='{first[0].id}']")
    expect(recent).to_contain_text("revision 1")
    recent.locator("a.reopen").click()
    expect(page.locator("#judgment-form")).to_be_visible()
    expect(page.locator("input[name=choice][value=A]")).to_be_checked()  # filled in with what was stored
    expect(page.locator("input[name=strength][value=slightly]")).to_be_checked()
    page.keyboard.press("2")
    page.keyboard.press("w")
    page.keyboard.press("r")
    page.keyboard.type("On second reading B is right.")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#queue-empty")).to_be_visible()
    expect(page.locator(f"#recent li[data-judgment='{first[0].id}']")).to_contain_text("revision 2")
    assert page_events.errors == []

    with live_server.sessions() as session:
        revised = session.get(Judgment, first[0].id)
        assert revised is not None
        history = session.scalars(select(JudgmentRevision).where(JudgmentRevision.judgment_id == revised.id)).all()
    a, b = first[1].shown_order
    assert revised.revision == 2
    assert revised.payload["choice"] == "B"
    assert revised.payload["preferred_position"] == b
    assert revised.payload["strength"] == "clearly"
    assert revised.payload["rationale"] == "On second reading B is right."
    [old] = history
    assert old.revision == 1
    assert old.payload == first[0].payload  # the first version, untouched
    assert old.payload["choice"] == "A" and old.payload["preferred_position"] == a
    assert live_server.judgments_by(annotator.id)[1][0].payload == second[0].payload
