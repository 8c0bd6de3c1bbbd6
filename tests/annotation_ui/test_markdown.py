"""The sanitizer: markdown renders, nothing executable survives."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from annotation_ui import markdown
from annotation_ui.markdown import ALLOWED_TAGS, CACHED_TEXT_LIMIT, render_markdown

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[x](javascript:alert(1))",
    "<svg onload=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "<iframe src=javascript:alert(1)>",
    "![img](https://evil.example/pixel.png)",
    '<div style="background:url(javascript:alert(1))">x</div>',
]


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend((name, value or "") for name, value in attrs)


@pytest.mark.parametrize("long", [False, True], ids=["kept-rendered", "past-the-cache-limit"])
@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_markup_is_inert(payload: str, long: bool) -> None:
    text = f"{'word ' * (CACHED_TEXT_LIMIT // 5)}\n\n{payload}" if long else payload
    assert (len(text) > CACHED_TEXT_LIMIT) is long
    parsed = _Elements()
    parsed.feed(str(render_markdown(text)))
    assert set(parsed.tags) <= ALLOWED_TAGS
    assert not {"script", "img", "svg", "iframe", "div"} & set(parsed.tags)
    for name, value in parsed.attributes:
        assert not name.startswith("on"), name
        assert not value.strip().lower().startswith("javascript:"), value
        assert name != "style" or "url(" not in value


def test_raw_html_is_shown_as_text() -> None:
    assert str(render_markdown("<script>alert(1)</script>")) == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"


def test_markdown_tables_code_and_lists_render() -> None:
    html = str(render_markdown("| a | b |\n|---|---|\n| 1 | 2 |\n\n```\ncode <b>\n```\n\n- one\n- two"))
    assert "<table>" in html and "<td>1</td>" in html
    assert "<pre><code>code &lt;b&gt;\n</code></pre>" in html
    assert "<li>one</li>" in html


def test_links_get_noopener() -> None:
    html = str(render_markdown("[site](https://example.org)"))
    assert 'rel="noopener noreferrer nofollow"' in html


def test_a_text_shown_again_is_rendered_once() -> None:
    text = "An item's response, shown to **each** of its annotators in turn."
    before = markdown._kept_rendered.cache_info()
    first, second = render_markdown(text), render_markdown(text)
    after = markdown._kept_rendered.cache_info()
    assert first == second == "<p>An item's response, shown to <strong>each</strong> of its annotators in turn.</p>\n"
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)


def test_a_text_past_the_limit_is_rendered_each_time_and_not_kept() -> None:
    text = "long " * (CACHED_TEXT_LIMIT // 5 + 1)
    before = markdown._kept_rendered.cache_info()
    assert str(render_markdown(text)).startswith("<p>long long")
    assert markdown._kept_rendered.cache_info() == before
