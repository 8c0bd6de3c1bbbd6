"""Pages for gold answers (the card on a lead's item page) and leads' notifications."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from annotation_ui.forms import verdict_from_form
from annotation_ui.messages import error_text
from annotation_ui.rendering import is_htmx, render
from app.deps import CurrentPrincipal, DbSession
from app.errors import InvalidInput
from app.principal import Principal
from app.services import gold, notifications, qualification
from app.services.verdicts import VerdictInput

router = APIRouter(include_in_schema=False)


async def _form_fields(request: Request) -> list[tuple[str, str]]:
    form = await request.form()
    return [(name, value) for name, value in form.multi_items() if isinstance(value, str)]


FormFields = Annotated[list[tuple[str, str]], Depends(_form_fields)]


def _item_url(slug: str, external_id: str) -> str:
    return f"/projects/{quote(slug)}/items/{quote(external_id)}"


def _card(
    request: Request,
    session: DbSession,
    principal: Principal,
    slug: str,
    external_id: str,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    card = gold.gold_card(session, principal=principal, slug=slug, external_id=external_id)
    return render(request, "gold_card.html", {"card": card, "error": error}, block="card", status_code=status_code)


@router.get("/projects/{slug}/gold-card", response_class=HTMLResponse)
def gold_card(request: Request, slug: str, session: DbSession, principal: CurrentPrincipal, item: str) -> Response:
    """The gold answer card of one item (leads), loaded into the item page."""
    return _card(request, session, principal, slug, item)


@router.post("/projects/{slug}/gold-card", response_class=HTMLResponse)
def set_gold(
    request: Request, slug: str, session: DbSession, principal: CurrentPrincipal, fields: FormFields
) -> Response:
    values = dict(fields)
    external_id = values.get("external_id", "")
    accepted = [VerdictInput(choice=value) for name, value in fields if name == "accepted" and value]
    try:
        gold.mark_gold(
            session,
            principal=principal,
            slug=slug,
            external_id=external_id,
            verdict_input=verdict_from_form(
                (name, value) for name, value in fields if name not in ("accepted", "explanation", "external_id")
            ),
            accepted=accepted,
            explanation=values.get("explanation", ""),
        )
    except InvalidInput as error:
        session.rollback()
        return _card(request, session, principal, slug, external_id, error=error_text(request, error), status_code=422)
    if not is_htmx(request):
        return RedirectResponse(_item_url(slug, external_id), status_code=303)
    return _card(request, session, principal, slug, external_id)


@router.post("/projects/{slug}/gold-card/remove", response_class=HTMLResponse)
def remove_gold(
    request: Request,
    slug: str,
    session: DbSession,
    principal: CurrentPrincipal,
    external_id: Annotated[str, Form()],
) -> Response:
    gold.remove_gold(session, principal=principal, slug=slug, external_id=external_id)
    if not is_htmx(request):
        return RedirectResponse(_item_url(slug, external_id), status_code=303)
    return _card(request, session, principal, slug, external_id)


@router.get("/notifications", response_class=HTMLResponse)
def notifications_page(request: Request, session: DbSession, principal: CurrentPrincipal) -> Response:
    found = notifications.my_notifications(session, principal=principal)
    return render(request, "notifications.html", {"found": found}, block="list")


@router.get("/notifications/badge", response_class=HTMLResponse)
def notifications_badge(request: Request, session: DbSession, principal: CurrentPrincipal) -> Response:
    count = notifications.unread_count(session, principal=principal)
    return render(request, "notifications_badge.html", {"count": count})


@router.post("/notifications/read", response_class=HTMLResponse)
def read_notifications(
    request: Request, session: DbSession, principal: CurrentPrincipal, fields: FormFields
) -> Response:
    ids = [int(value) for name, value in fields if name == "id" and value.isdigit()]
    notifications.mark_read(session, principal=principal, notification_ids=ids or None)
    if not is_htmx(request):
        return RedirectResponse("/notifications", status_code=303)
    return notifications_page(request, session, principal)


@router.post("/projects/{slug}/members/{user_id}/resume", response_class=HTMLResponse)
def resume_member(
    request: Request,
    slug: str,
    user_id: int,
    session: DbSession,
    principal: CurrentPrincipal,
    notification_id: Annotated[str, Form()] = "",
) -> Response:
    """Leads: let a paused annotator work again (from a notification); marks that notification read."""
    qualification.resume_member(session, principal=principal, slug=slug, user_id=user_id)
    if notification_id.isdigit():
        notifications.mark_read(session, principal=principal, notification_ids=[int(notification_id)])
    if not is_htmx(request):
        return RedirectResponse("/notifications", status_code=303)
    return notifications_page(request, session, principal)
