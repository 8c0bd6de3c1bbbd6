"""What one annotation cycle (next, then a judgment) costs in-process: no HTTP, no threads, no load.

For each cycle, one of the seeded annotators (in turn) calls `annotation.next_task` and then
`annotation.submit_pairwise` on a session of a server engine (`build_engine(serving=True)`),
over a fresh copy of an `annotate.py seed` template. Reported per cycle: CPU of this process,
CPU of its PostgreSQL backends (from /proc: the server runs on this machine), wall time, and
the statements sent, split by whether their connection was in a transaction. The figures are
steadier than `annotate.py run` on a noisy machine: nothing else of ours runs meanwhile.

  .venv/bin/python bench/cycle_cost.py --backend postgresql --size 10k --cycles 2000 \\
      --out bench/results/cycle-cost.jsonl

An annotator's history: `--annotators 1 --warmup 3000` measures cycles of one annotator who
has already judged 3,000 items of the project (the warm-up cycles are theirs).
`--progress` adds the annotator's progress strip after each judgment, as the pages reload it.
`--through-app` makes the same calls as requests to the JSON API, through the whole ASGI app
in this process (middleware, routing, dependencies, authentication, the threadpool hop on
PostgreSQL, serialization; no sockets, no uvicorn): beside a run without it, what the web
layer adds to the services. Its log lines go to the workdir, as a server's would go to its log.
`--surface html` goes through the app as the annotate page does: each annotator logs in through
the form and loads the page, then a cycle is the htmx POST of the judgment form, answered with
the next task and, out of band, the progress strip and the recent judgments (one request per
judgment, as in the browser).
The warm-up's judgments are then dated a day back (a history, not a long day), and on
PostgreSQL the database is vacuumed and analyzed, as autovacuum would have done.

Before/after pairs: run it again with PYTHONPATH pointing at another checkout (prefstack is
imported from wherever Python finds it; `--label` tells the runs apart).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from annotate import (
    ASSIGNMENT_ATTR,
    BENCH_PASSWORD,
    CSRF_INPUT,
    OOB_PROGRESS,
    OOB_RECENT,
    SESSION_COOKIE,
    Target,
    prepare_cell,
)
from benchlib import log, parse_size, template_copy
from fastapi import FastAPI
from sqlalchemy import Engine, bindparam, event, select, text, update
from starlette.types import Message

from app.services import accounts, annotation, progress
from app.services.projects import ProjectAccessCache
from app.settings import Settings
from preference_store.engine import build_engine, session_factory
from preference_store.models import Judgment

BENCH = Path(__file__).resolve().parent
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def backend_cpu_seconds(pids: set[int]) -> float:
    """CPU time (user + system) of the given PostgreSQL backends so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def count_statements(engine: Engine) -> dict[str, int]:
    """Statements sent from now on, by whether their connection was inside a transaction."""
    counts = {"in_transaction": 0, "on_their_own": 0}

    @event.listens_for(engine, "before_cursor_execute")
    def _count(connection: Any, _cursor: Any, _statement: str, *_args: Any) -> None:
        driver = connection.connection.driver_connection
        on_their_own = engine.dialect.name == "postgresql" and bool(driver.autocommit)
        counts["on_their_own" if on_their_own else "in_transaction"] += 1

    return counts


def move_to_yesterday(engine: Engine) -> None:
    """Date the warm-up's judgments a day back, and analyze as autovacuum would have by now.

    The measured cycles then see a history, not a long day ("done today" counts today's).
    This machine's PostgreSQL runs without autovacuum: the template was analyzed with no
    assignments, and plans made on those statistics read an annotator's whole history per
    row (docs/deploy.md).
    """
    with engine.begin() as connection:
        dated = connection.execute(select(Judgment.id, Judgment.created_at)).all()
        if dated:
            connection.execute(
                update(Judgment).where(Judgment.id == bindparam("judgment")).values(created_at=bindparam("moved")),
                [{"judgment": row.id, "moved": row.created_at - timedelta(days=1)} for row in dated],
            )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))


