"""FastAPI dependencies: database sessions, the caller, CSRF."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.errors import NotAuthenticated, PermissionDenied
from app.principal import AuthMethod, Principal
from app.security import digest, tokens_match
from app.services import accounts
from app.services.annotation import LeaseReaper
from app.services.projects import ProjectAccessCache
from app.settings import Settings

SESSION_COOKIE = "prefstack_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FORM_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class AppContext:
    """What the app holds for its lifetime, kept on `app.state.context`."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    secret_key: str
    token_cache: accounts.TokenCache
    login_throttle: accounts.LoginThrottle
    project_cache: ProjectAccessCache
    lease_reaper: LeaseReaper


def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session for this request; services commit, teardown only closes.

    Async so that FastAPI does not hop to the threadpool to open and close it: a session
    connects lazily, and closing one whose service committed does no I/O.
    """
    session = get_context(request).sessions()
    try:
        yield session
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_session)]
Context = Annotated[AppContext, Depends(get_context)]


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("invalid_authorization", "Use 'Authorization: Bearer <token>'.")
    return token.strip()


async def optional_principal(request: Request, session: DbSession) -> Principal | None:
    """The caller, from a bearer token or the session cookie, or None.

    A recently verified API token is answered from memory; only a miss goes to the
    database, in the threadpool.
    """
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    context = get_context(request)
    token = _bearer_token(request)
    principal: Principal | None = None
    if token is not None:
        principal = context.token_cache.get(digest(token))
        if principal is None:
            principal = await run_in_threadpool(
                accounts.principal_for_api_token, session, token=token, cache=context.token_cache
            )
        if principal is None:
            raise NotAuthenticated("invalid_token", "This API token is unknown or revoked.")
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            principal = await run_in_threadpool(accounts.principal_for_session, session, token=cookie)
    request.state.principal = principal
    return principal


async def require_principal(
    request: Request, principal: Annotated[Principal | None, Depends(optional_principal)]
) -> Principal:
    """The authenticated caller; state-changing cookie requests must carry the CSRF token."""
    if principal is None:
        raise NotAuthenticated("not_authenticated", "Log in or send an API token.")
    if request.method not in SAFE_METHODS and principal.method is AuthMethod.SESSION:
        await check_csrf(request, expected=principal.csrf_token or "")
    return principal


async def check_csrf(request: Request, *, expected: str) -> None:
    """Reject a state-changing request whose CSRF token (header or form field) is wrong."""
    submitted = request.headers.get(CSRF_HEADER)
    if submitted is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FORM_FIELD)
            submitted = value if isinstance(value, str) else None
    if not expected or not tokens_match(submitted, expected):
        raise PermissionDenied("csrf_failed", "The form expired or came from another site. Reload the page and retry.")


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]
