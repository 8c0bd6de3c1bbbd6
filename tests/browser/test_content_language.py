"""Content in its own language: Thai gets its fonts and line height, right-to-left text runs right to left."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

LogIn = Callable[[Page, str, str], None]
THAI = "การไลฟ์สดที่ชวนให้ผู้ชมเล่นการพนันออนไลน์ถือว่าผิดนโยบายของแพลตฟอร์ม"
ARABIC = "هذا الرد مكتوب باللغة العربية ويجب أن يظهر من اليمين إلى اليسار."


def test_thai_and_right_to_left_content_render_in_their_own_direction_and_fonts(
    page: Page, live_server: LiveServer, log_in: LogIn
) -> None:
    item = {
        "external_id": "lang-1",
        "prompt": THAI,
        "responses": [{"model": "m1", "content": THAI}, {"model": "m2", "content": ARABIC}],
        "metadata": {"language": "th"},
    }
    member = live_server.seed_project(slug="content-lang", annotator="lang@example.org", items=[item])
    log_in(page, member.email, member.password)
    page.goto(f"{live_server.url}/projects/content-lang/annotate")

    prompt = page.locator(".turn .content").first
    assert prompt.get_attribute("lang") == "th"
    assert prompt.get_attribute("dir") == "auto"
    style = prompt.evaluate("e => { const s = getComputedStyle(e); return [s.fontFamily, s.lineHeight, s.fontSize]; }")
    assert "Noto Sans Thai" in style[0]
    assert float(style[1].removesuffix("px")) >= 1.7 * float(style[2].removesuffix("px"))

    directions = {
        text[:8]: direction
        for text, direction in page.locator(".response .content p").evaluate_all(
            "ps => ps.map(p => [p.textContent, getComputedStyle(p).direction])"
        )
    }
    assert directions[THAI[:8]] == "ltr"
    assert directions[ARABIC[:8]] == "rtl"
