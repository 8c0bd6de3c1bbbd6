"""Request ids, JSON access logs, Prometheus metrics, /healthz and /readyz, several workers."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from annotation_ui.asgi import create_app
from app import database
from app.observability import JsonFormatter, request_id_var
from app.settings import OperationsSettings, Settings
from preference_store.engine import build_engine
from tests.databases import fresh_database, migrated_database

PAGE_ROUTE = "/api/v1/projects/{slug}"


def _counter(metrics: str, route: str, status: str) -> float:
    pattern = re.compile(
        r'^prefstack_http_requests_total\{method="GET",route="'
        + re.escape(route)
        + r'",status="'
        + status
        + r'"\} (\S+)$',
        re.MULTILINE,
    )
    return sum(float(value) for value in pattern.findall(metrics))


def test_every_response_carries_a_request_id_and_a_sane_one_is_kept(client: TestClient) -> None:
    generated = client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    kept = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a:42"})
    assert kept.headers["x-request-id"] == "lb-7f3a:42"
    hostile = client.get("/healthz", headers={"X-Request-ID": "<script>" + "x" * 80})
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["x-request-id"])


def test_metrics_count_requests_by_route_template_not_raw_path(client: TestClient) -> None:
    before = _counter(client.get("/metrics").text, PAGE_ROUTE, "401")
    for slug in ("alpha", "beta", "gamma"):
        assert client.get(f"/api/v1/projects/{slug}").status_code == 401
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert _counter(metrics.text, PAGE_ROUTE, "401") == before + 3
    assert "/api/v1/projects/alpha" not in metrics.text
    assert "prefstack_http_request_duration_seconds_bucket" in metrics.text
    assert "prefstack_db_connections_in_use" in metrics.text


def test_metrics_can_require_a_token_or_be_turned_off(settings: Settings, engine: Engine) -> None:
    guarded = settings.model_copy(update={"operations": OperationsSettings(metrics_token="s3cret-metrics")})
    with TestClient(create_app(guarded)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"}).status_code == 200
    off = settings.model_copy(update={"operations": OperationsSettings(metrics_enabled=False)})
    with TestClient(create_app(off)) as client:
        assert client.get("/metrics").status_code == 404


def test_json_access_log_lines_name_the_request(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="prefstack.access"):
        client.get("/api/v1/projects/alpha", headers={"X-Request-ID": "req-123"})
    [record] = [r for r in caplog.records if r.name == "prefstack.access" and getattr(r, "status", None) == 401]
    token = request_id_var.set("req-123")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "req-123"
    assert line["route"] == PAGE_ROUTE
    assert line["path"] == "/api/v1/projects/alpha"
    assert line["status"] == 401
    assert line["level"] == "info"
    assert isinstance(line["duration_ms"], float)


def test_readyz_is_ready_on_a_migrated_database(client: TestClient) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok"}}


def test_readyz_refuses_a_database_behind_the_code(tmp_path: Path, settings: Settings) -> None:
    with fresh_database(tmp_path) as url:
        engine = build_engine(url, pool_size=1)
        previous = _revision_before_head()
        try:
            database.upgrade(engine, previous)
        finally:
            engine.dispose()
        with TestClient(create_app(settings.model_copy(update={"database_url": url}))) as client:
            answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"]["migrations"] == f"at {previous}, expected {database.head_revision()}"


def _revision_before_head() -> str:
    script = ScriptDirectory.from_config(database.alembic_config("sqlite://"))
    previous = script.get_revision(database.head_revision()).down_revision
    assert isinstance(previous, str)
    return previous


def test_readyz_reports_an_unreachable_database_and_recovers(tmp_path: Path, settings: Settings) -> None:
    with (
        migrated_database(tmp_path) as url,
        TestClient(create_app(settings.model_copy(update={"database_url": url}))) as client,
    ):
        assert client.get("/readyz").status_code == 200
        context = client.app.state.context  # type: ignore[attr-defined]
        context.engine.dispose()
        with _database_unreachable(url):
            down = client.get("/readyz")
            api_down = client.get("/api/v1/projects/any", headers={"Authorization": "Bearer pst_not-a-real-token"})
        assert client.get("/readyz").status_code == 200
        api_up = client.get("/api/v1/projects/any", headers={"Authorization": "Bearer pst_not-a-real-token"})
    assert down.status_code == 503
    assert down.json()["checks"]["database"].startswith("unreachable")
    assert api_down.status_code == 503, api_down.text
    assert api_down.json()["error"]["code"] == "database_unavailable"
    assert api_down.headers["retry-after"] == "2"
    assert api_up.status_code == 401


class _database_unreachable:
    """Make the database refuse connections: rename the SQLite file, or block PostgreSQL logins."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)

    def __enter__(self) -> None:
        if self.url.get_backend_name() == "sqlite":
            path = Path(str(self.url.database))
            self.moved = path.with_suffix(".away")
            path.rename(self.moved)
            # SQLite would create an empty file: a directory in its place cannot be opened.
            path.mkdir()
            self.path = path
        else:
            self._postgres(f'ALTER DATABASE "{self.url.database}" WITH ALLOW_CONNECTIONS false')

    def __exit__(self, *exc: object) -> None:
        if self.url.get_backend_name() == "sqlite":
            self.path.rmdir()
            self.moved.rename(self.path)
        else:
            self._postgres(f'ALTER DATABASE "{self.url.database}" WITH ALLOW_CONNECTIONS true')

    def _postgres(self, statement: str) -> None:
        admin = create_engine(self.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.exec_driver_sql(statement)
                connection.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{self.url.database}' AND pid <> pg_backend_pid()"
                )
        finally:
            admin.dispose()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`prefstack serve --workers 2` on a migrated database, logging JSON lines to a file."""
    with migrated_database(tmp_path) as url:
        port = _free_port()
        log = tmp_path / "server.log"
        environment = {
            **os.environ,
            "PREFSTACK_DATABASE_URL": url,
            "PREFSTACK_SECRET_KEY": "observability-test-secret-0123456789abcdef",
            "PREFSTACK_LOG__FORMAT": "json",
        }
        environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with log.open("wb") as sink:
            server = subprocess.Popen(
                [str(Path(sys.executable).with_name("prefstack")), "serve", "--port", str(port), "--workers", "2"],
                env=environment,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
            base = f"http://127.0.0.1:{port}"
            try:
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline:
                    try:
                        if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.2)
                else:
                    pytest.fail("the server did not become ready: " + log.read_text(errors="replace")[-2000:])
                yield base, log
            finally:
                server.terminate()
                server.wait(timeout=30)


def test_several_workers_sum_their_metrics_and_log_json(two_workers: tuple[str, Path]) -> None:
    base, log = two_workers
    with httpx.Client(base_url=base, timeout=5) as http:
        for number in range(40):
            # A new connection each time, so that both workers get requests.
            assert httpx.get(f"{base}/healthz", headers={"X-Request-ID": f"probe-{number}"}).status_code == 200
        metrics = http.get("/metrics").text
    assert _counter(metrics, "/healthz", "200") == 40
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    probes = [line for line in lines if str(line.get("request_id", "")).startswith("probe-")]
    assert len(probes) == 40
    assert {line["route"] for line in probes} == {"/healthz"}
    assert all(line["logger"] == "prefstack.access" for line in probes)
