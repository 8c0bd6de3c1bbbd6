"""FastAPI dependencies: database sessions, the caller, CSRF."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from anyio import CapacityLimiter, to_thread
from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.errors import NotAuthenticated, PermissionDenied
from app.principal import AuthMethod, Principal
from app.security import digest, tokens_match
from app.services import accounts
from app.services.annotation import LeaseReaper
from app.services.progress import StreakCache
from app.services.projects import ProjectAccessCache
from app.settings import Settings
from preference_store.engine import NOWAIT_SESSION_FLAG, WriterBusy, commit_reads

SESSION_COOKIE = "prefstack_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FORM_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
T = TypeVar("T")


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
    streak_cache: StreakCache
    lease_reaper: LeaseReaper
    inline_database: bool
    database_limiter: CapacityLimiter
    """Bounds the API calls running database work in threads at once (`Settings.database_concurrency`)."""


def app_context(request: Request) -> AppContext:
    """The app's context (a plain function, for use outside dependency injection)."""
    context: AppContext = request.app.state.context
    return context


async def get_context(request: Request) -> AppContext:
    """The app's context; async so that FastAPI does not hop to the threadpool for it."""
    return app_context(request)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session for this request; services commit, teardown ends what is left.

    Async so that FastAPI does not hop to the threadpool to open and close it: a session
    connects lazily, and closing one whose service committed does no I/O.
    """
    session = app_context(request).sessions()
    try:
        yield session
        _end_reads_of_safe_request(request, session)
    finally:
        session.close()


def _end_reads_of_safe_request(request: Request, session: Session) -> None:
    """A GET, HEAD or OPTIONS that succeeded ends its reads with COMMIT; the rest roll back on close.

    Safe methods change nothing the caller did not commit through a service (the annotate
    page commits its lease), so what is left open is reads. Ending them with the ROLLBACK of
    `Session.close` would make psycopg forget every prepared statement of the connection,
    which the annotation loop's requests then use to plan their statements again.
    """
    if request.method in SAFE_METHODS:
        commit_reads(session)


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
    """The caller, from a bearer token or the session cookie, or None."""
    return await _identify(request, session, app_context(request))


async def _identify(request: Request, session: Session, context: AppContext) -> Principal | None:
    # A recently verified API token is answered from memory; only a miss goes to the
    # database: on SQLite a local read on the event loop, else in the threadpool.
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = _bearer_token(request)
    principal: Principal | None = None
    if token is not None:
        principal = context.token_cache.get(digest(token))
        if principal is None:
            principal = await _read_principal(context, _principal_for_token, session, token, context.token_cache)
        if principal is None:
            raise NotAuthenticated("invalid_token", "This API token is unknown or revoked.")
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            principal = await _read_principal(context, _principal_for_cookie, session, cookie)
    request.state.principal = principal
    return principal


async def _read_principal(context: AppContext, read: Callable[..., Principal | None], *args: Any) -> Principal | None:
    """The caller read from the database: inline on SQLite, in the threadpool otherwise.

    Inline because SQLite's read is microseconds of local work, while a thread on a busy
    event loop waits for the GIL again after each SQLite call (docs/benchmarks.md, "Soak").
    """
    if context.inline_database:
        return read(*args)
    return await run_in_threadpool(read, *args)


def _principal_for_token(session: Session, token: str, cache: accounts.TokenCache) -> Principal | None:
    """A token looked up in the database, its read ended where it ran.

    No session may hold a connection while its request waits for the event loop: a service
    running inline on the loop (SQLite) would wait for the pool, with every connection held
    by requests that cannot resume until it returns (a cold start with many annotators).
    The read ends with COMMIT: on a ROLLBACK psycopg forgets the connection's prepared statements.
    """
    try:
        principal = accounts.principal_for_api_token(session, token=token, cache=cache)
        commit_reads(session)
        return principal
    finally:
        session.close()


def _principal_for_cookie(session: Session, cookie: str) -> Principal | None:
    """A login session looked up, its read ended where it ran (see `_principal_for_token`)."""
    try:
        principal = accounts.principal_for_session(session, token=cookie)
        commit_reads(session)
        return principal
    finally:
        session.close()


async def require_principal(
    request: Request, principal: Annotated[Principal | None, Depends(optional_principal)]
) -> Principal:
    """The authenticated caller; state-changing cookie requests must carry the CSRF token."""
    return await _authorize(request, principal)


async def _authorize(request: Request, principal: Principal | None) -> Principal:
    if principal is None:
        raise NotAuthenticated("not_authenticated", "Log in or send an API token.")
    if request.method not in SAFE_METHODS and principal.method is AuthMethod.SESSION:
        await check_csrf(request, expected=principal.csrf_token or "")
    return principal


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated API request: its session, its caller and the app's context."""

    session: Session
    principal: Principal
    context: AppContext

    async def run(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking service function: inline on SQLite, else in a thread (one hop), once one of
        the `database_concurrency` places is free: past a few at once, more threads only contend."""
        if self.context.inline_database:
            # SQLite: microseconds of local work, so no thread hop; but never wait for the
            # writer lock on the event loop: if it is taken, start over in the threadpool.
            self.session.info[NOWAIT_SESSION_FLAG] = True
            try:
                return function(*args, **kwargs)
            except WriterBusy:
                self.session.rollback()
            finally:
                self.session.info.pop(NOWAIT_SESSION_FLAG, None)
        return await to_thread.run_sync(
            functools.partial(function, *args, **kwargs), limiter=self.context.database_limiter
        )

    async def run_then_close(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`run`, then end the session whatever happened (a `hot_call` endpoint's teardown)."""
        try:
            return await self.run(function, *args, **kwargs)
        finally:
            self.session.close()


async def authenticated_call(request: Request) -> AsyncIterator[Call]:
    """Session, caller and context as one dependency: the JSON API resolves one, not four."""
    context = app_context(request)
    session = context.sessions()
    try:
        principal = await _authorize(request, await _identify(request, session, context))
        yield Call(session, principal, context)
        _end_reads_of_safe_request(request, session)
    finally:
        session.close()


async def hot_call(request: Request) -> Call:
    """`authenticated_call` without teardown, for the annotation loop's endpoints.

    A generator dependency costs FastAPI an exit stack and a shielded cancel scope per
    request. This one hands over a session that holds no connection yet (a token looked up
    in the database ends its read where it ran), so a request refused before the endpoint
    runs leaves nothing open; the endpoint closes the session once it used it (`Call.run_then_close`).
    """
    context = app_context(request)
    session = context.sessions()
    principal = await _authorize(request, await _identify(request, session, context))
    return Call(session, principal, context)


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
ApiCall = Annotated[Call, Depends(authenticated_call)]
HotCall = Annotated[Call, Depends(hot_call)]
