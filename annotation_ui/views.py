"""Pages: login, logout, the project list, and how page errors are shown."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from annotation_ui.messages import LOGIN_FORM_EXPIRED, error_text, translated
from annotation_ui.rendering import is_htmx, render
from app.deps import SESSION_COOKIE, Context, CurrentPrincipal, DbSession, optional_principal
from app.errors import PrefstackError, TooManyRequests
from app.principal import Principal
from app.security import sign, tokens_match, unsign
from app.services import accounts, calibration, projects

LOGIN_CSRF_COOKIE = "prefstack_login_csrf"

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request,
    context: Context,
    principal: Annotated[Principal | None, Depends(optional_principal)],
    next: str = "/",
) -> Response:
    if principal is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_form(request, context, next_url=_safe_next(next))


def _login_form(
    request: Request, context: Context, *, next_url: str, error: str | None = None, email: str = "", status: int = 200
) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        {
            "csrf_token": sign(token, secret_key=context.secret_key),
            "next_url": next_url,
            "error": error,
            "email": email,
        },
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax", secure=context.settings.cookies_secure, max_age=3600
    )
    return response


@router.post("/login")
def log_in(
    request: Request,
    session: DbSession,
    context: Context,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    next_url = _safe_next(next)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if expected is None or not tokens_match(unsign(csrf_token, secret_key=context.secret_key), expected):
        return _login_form(
            request, context, next_url=next_url, email=email, status=403,
            error=translated(request, LOGIN_FORM_EXPIRED),
        )  # fmt: skip
    try:
        started = accounts.log_in(
            session,
            email=email,
            password=password,
            client=_client(request),
            throttle=context.login_throttle,
            session_hours=context.settings.security.session_hours,
        )
    except PrefstackError as error:
        refused = _login_form(
            request,
            context,
            next_url=next_url,
            email=email,
            error=error_text(request, error),
            status=error.status_code,
        )
        if isinstance(error, TooManyRequests):
            refused.headers["Retry-After"] = str(error.retry_after)
        return refused
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        started.token,
        httponly=True,
        samesite="lax",
        secure=context.settings.cookies_secure,
        max_age=context.settings.security.session_hours * 3600,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def log_out(session: DbSession, principal: CurrentPrincipal) -> Response:
    accounts.log_out(session, principal=principal)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/favicon.ico")
def favicon() -> RedirectResponse:
    """Browsers ask here whatever the pages link: send them to the icon the pages name."""
    return RedirectResponse("/static/favicon.svg", status_code=301)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: DbSession, principal: CurrentPrincipal) -> Response:
    return render(
        request,
        "home.html",
        {
            "projects": projects.list_projects(session, principal=principal),
            "calibrations": calibration.waiting_for_me(session, principal=principal),
        },
    )


def _page_to_return_to(request: Request) -> str:
    """Where to send someone after logging in: the page they were on, never a POST target."""
    if request.method == "GET":
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    current = request.headers.get("hx-current-url")
    if current:
        return _safe_next(urlsplit(current).path)
    return "/"


async def render_page_error(request: Request, error: PrefstackError) -> Response:
    """Errors on pages: log-in redirects, or the error page (a flash fragment for htmx)."""
    if error.status_code == 401:
        target = f"/login?next={quote(_page_to_return_to(request))}"
        if is_htmx(request):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    context = {"error": error, "message": error_text(request, error)}
    if is_htmx(request):
        return render(
            request,
            "error.html",
            context,
            block="flash",
            status_code=error.status_code,
            headers={"HX-Retarget": "#flash", "HX-Reswap": "outerHTML"},
        )
    return render(request, "error.html", context, status_code=error.status_code)
