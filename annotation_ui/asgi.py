"""The full application: JSON API plus pages and static files."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from annotation_ui import (
    account_views,
    arbitration_views,
    audit_views,
    calibration_views,
    clarification_views,
    export_views,
    gold_views,
    import_views,
    lead_views,
    leaderboard_views,
    quality_views,
    task_views,
)
from annotation_ui.rendering import STATIC_DIR
from annotation_ui.views import render_page_error, router
from app.main import create_api_app
from app.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build prefstack's ASGI app for `settings` (read from the environment when None)."""
    application = create_api_app(settings or Settings())
    application.state.page_error_renderer = render_page_error
    application.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    application.include_router(router)
    application.include_router(task_views.router)
    application.include_router(account_views.router)
    application.include_router(arbitration_views.router)
    application.include_router(gold_views.router)
    application.include_router(lead_views.router)
    application.include_router(export_views.router)
    application.include_router(clarification_views.router)
    application.include_router(calibration_views.router)
    application.include_router(quality_views.router)
    application.include_router(leaderboard_views.router)
    application.include_router(import_views.router)
    application.include_router(audit_views.router)
    return application
