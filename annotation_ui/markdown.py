"""The one way untrusted text becomes HTML: markdown, then an allowlist sanitizer."""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "hr", "em", "strong", "del", "s", "code", "pre", "blockquote",
        "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
        "table", "thead", "tbody", "tr", "th", "td", "a",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"style"}, "td": {"style"}, "ol": {"start"}}
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "mailto"})


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # html=False: raw HTML in model output is shown as text, never parsed as tags.
    return (
        MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
        .enable("table")
        .enable("strikethrough")
    )


CACHED_TEXT_LIMIT = 16_384
"""Texts up to this many characters are kept rendered (the last RENDERED_KEPT of them): an item's
prompt and responses are rendered for each of the annotators it is shown to, one after another."""
RENDERED_KEPT = 256


def render_markdown(text: str) -> Markup:
    """Sanitized HTML for untrusted markdown (model output, prompts, guidelines)."""
    return _kept_rendered(text) if len(text) <= CACHED_TEXT_LIMIT else _rendered(text)


@lru_cache(maxsize=RENDERED_KEPT)
def _kept_rendered(text: str) -> Markup:
    return _rendered(text)


def _rendered(text: str) -> Markup:
    html = _parser().render(text)
    cleaned = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(ALLOWED_URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
        strip_comments=True,
    )
    return Markup(cleaned)  # noqa: S704  (nh3 output is the sanitized allowlist)
