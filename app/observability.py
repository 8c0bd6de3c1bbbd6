"""Request ids, structured JSON logs and Prometheus metrics for every HTTP request.

One pure-ASGI middleware (`RequestObserver`) gives each request an id (the caller's
`X-Request-ID` when it is sane, else a new one), echoes it in the response, logs one
access line and records the request in the metrics. With several worker processes the
metrics are kept in `PROMETHEUS_MULTIPROC_DIR` and summed at scrape time.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.settings import LogFormat, LogSettings

REQUEST_ID_HEADER: Final = "x-request-id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
_HANDLER_NAME: Final = "prefstack"
_ACCESS_LOGGER: Final = "prefstack.access"

request_id_var: ContextVar[str | None] = ContextVar("prefstack_request_id", default=None)

HTTP_REQUESTS = Counter(
    "prefstack_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ("method", "route", "status"),
)
HTTP_DURATION = Histogram(
    "prefstack_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response body.",
    ("method", "route"),
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HTTP_IN_FLIGHT = Gauge(
    "prefstack_http_requests_in_flight",
    "Requests being handled now.",
    multiprocess_mode="livesum",
)


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/api/v1/projects/{slug}/next`), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


def request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _SANE_REQUEST_ID.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class _RouteMetrics:
    """The labelled children of the request metrics, looked up once per label values.

    `labels()` validates, joins and locks on every call; the children never change, and
    routes, methods and statuses are few.
    """

    def __init__(self) -> None:
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    def record(self, method: str, route: str, status: int, elapsed: float) -> None:
        counted = self._counted.get((method, route, status))
        if counted is None:
            counted = self._counted[(method, route, status)] = HTTP_REQUESTS.labels(method, route, str(status))
        timed = self._timed.get((method, route))
        if timed is None:
            timed = self._timed[(method, route)] = HTTP_DURATION.labels(method, route)
        counted.inc()
        timed.observe(elapsed)


class RequestObserver:
    """Pure ASGI middleware: request id, access log line and metrics for each HTTP request."""

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log
        self.logger = logging.getLogger(_ACCESS_LOGGER)
        self.metrics = _RouteMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        header = (REQUEST_ID_HEADER.encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            HTTP_IN_FLIGHT.dec()
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            method = scope["method"]
            self.metrics.record(method, route, status, elapsed)
            if self.access_log and self.logger.isEnabledFor(logging.INFO):
                self.logger.info(
                    "%s %s %s",
                    method,
                    scope["path"],
                    status,
                    extra={
                        "method": method,
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "client": (scope.get("client") or ("", 0))[0],
                    },
                )
            request_id_var.reset(token)


_STANDARD_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = request_id_var.get()
        return f"{line} [{request_id}]" if request_id else line


def configure_logging(settings: LogSettings) -> None:
    """Send prefstack's and uvicorn's logs to stderr in the configured format (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if settings.format is LogFormat.JSON else TextFormatter())
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # RequestObserver writes the access lines, with the request id and route.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False


class _DatabaseCollector(Collector):
    """Connection-pool figures of this process's engine, read at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[GaugeMetricFamily]:
        pool = self.engine.pool
        checked_out = getattr(pool, "checkedout", None)
        if callable(checked_out):
            in_use = GaugeMetricFamily(
                "prefstack_db_connections_in_use", "Connections checked out of the scraped process's pool."
            )
            in_use.add_metric([], float(checked_out()))
            yield in_use


def metrics_text(engine: Engine) -> bytes:
    """The Prometheus text exposition: every worker's counters when several run, plus this pool."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        for metric in (HTTP_REQUESTS, HTTP_DURATION, HTTP_IN_FLIGHT):
            registry.register(metric)
    registry.register(_DatabaseCollector(engine))
    return generate_latest(registry)