Cycles = Callable[[int, int, bool], None]
"""Runs `count` cycles starting at annotator `offset` (in turn), with or without the progress strip."""


@dataclass(frozen=True, slots=True)
class Measured:
    """The measured cycles, in seconds, and the statements they sent."""

    cpu: float
    backend_cpu: float
    wall: float
    statements: dict[str, int]


def run(a: argparse.Namespace) -> dict[str, Any]:
    target = Target(a.backend, a.items, a.workdir, a.pg_url)
    label = target.label
    meta = target.seeded()
    template = target.template_url()
    bench_accounts = meta["tokens"][: a.annotators]
    with template_copy(
        template, copy_path=a.workdir / f"cycle-{label}.db", pg_url=a.pg_url, pg_database=f"prefstack_cycle_{label}"
    ) as url:
        measured = (_through_app if a.through_app else _services)(url, meta["slug"], bench_accounts, a)
    row = {
        "label": a.label,
        "backend": a.backend,
        "items": a.items,
        "cycles": a.cycles,
        "annotators": len(bench_accounts),
        "through_app": a.through_app,
        "surface": a.surface,
        "warmup": a.warmup,
        "progress": a.progress,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg_before": list(os.getloadavg()),
        "process_cpu_ms_per_cycle": round(measured.cpu * 1000 / a.cycles, 3),
        "database_cpu_ms_per_cycle": round(measured.backend_cpu * 1000 / a.cycles, 3),
        "wall_ms_per_cycle": round(measured.wall * 1000 / a.cycles, 3),
        "statements_per_cycle": {key: round(value / a.cycles, 2) for key, value in measured.statements.items()},
    }
    log(json.dumps(row))
    return row


def _measure(engine: Engine, backend_pids: set[int], cycles: Cycles, a: argparse.Namespace) -> Measured:
    """Warm up, date the warm-up back, then time the measured cycles."""
    cycles(a.warmup, 0, False)
    move_to_yesterday(engine)
    counts = count_statements(engine)
    cpu, backend, wall = time.process_time(), backend_cpu_seconds(backend_pids), time.perf_counter()
    cycles(a.cycles, a.warmup, a.progress)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    backend = backend_cpu_seconds(backend_pids) - backend if backend_pids else 0.0
    return Measured(cpu, backend, wall, counts)


def _remember_backends(engine: Engine) -> set[int]:
    """The PostgreSQL backend pids of the engine's connections, filled in as they open."""
    pids: set[int] = set()
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "connect")
        def _remember(dbapi_connection: Any, _record: Any) -> None:
            pids.add(int(dbapi_connection.info.backend_pid))

    return pids


def _services(url: str, slug: str, bench_accounts: list[dict[str, str]], a: argparse.Namespace) -> Measured:
    """The cycles as calls of the services, on sessions of a server engine."""
    engine = build_engine(url, pool_size=2, serving=True)
    sessions = session_factory(engine)
    token_cache = accounts.TokenCache(3600)
    project_cache = ProjectAccessCache(3600)
    reaper = annotation.LeaseReaper(60)
    # As the server keeps one (a checkout from before the streak cache has none).
    strip_caches: dict[str, Any] = {"streaks": progress.StreakCache()} if hasattr(progress, "StreakCache") else {}
    backend_pids = _remember_backends(engine)
    with sessions() as session:
        principals = [
            accounts.principal_for_api_token(session, token=entry["token"], cache=token_cache)
            for entry in bench_accounts
        ]

    def cycles(count: int, offset: int, with_progress: bool) -> None:
        for number in range(count):
            principal = principals[(offset + number) % len(principals)]
            assert principal is not None
            with sessions() as session:
                task = annotation.next_task(session, principal=principal, slug=slug, cache=project_cache, reaper=reaper)
                if task is None:
                    raise SystemExit("the template ran out of items: seed a larger one")
            with sessions() as session:
                annotation.submit_pairwise(
                    session, principal=principal, assignment_id=task.assignment_id, choice="A", cache=project_cache
                )
            if with_progress:
                with sessions() as session:
                    progress.my_progress(session, principal=principal, slug=slug, cache=project_cache, **strip_caches)

    try:
        return _measure(engine, backend_pids, cycles, a)
    finally:
        engine.dispose()


