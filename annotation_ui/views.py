"""Pages: login, project list and the pairwise annotation loop."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from annotation_ui.rendering import is_htmx, render
from app.deps import SESSION_COOKIE, Context, CurrentPrincipal, DbSession, optional_principal
from app.errors import InvalidInput, PrefstackError
from app.principal import Principal
from app.security import sign, tokens_match, unsign
from app.services import accounts, annotation, projects

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
            error="The login form expired. Please try again.",
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
        return _login_form(
            request, context, next_url=next_url, email=email, error=error.message, status=error.status_code
        )
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


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: DbSession, principal: CurrentPrincipal) -> Response:
    return render(request, "home.html", {"projects": projects.list_projects(session, principal=principal)})


@router.get("/projects/{slug}/annotate", response_class=HTMLResponse)
def annotate_page(
    request: Request, slug: str, session: DbSession, context: Context, principal: CurrentPrincipal
) -> Response:
    return _task_page(request, slug, session, context, principal)


def _task_page(
    request: Request,
    slug: str,
    session: DbSession,
    context: Context,
    principal: Principal,
    *,
    error: str | None = None,
    rationale: str = "",
    status_code: int = 200,
) -> Response:
    """The annotate page (or its task block for htmx) with the caller's current lease."""
    task = annotation.next_task(
        session, principal=principal, slug=slug, cache=context.project_cache, reaper=context.lease_reaper
    )
    project = projects.get_project(session, principal=principal, slug=slug, cache=context.project_cache)
    return render(
        request,
        "annotate.html",
        {"task": task, "project": project, "error": error, "rationale": rationale, "choices": CHOICES},
        block="task",
        status_code=status_code,
    )


CHOICES = (
    ("A", "A is better", "1"),
    ("B", "B is better", "2"),
    ("tie", "Tie", "3"),
    ("both_bad", "Both bad", "4"),
)


@router.post("/projects/{slug}/annotate/{assignment_id}", response_class=HTMLResponse)
def submit(
    request: Request,
    slug: str,
    assignment_id: int,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
    choice: Annotated[str, Form()] = "",
    rationale: Annotated[str, Form()] = "",
    time_spent_ms: Annotated[str, Form()] = "",
) -> Response:
    spent = int(time_spent_ms) if time_spent_ms.isdigit() else None
    try:
        annotation.submit_pairwise(
            session,
            principal=principal,
            assignment_id=assignment_id,
            choice=choice,
            rationale=rationale,
            time_spent_ms=spent,
            cache=context.project_cache,
        )
    except InvalidInput as error:
        session.rollback()
        message = "Pick A, B, tie or both bad first." if error.field == "choice" else error.message
        return _task_page(
            request, slug, session, context, principal, error=message, rationale=rationale, status_code=422
        )
    if not is_htmx(request):
        return RedirectResponse(f"/projects/{quote(slug)}/annotate", status_code=303)
    return _task_page(request, slug, session, context, principal)


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
    if is_htmx(request):
        return render(
            request,
            "error.html",
            {"error": error},
            block="flash",
            status_code=error.status_code,
            headers={"HX-Retarget": "#flash", "HX-Reswap": "outerHTML"},
        )
    return render(request, "error.html", {"error": error}, status_code=error.status_code)
