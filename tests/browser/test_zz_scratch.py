from __future__ import annotations
import pytest
from playwright.sync_api import Page, expect
pytestmark = pytest.mark.browser

def _item(i):
    return {"external_id": f"s-{i}", "prompt": f"p {i}", "responses": [{"model": "a", "content": "x"}, {"model": "b", "content": "y"}]}

def test_scratch_expired_session(live_server, page: Page, log_in) -> None:
    a = live_server.seed_pairwise(slug="scratch-exp", annotator="exp@example.com", items=[_item(1), _item(2)])
    log_in(page, a.email, a.password)
    page.goto("/projects/scratch-exp/annotate")
    print("kbd colours", page.evaluate("(() => { const s = getComputedStyle(document.querySelector('#submit kbd')); return [s.color, s.backgroundColor]; })()"))
    page.context.clear_cookies()
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    page.wait_for_url("**/login**")
    print("redirected to", page.url)
    log_in_url = page.url
    page.fill("input[name=email]", a.email)
    page.fill("input[name=password]", a.password)
    with page.expect_navigation():
        page.click("#login-form button[type=submit]")
    print("after login", page.url, page.title(), page.content()[:300])

def test_scratch_enter_on_logout(live_server, page: Page, log_in) -> None:
    a = live_server.seed_pairwise(slug="scratch-enter", annotator="ent@example.com", items=[_item(1), _item(2)])
    log_in(page, a.email, a.password)
    page.goto("/projects/scratch-enter/annotate")
    page.keyboard.press("1")
    page.focus("button.link")
    page.keyboard.press("Enter")
    page.wait_for_timeout(500)
    print("url after Enter on Log out", page.url, [j.payload for j, _ in live_server.judgments_by(a.id)])
    page.focus("#guidelines summary")
    print("guidelines open before", page.evaluate("document.getElementById('guidelines').open"))
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    print("guidelines open after Enter on summary", page.evaluate("document.getElementById('guidelines').open"))
    page.keyboard.press("g")
    print("after g", page.evaluate("document.getElementById('guidelines').open"))
