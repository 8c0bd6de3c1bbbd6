"""Rendering pages and the blocks htmx swaps, from one template per page."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2_fragments import render_block
from jinja2_fragments.fastapi import Jinja2Blocks

from annotation_ui import i18n
from annotation_ui.markdown import render_markdown

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Blocks(directory=str(TEMPLATES_DIR))
templates.env.filters["markdown"] = render_markdown
templates.env.autoescape = True
templates.env.add_extension("jinja2.ext.i18n")
templates.env.policies["ext.i18n.trimmed"] = True  # as babel.cfg extracts {% trans %} blocks
# Newstyle gettext: `_("Response %(label)s", label=...)` formats and escapes its variables.
templates.env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
i18n.load_catalogs()


def is_htmx(request: Request) -> bool:
    """An htmx request that wants a fragment (history restores want the whole page)."""
    return request.headers.get("hx-request") == "true" and request.headers.get("hx-history-restore-request") != "true"


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    block: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    out_of_band: Sequence[tuple[str, dict[str, Any]]] = (),
) -> Response:
    """The whole page, or only `block` when htmx asks; always `Vary: HX-Request`.

    `out_of_band`: (template, context) fragments rendered after the block when htmx asks, each
    an element marked `hx-swap-oob` that replaces the page's element of the same id: one answer
    updates several parts of the page.
    """
    principal = getattr(request.state, "principal", None)
    language = i18n.request_language(request)
    full_context = {
        "request": request,
        "principal": principal,
        "ui_language": language,
        "ui_languages": i18n.LANGUAGE_NAMES,
        **context,
    }
    # The template renders inside TemplateResponse's constructor, so the language is set around it.
    response: Response
    with i18n.activate(language):
        if block is not None and is_htmx(request):
            fragments = [render_block(templates.env, template, block, full_context)]
            fragments += [
                templates.get_template(name).render({**full_context, **fragment, "out_of_band": True})
                for name, fragment in out_of_band
            ]
            response = HTMLResponse("".join(fragments), status_code=status_code, headers=headers)
        else:
            response = templates.TemplateResponse(
                request, template, full_context, status_code=status_code, headers=headers
            )
    response.headers["Content-Language"] = language
    response.headers["Vary"] = "HX-Request"
    response.headers.setdefault("Cache-Control", "no-store")
    return response
