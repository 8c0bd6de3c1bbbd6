"""Hostile content: classic XSS payloads, each of which calls `__pwned(n)` or names `pwned` if it runs.

`PAYLOADS` go into long text (prompts, responses, rationales, guidelines...), `SHORT` into
names and metadata, which have length limits. `offences(html)` lists what in rendered HTML
came from content and would act: a tag that runs script, an `on*` attribute, an htmx
attribute, a `javascript:`/`data:` URL, or a template expression that was evaluated.
"""

from __future__ import annotations

from html.parser import HTMLParser

PAYLOADS: tuple[str, ...] = (
    "<script>__pwned(1)</script>",
    "<SCRIPT SRC=//evil.example/pwned.js></SCRIPT>",
    "<img src=x onerror=__pwned(3)>",
    '<img src="x" onerror="__pwned(4)">',
    "<svg onload=__pwned(5)>",
    "<svg><script>__pwned(6)</script></svg>",
    "<body onload=__pwned(7)>",
    '<iframe srcdoc="<script>parent.__pwned(8)</script>"></iframe>',
    '<iframe src="javascript:__pwned(9)"></iframe>',
    "[click](javascript:__pwned(10))",
    "[click](JaVaScRiPt:__pwned(11))",
    "[click](&#106;avascript:__pwned(12))",
    "![img](javascript:__pwned(13))",
    '![img](x" onerror="__pwned(14))',
    "[data](data:text/html;base64,PHNjcmlwdD5fX3B3bmVkKDE1KTwvc2NyaXB0Pg==)",
    '<a href="javascript:__pwned(16)">pwned16</a>',
    '<a href="data:text/html,<script>__pwned(17)</script>">pwned17</a>',
    '<div hx-get="/logout?pwned18" hx-trigger="load">pwned18</div>',
    '<div hx-on:load="__pwned(19)">pwned19</div>',
    '<button hx-post="/logout" hx-trigger="load" data-pwned="20">pwned20</button>',
    '<div data-hx-get="/pwned21" data-hx-trigger="load">pwned21</div>',
    '<p style="background:url(javascript:__pwned(22))">pwned22</p>',
    '<div style="width: expression(__pwned(23))">pwned23</div>',
    "<math><mtext><table><mglyph><style><img src=x onerror=__pwned(24)>",
    "<details open ontoggle=__pwned(25)>",
    "<input autofocus onfocus=__pwned(26)>",
    "<video><source onerror=__pwned(27)></video>",
    "<object data=javascript:__pwned(28)></object>",
    "<embed src=javascript:__pwned(29)>",
    "<form action=javascript:__pwned(30)><button>pwned30</button></form>",
    "<base href=javascript:__pwned(31)//>",
    "<meta http-equiv=refresh content='0;url=javascript:__pwned(32)'>",
    "<link rel=stylesheet href=javascript:__pwned(33)>",
    "&lt;script&gt;__pwned(34)&lt;/script&gt;",
    "\\u003cscript\\u003e__pwned(35)\\u003c/script\\u003e",
    "<scr<script>ipt>__pwned(36)</scr</script>ipt>",
    "<img src=x onerror=__pwned(37)",
    '"><script>__pwned(38)</script>',
    "'><img src=x onerror=__pwned(39)>",
    "</textarea><script>__pwned(40)</script>",
    "</title><script>__pwned(41)</script>",
    "{{7*7}}pwned42 {% raw %}pwned42{{ config }}",
    "${7*7}pwned43 #{7*7}",
    '<noscript><p title="</noscript><img src=x onerror=__pwned(44)>">',
)
TEXT = "\n\n".join(PAYLOADS)
"""Every payload in one markdown text."""

SHORT: tuple[str, ...] = (
    "<img src=x onerror=__pwned(101)>",
    "<script>__pwned(102)</script>",
    '"><svg onload=__pwned(103)>',
    "<a hx-get=/pwned104 hx-trigger=load>x</a>",
    "{{7*7}}pwned105",
)

DANGEROUS_TAGS = frozenset({"script", "iframe", "svg", "math", "object", "embed", "base", "meta", "link", "style"})
"""Tags that must never carry content; other tags only act through the attributes checked below."""
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "srcdoc", "data", "xlink:href", "background"})


class _Inspector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.offences: list[str] = []
        self._script: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = " ".join(f"{name}={value}" for name, value in attrs)
        if tag in DANGEROUS_TAGS and "pwned" in values:
            self.offences.append(f"<{tag} {values}>")
        for name, value in attrs:
            text = (value or "").strip().lower()
            if (
                name.startswith("on")
                or ((name.startswith(("hx-", "data-hx-")) or name == "style") and "pwned" in text)
                or (
                    name in URL_ATTRIBUTES
                    and (text.startswith(("javascript:", "data:", "vbscript:")) or name == "srcdoc")
                )
            ):
                self.offences.append(f"<{tag} {name}={value}>")
        if tag == "script":
            self._script = dict(attrs).get("type") or "text/javascript"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None and self._script != "application/json" and "pwned" in data:
            self.offences.append(f"script body: {data[:80]}")
        if "49pwned" in data or "49 pwned" in data:
            self.offences.append(f"evaluated template expression: {data[:80]}")


def offences(html: str) -> list[str]:
    """What in `html` would run content as code (empty when every payload stayed text)."""
    inspector = _Inspector()
    inspector.feed(html)
    inspector.close()
    return inspector.offences
