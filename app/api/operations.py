"""Liveness, readiness and metrics for load balancers, orchestrators and Prometheus."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from app import database
from app.deps import AppContext, get_context
from app.observability import metrics_text

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers; says nothing about the database (that is `/readyz`)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request, context: Annotated[AppContext, Depends(get_context)]) -> JSONResponse:
    """Ready to serve: the database answers and its schema is at this code's migration head."""
    checks: dict[str, str] = {}
    try:
        applied = await run_in_threadpool(_ping_and_revision, context)
    except Exception as error:  # any failure to reach the database means "not ready"
        checks["database"] = f"unreachable: {type(error).__name__}"
    else:
        checks["database"] = "ok"
        expected = request.app.state.migration_head
        checks["migrations"] = "ok" if applied == expected else f"at {applied}, expected {expected}"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )


def _ping_and_revision(context: AppContext) -> str | None:
    with context.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return database.applied_revision(context.engine)


@router.get("/metrics")
async def metrics(
    context: Annotated[AppContext, Depends(get_context)],
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    operations = context.settings.operations
    if not operations.metrics_enabled:
        return PlainTextResponse("metrics are turned off\n", status_code=404)
    if operations.metrics_token is not None:
        expected = f"Bearer {operations.metrics_token.get_secret_value()}"
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected.encode()):
            # Answered here, not raised: the pages' error handler would redirect to the login form.
            return PlainTextResponse(
                "metrics need the configured bearer token\n", status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
    return Response(metrics_text(context.engine), media_type=CONTENT_TYPE_LATEST)
