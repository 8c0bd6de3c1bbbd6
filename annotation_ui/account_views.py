"""Pages for the signed-in user's own settings: the interface language."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from annotation_ui.rendering import is_htmx
from app.deps import CurrentPrincipal, DbSession
from app.services import preferences

router = APIRouter(include_in_schema=False)


def _back_to(target: str) -> str:
    """The page the picker was on, if it is a path on this site; else the project list."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.post("/me/language")
def set_language(
    request: Request,
    session: DbSession,
    principal: CurrentPrincipal,
    language: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    preferences.set_interface_language(session, principal=principal, language=language)
    if is_htmx(request):
        # The whole page changes language, so htmx reloads it rather than swapping a block.
        return Response(status_code=204, headers={"HX-Refresh": "true"})
    return RedirectResponse(_back_to(next), status_code=303)
