"""The nginx config of docs/deploy.md, as written, in front of `prefstack serve` in production mode.

The config block is read from the doc; only what a test machine must change is substituted
(ports, certificate paths, log paths, the body limit), each one checked to be there, so the doc
cannot drift from what is tested. Workers: two on PostgreSQL, one on SQLite (docs/deploy.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app import database
from app.services import accounts
from preference_store.engine import build_engine, session_factory
from preference_store.models import Role
from tests.conftest import native_item
from tests.databases import backend, fresh_database

pytestmark = pytest.mark.deployment

DEPLOY_DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
OPENSSL = shutil.which("openssl")
PREFSTACK = Path(sys.executable).parent / "prefstack"
ADMIN, ANNOTATOR = "ops-admin@example.org", "ops-annotator@example.org"
PASSWORD = "a long enough password 42"
SLUG = "behind-proxy"
UPLOAD_LIMIT_MB = 1


@dataclass(frozen=True)
class Deployment:
    """nginx on `https` in front of prefstack on `upstream`, with their logs and two API tokens."""

    https: str
    upstream: str
    tls: ssl.SSLContext
    app_log: Path
    proxy_log: Path
    admin_token: str
    annotator_token: str

    def client(self, headers: dict[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.https, verify=self.tls, timeout=30, headers=headers)

    def app_lines(self) -> list[dict[str, object]]:
        text = self.app_log.read_text(errors="replace")
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def documented_nginx_block() -> str:
    match = re.search(r"### nginx\n\n```nginx\n(.*?)```", DEPLOY_DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert match, "docs/deploy.md has no ```nginx block under '### nginx'"
    return match.group(1)


def _substitute(config: str, old: str, new: str) -> str:
    assert config.count(old) == 1, f"docs/deploy.md's nginx block changed: expected {old!r} once"
    return config.replace(old, new)


def nginx_config(workdir: Path, *, https_port: int, upstream_port: int, cert: Path, key: Path) -> Path:
    """The documented block inside a minimal main config that keeps every file under `workdir`."""
    block = documented_nginx_block()
    for old, new in [
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream_port};"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("/etc/prefstack/tls/fullchain.pem", str(cert)),
        ("/etc/prefstack/tls/privkey.pem", str(key)),
        ("/var/log/nginx/prefstack.log", str(workdir / "proxy-access.log")),
        ("client_max_body_size 200m;", f"client_max_body_size {UPLOAD_LIMIT_MB}m;"),
    ]:
        block = _substitute(block, old, new)
    temp = {name: workdir / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir()
    # nginx's workers would drop to `nobody`, who cannot enter pytest's 0700 directories.
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = (
        f"{user}daemon off;\nworker_processes 1;\npid {workdir / 'nginx.pid'};\n"
        f"error_log {workdir / 'nginx-error.log'} warn;\nevents {{ worker_connections 256; }}\n"
        "http {\n"
        f"  access_log off;\n  client_body_temp_path {temp['body']};\n  proxy_temp_path {temp['proxy']};\n"
        f"  fastcgi_temp_path {temp['fastcgi']};\n  uwsgi_temp_path {temp['uwsgi']};\n"
        f"  scgi_temp_path {temp['scgi']};\n"
        f"{block}}}\n"
    )
    path = workdir / "nginx.conf"
    path.write_text(main, encoding="utf-8")
    return path


def self_signed_certificate(workdir: Path) -> tuple[Path, Path]:
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        [OPENSSL or "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until(ready: Callable[[], bool], what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited ({process.returncode}): {log.read_text(errors='replace')[-3000:]}")
        try:
            if ready():
                return
        except (httpx.TransportError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"{what} did not come up: {log.read_text(errors='replace')[-3000:]}")


def _seed_accounts(url: str) -> tuple[str, str]:
    engine = build_engine(url, pool_size=1)
    try:
        database.upgrade(engine)
        with session_factory(engine)() as session:
            accounts.create_user(session, email=ADMIN, name="Ops Admin", role=Role.ADMIN, password=PASSWORD)
            accounts.create_user(session, email=ANNOTATOR, name="Ops Annotator", role=Role.ANNOTATOR, password=PASSWORD)
            admin = accounts.create_api_token(session, email=ADMIN).token
            annotator = accounts.create_api_token(session, email=ANNOTATOR).token
    finally:
        engine.dispose()
    return admin, annotator


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    if not Path(NGINX).exists() or OPENSSL is None:
        message = "nginx and openssl are needed (apt-get install nginx-light openssl)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    workdir = tmp_path_factory.mktemp("behind-nginx")
    with fresh_database(workdir) as url:
        admin_token, annotator_token = _seed_accounts(url)
        cert, key = self_signed_certificate(workdir)
        https_port, upstream_port = _free_port(), _free_port()
        app_log, nginx_log = workdir / "prefstack.log", workdir / "nginx-error.log"
        environment = {
            **os.environ,
            "PREFSTACK_ENVIRONMENT": "production",
            "PREFSTACK_SECRET_KEY": "behind-nginx-" + "s" * 40,
            "PREFSTACK_DATABASE_URL": url,
            "PREFSTACK_HOST": "127.0.0.1",
            "PREFSTACK_PORT": str(upstream_port),
            "PREFSTACK_WORKERS": "2" if backend() == "postgresql" else "1",
            "PREFSTACK_LOG__FORMAT": "json",
            "PREFSTACK_ANNOTATION__MAX_UPLOAD_MB": str(UPLOAD_LIMIT_MB),
            "PREFSTACK_SECURITY__LOGIN_ATTEMPTS_PER_MINUTE": "3",
            "FORWARDED_ALLOW_IPS": "127.0.0.1",
        }
        environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
        upstream = f"http://127.0.0.1:{upstream_port}"
        config = nginx_config(workdir, https_port=https_port, upstream_port=upstream_port, cert=cert, key=key)
        checked = subprocess.run(
            [NGINX, "-t", "-c", str(config), "-p", str(workdir)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stderr
        with app_log.open("wb") as sink:
            server = subprocess.Popen(
                [str(PREFSTACK), "serve"], env=environment, cwd=workdir, stdout=sink, stderr=subprocess.STDOUT
            )
            proxy = subprocess.Popen(
                [NGINX, "-c", str(config), "-p", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            tls = ssl.create_default_context(cafile=str(cert))
            try:
                _wait_until(lambda: httpx.get(f"{upstream}/readyz").status_code == 200, "prefstack", server, app_log)
                https = f"https://127.0.0.1:{https_port}"
                proxied = f"{https}/healthz"
                _wait_until(lambda: httpx.get(proxied, verify=tls).status_code == 200, "nginx", proxy, nginx_log)
                yield Deployment(
                    https, upstream, tls, app_log, workdir / "proxy-access.log", admin_token, annotator_token
                )
            finally:
                _stop(proxy)
                _stop(server)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_annotators_work_through_the_proxy_and_imports_stream_through_it(deployment: Deployment) -> None:
    admin, annotator = _bearer(deployment.admin_token), _bearer(deployment.annotator_token)
    with deployment.client() as https:
        created = https.post("/api/v1/projects", json={"slug": SLUG, "name": "Behind nginx"}, headers=admin)
        assert created.status_code == 201, created.text
        members = https.post(f"/api/v1/projects/{SLUG}/members", json={"emails": [ANNOTATOR]}, headers=admin)
        assert members.status_code == 200, members.text
        items = [native_item(f"proxy-{number}", prompt="สวัสดี " * 200) for number in range(60)]
        imported = https.post(f"/api/v1/projects/{SLUG}/items", json=items, headers=admin)
        assert imported.status_code == 200, imported.text
        assert imported.json() == {"created": 60, "unchanged": 0}

        judgments: set[int] = set()
        for _ in range(5):
            task = https.get(f"/api/v1/projects/{SLUG}/next", headers=annotator)
            assert task.status_code == 200, task.text
            judgment = f"/api/v1/assignments/{task.json()['assignment_id']}/judgment"
            first = https.post(judgment, json={"choice": "A"}, headers=annotator)
            again = https.post(judgment, json={"choice": "A"}, headers=annotator)
            assert (first.status_code, again.status_code) == (201, 200), first.text
            assert first.json()["judgment_id"] == again.json()["judgment_id"]
            judgments.add(first.json()["judgment_id"])
        mine = https.get(f"/api/v1/projects/{SLUG}/my/judgments", headers=annotator)
        assert mine.status_code == 200
        assert {entry["judgment_id"] for entry in mine.json()} == judgments
        assert len({entry["external_id"] for entry in mine.json()}) == 5


def test_a_body_over_the_limit_is_refused_by_the_proxy(deployment: Deployment) -> None:
    too_big = b"[" + b" " * (UPLOAD_LIMIT_MB * 1024 * 1024 + 1) + b"]"
    with deployment.client() as https:
        refused = https.post(
            f"/api/v1/projects/{SLUG}/items",
            content=too_big,
            headers={**_bearer(deployment.admin_token), "Content-Type": "application/json"},
        )
    assert refused.status_code == 413
    assert "nginx" in refused.text  # refused at the proxy, before prefstack read a byte


def test_login_over_https_sets_secure_cookies_and_stays_on_https(deployment: Deployment) -> None:
    with deployment.client() as https:
        anonymous = https.get("/")
        assert anonymous.status_code == 303
        assert str(https.build_request("GET", anonymous.headers["location"]).url).startswith(deployment.https)
        form = https.get("/login")
        assert "strict-transport-security" in form.headers
        assert _cookie_flags(form, "prefstack_login_csrf") >= {"secure", "httponly", "samesite=lax"}
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token
        logged_in = https.post(
            "/login", data={"email": ANNOTATOR, "password": PASSWORD, "csrf_token": token.group(1), "next": "/"}
        )
        assert logged_in.status_code == 303, logged_in.text
        assert _cookie_flags(logged_in, "prefstack_session") >= {"secure", "httponly", "samesite=lax"}
        home = https.get("/", follow_redirects=True)
        assert home.status_code == 200
        assert str(home.url).startswith(deployment.https)
        assert "Ops Annotator" in home.text


def _cookie_flags(response: httpx.Response, name: str) -> set[str]:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return {part.strip().lower() for part in header.split(";")[1:]}
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('set-cookie')}")


def test_failed_logins_are_counted_per_client_address_behind_the_proxy(deployment: Deployment) -> None:
    """uvicorn takes the client from nginx's X-Forwarded-For: one client's failures lock out that client only."""

    def attempt(client_address: str, email: str, password: str) -> httpx.Response:
        with deployment.client({"X-Forwarded-For": client_address}) as https:
            form = https.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token
            fields = {"email": email, "password": password, "csrf_token": token.group(1), "next": "/"}
            return https.post("/login", data=fields)

    for _ in range(3):
        assert attempt("203.0.113.7", "nobody@example.org", "wrong password").status_code == 401
    assert attempt("203.0.113.7", "nobody@example.org", "wrong password").status_code == 429
    assert attempt("198.51.100.9", ADMIN, PASSWORD).status_code == 303
    clients = {line.get("client") for line in deployment.app_lines() if line.get("path") == "/login"}
    assert {"203.0.113.7", "198.51.100.9"} <= clients


def test_the_proxy_request_id_is_in_both_logs(deployment: Deployment) -> None:
    with deployment.client() as https:
        answer = https.get("/healthz")
    assert answer.status_code == 200
    request_id = answer.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)  # nginx's $request_id, kept by prefstack
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        app_lines = [line for line in deployment.app_lines() if line.get("request_id") == request_id]
        proxy_log = deployment.proxy_log.read_text() if deployment.proxy_log.exists() else ""
        if app_lines and request_id in proxy_log:
            break
        time.sleep(0.1)
    assert [line["route"] for line in app_lines] == ["/healthz"]
    assert request_id in proxy_log


def test_metrics_answer_only_the_allowed_network(deployment: Deployment) -> None:
    with deployment.client() as https:
        assert https.get("/metrics").status_code == 403  # 127.0.0.1 is not in 10.0.0.0/8
    direct = httpx.get(f"{deployment.upstream}/metrics")
    assert direct.status_code == 200
    assert "prefstack_http_requests_total" in direct.text
