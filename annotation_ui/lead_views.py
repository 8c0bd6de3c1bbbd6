"""Pages for leads: a project's items with filters, and one item with every judgment."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from annotation_ui.rendering import is_htmx, render
from app.deps import CurrentPrincipal, DbSession
from app.errors import InvalidInput
from app.services import item_browser

router = APIRouter(include_in_schema=False)

_BOOLEANS = {"": None, "true": True, "false": False}


def _flag(value: str) -> bool | None:
    if value not in _BOOLEANS:
        raise InvalidInput("invalid_has_disagreement", "has_disagreement is true or false.", field="has_disagreement")
    return _BOOLEANS[value]


@router.get("/projects/{slug}/items", response_class=HTMLResponse)
def items_page(
    request: Request,
    slug: str,
    session: DbSession,
    principal: CurrentPrincipal,
    language: str = "",
    market: str = "",
    category: str = "",
    state: str = "",
    has_disagreement: str = "",
    q: str = "",
    after: int | None = None,
    limit: int = item_browser.DEFAULT_PAGE_SIZE,
) -> Response:
    filters = item_browser.item_filters(
        language=language,
        market=market,
        category=category,
        state=state,
        has_disagreement=_flag(has_disagreement),
        q=q,
    )
    page = item_browser.list_items(
        session,
        principal=principal,
        slug=slug,
        filters=filters,
        after=after,
        limit=limit,
        with_facets=not is_htmx(request),
    )
    kept = {
        "language": language,
        "market": market,
        "category": category,
        "state": state,
        "has_disagreement": has_disagreement,
        "q": q,
    }
    kept = {key: value for key, value in kept.items() if value}
    if limit != item_browser.DEFAULT_PAGE_SIZE:
        kept["limit"] = str(limit)
    base = f"/projects/{quote(slug)}/items"
    next_url = f"{base}?{urlencode({**kept, 'after': page.next_after})}" if page.next_after is not None else None
    first_url = f"{base}?{urlencode(kept)}" if kept else base
    return render(
        request,
        "items.html",
        {
            "page": page,
            "values": kept,
            "states": item_browser.STATES,
            "next_url": next_url,
            "first_url": first_url if after is not None else None,
        },
        block="results",
    )


@router.get("/projects/{slug}/items/{external_id:path}", response_class=HTMLResponse)
def item_page(
    request: Request, slug: str, external_id: str, session: DbSession, principal: CurrentPrincipal
) -> Response:
    detail = item_browser.item_detail(session, principal=principal, slug=slug, external_id=external_id)
    return render(request, "item_detail.html", {"item": detail})
