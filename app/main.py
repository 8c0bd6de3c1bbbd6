"""The application factory: settings in, FastAPI app out."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from anyio import CapacityLimiter
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import DataError, InterfaceError, OperationalError

import app as app_package
from app import database
from app.api import arbitration, calibration, clarifications, export_jobs, items, operations, quality, v1
from app.api import audit as audit_api
from app.api import gold as gold_api
from app.api import leaderboard as leaderboard_api
from app.body_limit import BodyLimit
from app.deps import AppContext
from app.errors import InvalidInput, PrefstackError, ServiceUnavailable, TooManyRequests
from app.observability import RequestObserver, configure_logging
from app.security_headers import SecurityHeaders
from app.services.accounts import LoginThrottle, TokenCache
from app.services.annotation import LeaseReaper
from app.services.export_jobs import ExportJobRunner, exports_directory
from app.services.progress import StreakCache
from app.services.projects import ProjectAccessCache
from app.settings import Environment, Settings
from preference_store.engine import build_engine, runs_inline, session_factory, sqlite_file
from preference_store.wal_checkpoints import WalCheckpointer

PageErrorRenderer = Callable[[Request, PrefstackError], Awaitable[Response]]


def create_api_app(settings: Settings) -> FastAPI:
    """The JSON API with its state; `annotation_ui.asgi.create_app` adds the pages."""
    configure_logging(settings.log)
    engine = build_engine(settings.database_url, pool_size=settings.database_pool_size, serving=True)
    context = AppContext(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        secret_key=settings.resolved_secret_key(),
        token_cache=TokenCache(settings.security.token_cache_seconds),
        login_throttle=LoginThrottle(settings.security.login_attempts_per_minute),
        project_cache=ProjectAccessCache(settings.annotation.access_cache_seconds),
        streak_cache=StreakCache(),
        lease_reaper=LeaseReaper(settings.annotation.lease_sweep_seconds),
        inline_database=runs_inline(engine),
        database_limiter=CapacityLimiter(settings.resolved_database_concurrency()),
    )

    @asynccontextmanager
    async def lifespan(started: FastAPI) -> AsyncIterator[None]:
        with engine.connect() as connection:  # fail fast and warm the pool
            connection.execute(text("SELECT 1"))
        # Built at start-up from the context as it is then (tests swap in their sessions).
        runner = ExportJobRunner(
            sessions=started.state.context.sessions,
            directory=exports_directory(settings),
            prefstack_version=app_package.__version__,
        )
        started.state.export_jobs = runner
        runner.recover_interrupted()
        database_file = sqlite_file(engine)
        checkpointer = WalCheckpointer(database_file) if database_file is not None else None
        if checkpointer is not None:
            checkpointer.start()
        if settings.environment is not Environment.TEST:
            _freeze_startup_objects()
        try:
            yield
        finally:
            if checkpointer is not None:
                checkpointer.stop()
            engine.dispose()

    application = FastAPI(
        title="prefstack",
        version=app_package.__version__,
        description="Annotation and preference data for RLHF: pairwise judgments in, TRL datasets out.",
        lifespan=lifespan,
    )
    application.state.context = context
    application.state.page_error_renderer = None
    application.state.migration_head = database.head_revision()
    application.add_middleware(
        BodyLimit,
        default_bytes=settings.annotation.max_request_kb * 1024,
        bulk_bytes=settings.annotation.max_upload_mb * 1024 * 1024,
    )
    application.add_middleware(SecurityHeaders, https=settings.cookies_secure)
    application.add_middleware(RequestObserver, access_log=settings.log.access)
    application.include_router(v1.router)  # first: the annotation loop's routes are matched first
    application.include_router(operations.router)
    # Before items: its /items/{external_id:path} would swallow .../gold.
    application.include_router(gold_api.router)
    application.include_router(items.router)
    application.include_router(export_jobs.router)
    application.include_router(quality.router)
    application.include_router(leaderboard_api.router)
    application.include_router(clarifications.router)
    application.include_router(calibration.router)
    application.include_router(arbitration.router)
    application.include_router(audit_api.router)
    _install_error_handlers(application)

    return application


def _freeze_startup_objects() -> None:
    """Move everything alive after start-up (modules, routes, compiled statements, caches) out of
    the garbage collector's reach: a full collection then walks only what requests allocate, and
    stops pausing the server for milliseconds (docs/benchmarks.md, "Load"). Tests build many apps
    in one process and skip this, so their garbage stays collectable."""
    gc.collect()
    gc.freeze()


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _is_sqlite_programming_error(error: OperationalError) -> bool:
    """SQLite reports mistakes ("no such table") as OperationalError too: those stay 500s."""
    transient = ("locked", "busy", "unable to open")
    message = str(error.orig).lower()
    return "sqlite" in type(error.orig).__module__ and not any(word in message for word in transient)


def _install_error_handlers(application: FastAPI) -> None:
    async def prefstack_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, PrefstackError)
        renderer: PageErrorRenderer | None = request.app.state.page_error_renderer
        if renderer is not None and not _is_api(request):
            return await renderer(request, error)
        headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
        if isinstance(error, TooManyRequests | ServiceUnavailable):
            headers = {"Retry-After": str(error.retry_after)}
        return JSONResponse({"error": error.as_dict()}, status_code=error.status_code, headers=headers)

    async def validation_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        problems = []
        for detail in error.errors():
            location = [str(part) for part in detail.get("loc", ()) if part not in ("body", "query", "path")]
            problems.append({"message": detail.get("msg", "invalid"), "field": ".".join(location) or None, "row": None})
        first = problems[0] if problems else {"message": "invalid request", "field": None}
        body = {
            "code": "invalid_request",
            "message": f"{first['field']}: {first['message']}" if first["field"] else str(first["message"]),
            "field": first["field"],
            "row": None,
            "problems": problems,
        }
        return JSONResponse({"error": body}, status_code=422)

    async def out_of_range(request: Request, error: Exception) -> Response:
        # An id or number past what the database column holds (SQLite: OverflowError on
        # binding; PostgreSQL: a DataError) is bad input, not a server failure.
        return await prefstack_error(
            request,
            InvalidInput("value_out_of_range", "A value in the request is out of the range this server stores."),
        )

    async def database_unavailable(request: Request, error: Exception) -> Response:
        # A lost or refused connection (PostgreSQL restarting, a failover) or a busy SQLite
        # file: the pool reconnects on the next checkout (pre-ping), so the caller may retry.
        if isinstance(error, OperationalError) and _is_sqlite_programming_error(error):
            raise error
        logging.getLogger("prefstack.database").warning("database unavailable: %s", type(error).__name__)
        return await prefstack_error(
            request, ServiceUnavailable("database_unavailable", "The database is unavailable for a moment. Retry.")
        )

    application.add_exception_handler(PrefstackError, prefstack_error)
    application.add_exception_handler(OperationalError, database_unavailable)
    application.add_exception_handler(InterfaceError, database_unavailable)
    application.add_exception_handler(OverflowError, out_of_range)
    application.add_exception_handler(DataError, out_of_range)
    application.add_exception_handler(RequestValidationError, validation_error)