Headers = list[tuple[bytes, bytes]]
Asgi = Callable[[str, str, Headers, bytes], Awaitable[tuple[int, Headers, bytes]]]


def _asgi_client(app: FastAPI) -> Asgi:
    """Requests to the app as a server hands them over: one ASGI call each, the body in one message."""

    async def request(method: str, path: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        headers = [(b"host", b"bench"), *headers]
        if body:
            headers.append((b"content-length", str(len(body)).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
        }
        delivered = False
        answer: dict[str, Any] = {"status": 0, "headers": [], "body": []}

        async def receive() -> Message:
            nonlocal delivered
            if delivered:  # the app asks again only to watch for a disconnect
                await asyncio.Event().wait()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"], answer["headers"] = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                answer["body"].append(message.get("body", b""))

        await app(scope, receive, send)
        return answer["status"], answer["headers"], b"".join(answer["body"])

    return request


def _through_app(url: str, slug: str, bench_accounts: list[dict[str, str]], a: argparse.Namespace) -> Measured:
    """The cycles as requests through the whole app, its lifespan running, in this process:
    JSON API calls, or (`--surface html`) what the browser sends."""
    from annotation_ui.asgi import create_app

    if a.surface == "html":  # the seeded annotators' password for the login form, on the copy
        prepare_cell(url, slug=slug, have=len(bench_accounts), want=len(bench_accounts), password=True)
    settings = Settings(database_url=url, secret_key=secrets.token_urlsafe(48))
    app = create_app(settings)
    server_log = (a.workdir / f"cycle-app-{a.backend}.log").open("a")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.get_name() == "prefstack":
            handler.setStream(server_log)
    engine = app.state.context.engine
    backend_pids = _remember_backends(engine)
    request = _asgi_client(app)
    loop = asyncio.new_event_loop()
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())
    try:
        if a.surface == "html":
            emails = [entry["email"] for entry in bench_accounts]
            one = _page_cycle([loop.run_until_complete(_Browser.logged_in(request, slug, email)) for email in emails])
        else:
            one = _api_cycle(request, slug, [entry["token"] for entry in bench_accounts])

        async def batch(count: int, offset: int, with_progress: bool) -> None:
            for number in range(count):
                await one(offset + number, with_progress)

        return _measure(engine, backend_pids, lambda *args: loop.run_until_complete(batch(*args)), a)
    finally:
        loop.run_until_complete(lifespan.__aexit__(None, None, None))
        loop.close()
        server_log.close()


Cycle = Callable[[int, bool], Awaitable[None]]
"""One cycle of the n-th annotator in turn, with or without the progress strip."""


def _api_cycle(request: Asgi, slug: str, tokens: list[str]) -> Cycle:
    async def call(method: str, path: str, token: str, body: bytes = b"") -> tuple[int, bytes]:
        headers = [(b"authorization", f"Bearer {token}".encode())]
        if body:
            headers.append((b"content-type", b"application/json"))
        status, _, answer = await request(method, path, headers, body)
        return status, answer

    async def one(number: int, with_progress: bool) -> None:
        token = tokens[number % len(tokens)]
        status, body = await call("GET", f"/api/v1/projects/{slug}/next", token)
        if status == 204:
            raise SystemExit("the template ran out of items: seed a larger one")
        if status != 200:
            raise SystemExit(f"next: {status} {body[:200]!r}")
        assignment = orjson.loads(body)["assignment_id"]
        status, body = await call("POST", f"/api/v1/assignments/{assignment}/judgment", token, b'{"choice":"A"}')
        if status != 201:
            raise SystemExit(f"judgment: {status} {body[:200]!r}")
        if with_progress:
            status, body = await call("GET", f"/api/v1/projects/{slug}/my/progress", token)
            if status != 200:
                raise SystemExit(f"progress: {status} {body[:200]!r}")

    return one


def _page_cycle(browsers: list[_Browser]) -> Cycle:
    async def one(number: int, _with_progress: bool) -> None:
        await browsers[number % len(browsers)].submit()

    return one


@dataclass
class _Browser:
    """An annotator's browser on the annotate page: its session cookie, the page's CSRF token and
    the assignment shown. Each submit is the htmx POST of the judgment form, answered with the
    next task and (out of band) the progress strip and the recent judgments."""

    request: Asgi
    slug: str
    cookie: bytes = b""
    csrf: str = ""
    assignment: int = 0

    @classmethod
    async def logged_in(cls, request: Asgi, slug: str, email: str) -> _Browser:
        browser = cls(request, slug)
        status, headers, page = await request("GET", "/login", [], b"")
        form_token = CSRF_INPUT.search(page)
        if status != 200 or form_token is None:
            raise SystemExit(f"login page: {status}")
        browser.cookie = _cookies(headers)
        form = {"email": email, "password": BENCH_PASSWORD, "csrf_token": form_token.group(1).decode(), "next": "/"}
        status, headers, _ = await browser.post("/login", form, htmx=False)
        browser.cookie = _cookies(headers)
        if status != 303 or SESSION_COOKIE.encode() not in browser.cookie:
            raise SystemExit(f"login of {email}: {status}")
        status, _, page = await request("GET", f"/projects/{slug}/annotate", [(b"cookie", browser.cookie)], b"")
        browser.read(status, page, "annotate page")
        return browser

    async def post(self, path: str, form: dict[str, str], *, htmx: bool) -> tuple[int, Headers, bytes]:
        headers = [(b"cookie", self.cookie), (b"content-type", b"application/x-www-form-urlencoded")]
        if htmx:
            headers.append((b"hx-request", b"true"))
        return await self.request("POST", path, headers, urlencode(form).encode())

    async def submit(self) -> None:
        form = {"csrf_token": self.csrf, "time_spent_ms": "12000", "choice": "A"}
        status, _, page = await self.post(f"/projects/{self.slug}/annotate/{self.assignment}", form, htmx=True)
        self.read(status, page, "submit")
        if OOB_PROGRESS not in page or OOB_RECENT not in page:
            raise SystemExit("submit: the answer lacks the progress strip or the recent judgments")

    def read(self, status: int, page: bytes, call: str) -> None:
        shown = ASSIGNMENT_ATTR.search(page)
        token = CSRF_INPUT.search(page)
        if status != 200 or shown is None or not shown.group(1) or token is None:
            raise SystemExit(f"{call}: {status}, no task shown (the template ran out of items?)")
        self.assignment, self.csrf = int(shown.group(1)), token.group(1).decode()


def _cookies(headers: Headers) -> bytes:
    """The cookies a response set, as a cookie header sends them back."""
    pairs = [value.split(b";", 1)[0].strip() for name, value in headers if name.lower() == b"set-cookie"]
    return b"; ".join(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--size", default="10k", help="the annotate.py seed template to copy")
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--annotators", type=int, default=None, help="cycle through only the first N seeded annotators")
    parser.add_argument("--progress", action="store_true", help="read the progress strip after each judgment")
    parser.add_argument("--through-app", action="store_true", help="as JSON API requests through the ASGI app")
    parser.add_argument(
        "--surface",
        choices=["api", "html"],
        default="api",
        help="html: through the app as the browser's htmx POST of the judgment form (implies --through-app; "
        "its answer carries the progress strip, so --progress adds nothing)",
    )
    parser.add_argument("--label", default="", help="names the run in the output (e.g. before/after)")
    parser.add_argument("--workdir", type=Path, default=BENCH / ".work")
    parser.add_argument("--pg-url", default=os.environ.get("PREFSTACK_BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--out", type=Path, default=None, help="append the result as one JSON line")
    a = parser.parse_args()
    a.items = parse_size(a.size)
    a.through_app = a.through_app or a.surface == "html"
    row = run(a)
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        with a.out.open("a") as out:
            out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
