"""The application factory: settings in, FastAPI app out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

import app as app_package
from app.api import clarifications, export_jobs, items, quality, v1
from app.deps import AppContext
from app.errors import PrefstackError
from app.services.accounts import LoginThrottle, TokenCache
from app.services.annotation import LeaseReaper
from app.services.export_jobs import ExportJobRunner, exports_directory
from app.services.projects import ProjectAccessCache
from app.settings import Settings
from preference_store.engine import build_engine, runs_inline, session_factory

PageErrorRenderer = Callable[[Request, PrefstackError], Awaitable[Response]]


def create_api_app(settings: Settings) -> FastAPI:
    """The JSON API with its state; `annotation_ui.asgi.create_app` adds the pages."""
    engine = build_engine(settings.database_url, pool_size=settings.database_pool_size)
    context = AppContext(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        secret_key=settings.resolved_secret_key(),
        token_cache=TokenCache(settings.security.token_cache_seconds),
        login_throttle=LoginThrottle(settings.security.login_attempts_per_minute),
        project_cache=ProjectAccessCache(settings.annotation.access_cache_seconds),
        lease_reaper=LeaseReaper(settings.annotation.lease_sweep_seconds),
        inline_database=runs_inline(engine),
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
        yield
        engine.dispose()

    application = FastAPI(
        title="prefstack",
        version=app_package.__version__,
        description="Annotation and preference data for RLHF: pairwise judgments in, TRL datasets out.",
        lifespan=lifespan,
    )
    application.state.context = context
    application.state.page_error_renderer = None
    application.include_router(v1.router)
    application.include_router(items.router)
    application.include_router(export_jobs.router)
    application.include_router(quality.router)
    application.include_router(clarifications.router)
    _install_error_handlers(application)

    @application.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return application


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _install_error_handlers(application: FastAPI) -> None:
    async def prefstack_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, PrefstackError)
        renderer: PageErrorRenderer | None = request.app.state.page_error_renderer
        if renderer is not None and not _is_api(request):
            return await renderer(request, error)
        headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
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

    application.add_exception_handler(PrefstackError, prefstack_error)
    application.add_exception_handler(RequestValidationError, validation_error)
