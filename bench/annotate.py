"""Load generator for prefstack's annotation hot path, measured beside the reference server.

  seed       build a template database for a backend and size: project bench-<size> (overlap 3),
             N items (~300-character prompt, two ~1,500-character responses), annotators with API tokens
             (written to a JSON file in the work folder); optionally the reference server's 100k template.
  run        for each cell (backend x size x concurrency x workers): a fresh copy of the template, then
             `prefstack serve` on a free port, warm-up, then C annotators loop next -> judgment with no think
             time; server CPU and peak RSS from /proc; the database checked afterwards; one JSON line per cell.
             `--with-reference` runs the reference server (../shared/bench) at the same concurrencies, in between.
  reference  only the reference server's cells.
  table      a results .jsonl as a markdown table, each prefstack cell as a ratio to reference variant A.
  profile    the top frames of a py-spy `raw` (collapsed stacks) file written by `run --py-spy`.
  clean      drop the PostgreSQL templates (and any leftover cell databases), remove the work folder.

Numbers on a shared 2-core box are noisy: read prefstack's figures as ratios to the reference measured in
the same run, never as absolute times.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from benchlib import (
    bench_item,
    drop_databases,
    log,
    parse_size,
    pg_admin,
    pg_database_url,
    pg_execute,
    remove_sqlite,
    size_label,
    str_list,
    template_copy,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = REPO / "bench" / ".work"
DEFAULT_OUT = REPO / "bench" / "results" / "results.jsonl"
DEFAULT_SHARED = REPO.parent / "shared" / "bench"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
OVERLAP = 3
REFERENCE_ITEMS = 100_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
SESSION_COOKIE = "prefstack_session"
IDLE_REOPEN_S = 4.0  # app.deps.SESSION_COOKIE


# ------------------------------------------------------------------ small helpers


def int_list(value: str) -> list[int]:
    return [int(part) for part in value.split(",") if part.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile in milliseconds (the reference's definition), or None."""
    if not values:
        return None
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(p / 100.0 * len(ordered)))], 2)


def latency_summary(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "max": round(1000 * max(values), 2) if values else None,
    }


# ------------------------------------------------------------------ /proc (same accounting as ceiling_load.py)
def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from `state` on


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _proc_stat(int(entry))) is not None:
            parents[int(entry)] = int(stat[1])
    tree, frontier = [root], {root}
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        tree += children
        frontier = set(children)
    return tree


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """User and system CPU seconds of these processes."""
    user = system = 0
    for pid in pids:
        if (stat := _proc_stat(pid)) is not None:
            user, system = user + int(stat[11]), system + int(stat[12])
    return user / CLK_TCK, system / CLK_TCK


def postgres_pids() -> list[int]:
    """This machine's PostgreSQL processes (postmaster, backends, writers): empty when it runs elsewhere."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/comm").read_text().strip() == "postgres":
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat: user to steal, less idle and iowait)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@dataclass
class WindowCosts:
    """CPU spent in the measured window, by whom."""

    server_cpu_s: float = 0.0
    server_sys_s: float = 0.0
    server_processes: int = 0
    # Each server process (supervisor and workers), busiest first: how the load fell over the workers.
    process_cpu_s: list[float] = field(default_factory=list)
    database_cpu_s: float | None = None  # local PostgreSQL's processes; None for SQLite or a remote server
    loadgen_cpu_s: float = 0.0
    machine_busy_cores: float = 0.0  # of os.cpu_count(): the server, the database, this driver and anything else

    def fields(self, cycles: int) -> dict[str, Any]:
        """The row's cost columns, with the per-cycle figures."""
        per_cycle = max(1, cycles)
        database_ms = None if self.database_cpu_s is None else round(1000 * self.database_cpu_s / per_cycle, 3)
        return {
            "server_cpu_s": self.server_cpu_s,
            "server_sys_s": self.server_sys_s,
            "server_cpu_ms_per_cycle": round(1000 * self.server_cpu_s / per_cycle, 3),
            "server_processes": self.server_processes,
            "server_process_cpu_s": self.process_cpu_s,
            "database_cpu_s": self.database_cpu_s,
            "database_cpu_ms_per_cycle": database_ms,
            "loadgen_cpu_s": self.loadgen_cpu_s,
            "loadgen_cpu_ms_per_cycle": round(1000 * self.loadgen_cpu_s / per_cycle, 3),
            "machine_busy_cores": self.machine_busy_cores,
            "machine_cores": os.cpu_count(),
        }


@dataclass(frozen=True)
class CostSnapshot:
    server: dict[int, tuple[float, float]]  # pid -> user, system CPU seconds
    database: float | None
    loadgen: float
    machine_busy: float
    at: float


class CostMeter:
    """Snapshots of the CPU counters at the window's start and end (same accounting as ceiling_load.py)."""

    def __init__(self, server_pid: int, *, database_is_postgres: bool) -> None:
        self.server_pid = server_pid
        self.database_is_postgres = database_is_postgres

    def _snapshot(self) -> CostSnapshot:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return CostSnapshot(
            server={pid: cpu_seconds([pid]) for pid in process_tree(self.server_pid)},
            database=sum(cpu_seconds(postgres_pids())) if self.database_is_postgres else None,
            loadgen=usage.ru_utime + usage.ru_stime,
            machine_busy=machine_busy_seconds(),
            at=time.perf_counter(),
        )

    def start(self) -> None:
        self.before = self._snapshot()

    def stop(self) -> WindowCosts:
        before, after = self.before, self._snapshot()
        per_process = {pid: sum(cpu) - sum(before.server.get(pid, (0.0, 0.0))) for pid, cpu in after.server.items()}
        system = sum(cpu[1] - before.server.get(pid, (0.0, 0.0))[1] for pid, cpu in after.server.items())
        database = None
        if before.database is not None and after.database:  # no local PostgreSQL process: a remote server
            database = round(after.database - before.database, 2)
        return WindowCosts(
            server_cpu_s=round(sum(per_process.values()), 2),
            server_sys_s=round(system, 2),
            server_processes=len(per_process),
            process_cpu_s=sorted((round(cpu, 2) for cpu in per_process.values()), reverse=True),
            database_cpu_s=database,
            loadgen_cpu_s=round(after.loadgen - before.loadgen, 2),
            machine_busy_cores=round((after.machine_busy - before.machine_busy) / max(1e-9, after.at - before.at), 2),
        )


def peak_rss_mb(pids: list[int]) -> float:
    """Sum of the processes' peak resident set sizes (VmHWM)."""
    total_kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return round(total_kb / 1024, 1)


# ------------------------------------------------------------------ databases
@dataclass(frozen=True)
class Target:
    """Where a template lives and where its token file is."""

    backend: str
    items: int
    workdir: Path
    pg_url: str

    @property
    def label(self) -> str:
        return f"{self.backend}-{size_label(self.items)}"

    @property
    def slug(self) -> str:
        return f"bench-{size_label(self.items)}"

    @property
    def tokens_path(self) -> Path:
        return self.workdir / f"{self.label}.tokens.json"

    @property
    def sqlite_template(self) -> Path:
        return self.workdir / f"{self.label}.template.db"

    @property
    def pg_template(self) -> str:
        return f"prefstack_bench_tmpl_{size_label(self.items)}"

    @property
    def server(self) -> str | None:
        """The PostgreSQL server the template lives on, as host:port."""
        if self.backend == "sqlite":
            return None
        url = make_url(self.pg_url)
        return f"{url.host or 'localhost'}:{url.port or 5432}"

    def seeded(self) -> dict[str, Any]:
        """The template's token file; refused when missing, or seeded on another PostgreSQL server."""
        again = f"`annotate.py seed --backend {self.backend} --size {size_label(self.items)}`"
        if not self.tokens_path.exists():
            raise SystemExit(f"no template for {self.label}: run {again} first")
        meta: dict[str, Any] = json.loads(self.tokens_path.read_text())
        if meta.get("server") != self.server:
            seeded_on = meta.get("server") or "an unrecorded server"
            raise SystemExit(
                f"the template for {self.label} was seeded on {seeded_on}, not on {self.server}: "
                f"run {again} with this --pg-url"
            )
        return meta

    def template_url(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.sqlite_template}"
        return pg_database_url(self.pg_url, self.pg_template)


@contextmanager
def cell_database(target: Target, cell_name: str) -> Iterator[str]:
    """A fresh copy of the template for one cell: a file copy, or CREATE DATABASE ... TEMPLATE."""
    with template_copy(
        target.template_url(),
        copy_path=target.workdir / f"cell-{target.label}.db",
        pg_url=target.pg_url,
        pg_database=f"prefstack_bench_{cell_name}",
    ) as url:
        upgrade(url)
        yield url


def upgrade(database_url: str) -> None:
    """Bring a copy of an older template to the current schema (a no-op when it is current)."""
    from app import database
    from preference_store.engine import build_engine

    engine = build_engine(database_url, pool_size=1)
    try:
        database.upgrade(engine)
    finally:
        engine.dispose()


# ------------------------------------------------------------------ seed
def seed(target: Target, *, users: int, batch: int) -> None:
    """Build the template database of `target` with the honest store path (insert_items in batches)."""
    from app import database
    from app.principal import command_line_principal
    from app.services import accounts, importing, projects
    from preference_store.engine import begin_write, build_engine, session_factory
    from preference_store.items import NewItem, insert_items
    from preference_store.models import Role

    target.workdir.mkdir(parents=True, exist_ok=True)
    target.tokens_path.unlink(missing_ok=True)  # written last: its presence means the template is complete
    started = time.perf_counter()
    if target.backend == "sqlite":
        remove_sqlite(target.sqlite_template)
    else:
        pg_execute(
            target.pg_url,
            f'DROP DATABASE IF EXISTS "{target.pg_template}" WITH (FORCE)',
            f'CREATE DATABASE "{target.pg_template}"',
        )
    engine = build_engine(target.template_url(), pool_size=2)
    try:
        database.upgrade(engine)
        sessions = session_factory(engine)
        operator = command_line_principal()
        tokens: list[dict[str, str]] = []
        with sessions() as session:
            emails = [f"annotator{n:03d}@bench.example.org" for n in range(1, users + 1)]
            for n, email in enumerate(emails, start=1):
                accounts.create_user(session, email=email, name=f"Annotator {n}", role=Role.ANNOTATOR, password=None)
                tokens.append({"email": email, "token": accounts.create_api_token(session, email=email).token})
            project = projects.create_project(
                session, principal=operator, slug=target.slug, name=f"Benchmark {target.slug}", overlap=OVERLAP
            )
            projects.add_members(session, principal=operator, slug=target.slug, emails=emails)
            log(f"{target.label}: schema, {users} annotators with tokens, project {target.slug}")

            rnd = random.Random(42)
            words = ["".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=rnd.randint(2, 10))) for _ in range(5000)]
            begin_write(session)
            for start in range(0, target.items, batch):
                chunk: list[NewItem] = []
                for number in range(start + 1, min(start + batch, target.items) + 1):
                    item, problems = importing.validate_item(bench_item(rnd, words, number), row=number)
                    if item is None or problems:
                        raise RuntimeError(f"bench item {number} is invalid: {problems}")
                    chunk.append(item)
                insert_items(session, project_id=project.id, items=chunk, open_slots=OVERLAP)
                log(f"{target.label}: {start + len(chunk):,} items")
            session.commit()
        if target.backend == "sqlite":
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    if target.backend == "sqlite":
        Path(f"{target.sqlite_template}.writelock").unlink(missing_ok=True)
    else:
        # A real deployment has autovacuum's statistics and visibility map soon after an import;
        # cells are cloned from this template, so they start from that state too.
        with pg_admin(target.template_url()) as engine, engine.connect() as connection:
            connection.execute(text("VACUUM ANALYZE"))
    target.tokens_path.write_text(
        json.dumps(
            {
                "backend": target.backend,
                "items": target.items,
                "slug": target.slug,
                "project_id": project.id,
                "overlap": OVERLAP,
                "template": str(target.sqlite_template) if target.backend == "sqlite" else target.pg_template,
                "server": target.server,
                "tokens": tokens,
            },
            indent=1,
        )
    )
    size = (
        f"{target.sqlite_template.stat().st_size / 2**20:.0f} MB" if target.backend == "sqlite" else target.pg_template
    )
    log(f"{target.label}: seeded in {time.perf_counter() - started:.1f} s ({size}); tokens in {target.tokens_path}")


def seed_reference(shared: Path, workdir: Path) -> Path:
    """The reference server's own 100k template (its `seed` command), built once."""
    path = workdir / "reference-100k.template.db"
    if not path.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        log(f"reference: seeding {path} (about 11 s)")
        partial = path.with_suffix(".partial")
        remove_sqlite(partial)
        subprocess.run(
            [sys.executable, str(shared / "ceiling_server.py"), "seed", str(partial), str(REFERENCE_ITEMS)],
            check=True,
            timeout=600,
        )
        partial.rename(path)
    return path


# ------------------------------------------------------------------ load
class ProtocolError(Exception):
    pass


class Connection:
    """A lean keep-alive HTTP/1.1 connection on asyncio streams (the idea of ceiling_load.py's RawConn).

    Reads the status and a Content-Length body; a 204 has no body. Costs a small fraction of
    what httpx does per request, so the load generator does not measure itself.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.header = b""
        self.last_used = 0.0
        self.reconnects = 0

    async def request(self, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        if self.reader is not None and time.monotonic() - self.last_used > IDLE_REOPEN_S:
            self.close()  # uvicorn drops keep-alive connections idle for 5 s; a browser reconnects too
        if self.reader is None or self.writer is None:
            self.reconnects += 1
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        try:
            self.writer.write(head + body)
            header = await self.reader.readuntil(b"\r\n\r\n")
            status = int(header[9:12])
            lower = header.lower()
            self.header = header
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                at += 17
                data = await self.reader.readexactly(int(header[at : header.index(b"\r\n", at)]))
            elif status in (204, 304):
                data = b""
            elif b"\r\ntransfer-encoding: chunked" in lower:
                data = await self._chunked()
            else:
                raise ProtocolError(f"status {status} without Content-Length")
            if b"\r\nconnection: close" in lower:
                self.close()
            self.last_used = time.monotonic()
            return status, data
        except BaseException:
            self.close()
            raise

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self.reader.readexactly(size + 2)
            if size == 0:
                return b"".join(parts)
            parts.append(chunk[:-2])

    def cookies(self) -> dict[str, str]:
        """The cookies the last response set (name -> value)."""
        found: dict[str, str] = {}
        for line in self.header.split(b"\r\n"):
            if line.lower().startswith(b"set-cookie:"):
                name, _, rest = line[11:].strip().decode().partition("=")
                found[name] = rest.split(";")[0].strip('"')
        return found

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def analyze(database_url: str) -> None:
    """`ANALYZE` one cell's PostgreSQL database, as autovacuum would once the warm-up's rows are in.

    This machine's PostgreSQL runs with autovacuum off (a CI setting), and the templates were
    analyzed before any lease or judgment existed. Without this, PostgreSQL keeps the plans it
    cached for the hot statements while those tables were empty (sequential scans, even for a
    primary-key read) and every cell measures them growing with the run: a state a deployment
    with autovacuum on (docs/deploy.md) leaves within a minute of its first leases.
    """
    with pg_admin(database_url) as engine, engine.connect() as connection:
        connection.execute(text("ANALYZE"))


async def settle_half_way(settle: Callable[[], None] | None, *, started: float, warmup: float) -> None:
    """Run `settle` half-way through the warm-up, off the event loop, so it ends before the window."""
    if settle is None:
        return
    await asyncio.sleep(max(0.0, started + warmup / 2 - time.perf_counter()))
    began = time.perf_counter()
    await asyncio.to_thread(settle)
    if time.perf_counter() > started + warmup:
        log(f"warning: settling took {time.perf_counter() - began:.2f} s, past the warm-up: lengthen --warmup")


@dataclass
class LoadResult:
    cycles: int = 0
    next_ok: int = 0
    no_work: int = 0
    created: int = 0
    repeated: int = 0
    next_bytes: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    next_latency: list[float] = field(default_factory=list)
    judgment_latency: list[float] = field(default_factory=list)
    costs: WindowCosts = field(default_factory=WindowCosts)


async def load(
    *,
    port: int,
    slug: str,
    tokens: list[str],
    warmup: float,
    duration: float,
    meter: CostMeter,
    settle: Callable[[], None] | None = None,
) -> LoadResult:
    """Each token is one annotator looping GET next -> POST judgment until the window closes."""
    result = LoadResult()
    host = "127.0.0.1"
    started = time.perf_counter()
    window_start = started + warmup
    window_end = window_start + duration
    hard_stop = window_end + 30.0

    async def marker() -> None:
        await settle_half_way(settle, started=started, warmup=warmup)
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        meter.start()
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        result.costs = meter.stop()

    async def annotator(number: int, token: str) -> None:
        rnd = random.Random(number)
        conn = Connection(host, port)
        next_head = (
            f"GET /api/v1/projects/{slug}/next HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n\r\n"
        ).encode()
        try:
            while (t0 := time.perf_counter()) < window_end:
                try:
                    status, content = await conn.request(next_head)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ProtocolError) as error:
                    result.errors[f"next_{type(error).__name__}"] += 1
                    await asyncio.sleep(0.01)
                    continue
                t1 = time.perf_counter()
                if status == 204:  # nothing left for this annotator: the cell ran dry
                    result.no_work += 1
                    return
                if status != 200:
                    result.errors[f"next_{status}"] += 1
                    await asyncio.sleep(0.01)
                    continue
                result.next_ok += 1
                result.next_bytes = result.next_bytes or len(content)
                assignment_id = orjson.loads(content)["assignment_id"]
                body = b'{"choice":"A"}' if rnd.random() < 0.5 else b'{"choice":"B"}'
                head = (
                    f"POST /api/v1/assignments/{assignment_id}/judgment HTTP/1.1\r\nhost: {host}\r\n"
                    f"authorization: Bearer {token}\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(body)}\r\n\r\n"
                ).encode()
                t2 = time.perf_counter()
                try:
                    status, _ = await conn.request(head, body)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ProtocolError) as error:
                    result.errors[f"judgment_{type(error).__name__}"] += 1
                    continue
                t3 = time.perf_counter()
                if status == 201:
                    result.created += 1
                elif status == 200:  # a repeat of a stored verdict: should never happen here
                    result.repeated += 1
                else:
                    result.errors[f"judgment_{status}"] += 1
                if window_start <= t1 < window_end:
                    result.next_latency.append(t1 - t0)
                if window_start <= t3 < window_end:
                    result.judgment_latency.append(t3 - t2)
                    if status == 201:
                        result.cycles += 1
                if t3 > hard_stop:
                    return
        finally:
            conn.close()

    await asyncio.wait_for(
        asyncio.gather(marker(), *(annotator(n, token) for n, token in enumerate(tokens, start=1))),
        timeout=warmup + duration + 40,
    )
    return result


def run_load(**kwargs: Any) -> LoadResult:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(load(**kwargs))
    return uvloop.run(load(**kwargs))


# ------------------------------------------------------------------ surfaces: one annotator's calls
CALL_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ProtocolError, asyncio.TimeoutError)
ASSIGNMENT_ATTR = re.compile(rb'data-assignment="(\d*)"')
CSRF_INPUT = re.compile(rb'name="csrf_token" value="([^"]*)"')
OOB_PROGRESS = b'<div id="progress" class="progress" hx-swap-oob="true">'
OOB_RECENT = b'<section id="recent" class="recent" hx-swap-oob="true">'
BENCH_PASSWORD = "bench-password-not-secret"  # noqa: S105  (bench accounts only)


@dataclass
class Call:
    """One HTTP call as the load generator saw it."""

    name: str
    status: int  # 0: the connection broke
    started: float
    ended: float
    error: str = ""


@dataclass
class Tick:
    """What one step of an annotator did: its calls, and the judgment the server acknowledged."""

    calls: list[Call] = field(default_factory=list)
    acknowledged: tuple[int | None, int] | None = None  # (judgment id or None for HTML, assignment id)
    no_work: bool = False


class Annotator:
    """One annotator on one keep-alive connection: `start` (log in, first task), then `tick`s."""

    def __init__(self, host: str, port: int, slug: str, rnd: random.Random) -> None:
        self.host, self.slug, self.rnd = host, slug, rnd
        self.conn = Connection(host, port)
        self.assignment: int | None = None

    async def call(self, tick: Tick, name: str, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        t0 = time.perf_counter()
        try:
            status, content = await asyncio.wait_for(self.conn.request(head, body), timeout=30)
        except CALL_ERRORS as error:
            tick.calls.append(Call(name, 0, t0, time.perf_counter(), type(error).__name__))
            return 0, b""
        tick.calls.append(Call(name, status, t0, time.perf_counter()))
        return status, content

    async def start(self) -> Tick:
        raise NotImplementedError

    async def tick(self) -> Tick:
        raise NotImplementedError

    def close(self) -> None:
        self.conn.close()


class ApiAnnotator(Annotator):
    """The JSON API with a bearer token: submit the held task, then GET next."""

    def __init__(self, host: str, port: int, slug: str, rnd: random.Random, *, token: str) -> None:
        super().__init__(host, port, slug, rnd)
        self.auth = f"host: {host}\r\nauthorization: Bearer {token}\r\n"

    async def next(self, tick: Tick) -> None:
        head = f"GET /api/v1/projects/{self.slug}/next HTTP/1.1\r\n{self.auth}\r\n".encode()
        status, content = await self.call(tick, "next", head)
        self.assignment = orjson.loads(content)["assignment_id"] if status == 200 else None
        tick.no_work = status == 204

    def judgment_request(self, assignment: int) -> tuple[bytes, bytes]:
        body = b'{"choice":"A"}' if self.rnd.random() < 0.5 else b'{"choice":"B"}'
        head = (
            f"POST /api/v1/assignments/{assignment}/judgment HTTP/1.1\r\n{self.auth}"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        ).encode()
        return head, body

    async def start(self) -> Tick:
        tick = Tick()
        await self.next(tick)
        return tick

    async def tick(self) -> Tick:
        tick = Tick()
        if self.assignment is not None:
            assignment = self.assignment
            status, content = await self.call(tick, "judgment", *self.judgment_request(assignment))
            if status == 201:
                tick.acknowledged = (orjson.loads(content)["judgment_id"], assignment)
        await self.next(tick)
        return tick


class HtmlAnnotator(Annotator):
    """The browser's calls: log in through the form, load the annotate page, then per judgment
    the htmx POST of the form. It answers with the next task's fragment and the progress strip
    and recent judgments out of band; from a server that answers without them (before
    2026-12-03), the browser fetched both after the answer, and so does this annotator."""

    def __init__(self, host: str, port: int, slug: str, rnd: random.Random, *, email: str) -> None:
        super().__init__(host, port, slug, rnd)
        self.email = email
        self.cookie = ""
        self.csrf = ""

    def get(self, path: str, *, htmx: bool) -> bytes:
        extra = "hx-request: true\r\n" if htmx else ""
        return f"GET {path} HTTP/1.1\r\nhost: {self.host}\r\ncookie: {self.cookie}\r\n{extra}\r\n".encode()

    def post(self, path: str, form: dict[str, str], *, htmx: bool) -> tuple[bytes, bytes]:
        body = urlencode(form).encode()
        extra = "hx-request: true\r\n" if htmx else ""
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\ncookie: {self.cookie}\r\n{extra}"
            f"content-type: application/x-www-form-urlencoded\r\ncontent-length: {len(body)}\r\n\r\n"
        ).encode()
        return head, body

    def read_task(self, content: bytes) -> bool:
        found = ASSIGNMENT_ATTR.search(content)
        self.assignment = int(found.group(1)) if found and found.group(1) else None
        if (token := CSRF_INPUT.search(content)) is not None:
            self.csrf = token.group(1).decode()
        return found is not None

    async def start(self) -> Tick:
        tick = Tick()
        status, page = await self.call(tick, "login_page", self.get("/login", htmx=False))
        login_csrf = CSRF_INPUT.search(page)
        if status != 200 or login_csrf is None:
            return tick
        self.cookie = "; ".join(f"{k}={v}" for k, v in self.conn.cookies().items())
        form = {"email": self.email, "password": BENCH_PASSWORD, "csrf_token": login_csrf.group(1).decode()}
        status, _ = await self.call(tick, "login", *self.post("/login", form | {"next": "/"}, htmx=False))
        session = self.conn.cookies().get(SESSION_COOKIE)
        if status != 303 or session is None:
            return tick
        self.cookie = f"{SESSION_COOKIE}={session}"
        status, page = await self.call(tick, "annotate_page", self.get(f"/projects/{self.slug}/annotate", htmx=False))
        if status == 200:
            self.read_task(page)
            tick.no_work = self.assignment is None
        return tick

    async def tick(self) -> Tick:
        tick = Tick()
        if self.assignment is None:
            status, page = await self.call(tick, "task", self.get(f"/projects/{self.slug}/annotate", htmx=True))
            if status == 200:
                self.read_task(page)
            tick.no_work = status == 200 and self.assignment is None
            return tick
        assignment = self.assignment
        form = {"csrf_token": self.csrf, "time_spent_ms": str(self.rnd.randint(4000, 40000))}
        form["choice"] = "A" if self.rnd.random() < 0.5 else "B"
        path = f"/projects/{self.slug}/annotate/{assignment}"
        status, page = await self.call(tick, "submit", *self.post(path, form, htmx=True))
        if status == 200 and self.read_task(page) and b'id="form-error"' not in page:
            tick.acknowledged = (None, assignment)
            tick.no_work = self.assignment is None
            for name, swapped in (("progress", OOB_PROGRESS), ("recent", OOB_RECENT)):
                if swapped not in page:
                    await self.call(tick, name, self.get(f"/projects/{self.slug}/{name}", htmx=True))
        elif status == 200:
            self.assignment = None
        return tick


@dataclass
class DriveResult:
    """Calls in the measured window by name, acknowledged judgments, and the costs."""

    latency: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    cycles: int = 0
    acknowledged: list[tuple[int | None, int]] = field(default_factory=list)
    no_work: int = 0
    lag: list[float] = field(default_factory=list)
    costs: WindowCosts = field(default_factory=WindowCosts)


OK_STATUSES = {"next": {200, 204}, "judgment": {201}, "submit": {200}, "task": {200}}


async def drive(
    annotators: list[Annotator],
    *,
    think: float,
    warmup: float,
    duration: float,
    meter: CostMeter,
    settle: Callable[[], None] | None = None,
) -> DriveResult:
    """Closed loop (think 0: each annotator's next step starts when its last one ends) or open loop
    (each annotator steps on its own clock, every `think` s +-25 %, whatever the server's answers
    take: the offered rate is len(annotators) / think steps a second)."""
    result = DriveResult()
    window_start = window_end = float("inf")  # set once every annotator has started

    async def marker() -> None:
        await settle_half_way(settle, started=window_start - warmup, warmup=warmup)
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        meter.start()
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        result.costs = meter.stop()

    def record(tick: Tick) -> None:
        for call in tick.calls:
            if call.status == 0 or call.status not in OK_STATUSES.get(call.name, {200, 303}):
                result.errors[f"{call.name}_{call.status or call.error}"] += 1
            if window_start <= call.ended < window_end:
                result.latency.setdefault(call.name, []).append(call.ended - call.started)
                result.statuses[f"{call.name} {call.status}"] += 1
        if tick.acknowledged is not None:
            result.acknowledged.append(tick.acknowledged)
            if window_start <= tick.calls[-1].ended < window_end:
                result.cycles += 1

    gate = asyncio.Semaphore(16)

    async def start_one(annotator: Annotator) -> None:
        async with gate:
            record(await annotator.start())

    async def run_one(annotator: Annotator) -> None:
        try:
            scheduled = time.perf_counter() + (annotator.rnd.uniform(0, think) if think > 0 else 0)
            while True:
                if think > 0:
                    await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
                    now = time.perf_counter()
                    if now >= window_end:
                        return
                    if now >= window_start:
                        result.lag.append(now - scheduled)
                    scheduled += think * annotator.rnd.uniform(0.75, 1.25)
                elif time.perf_counter() >= window_end:
                    return
                tick = await annotator.tick()
                record(tick)
                if tick.no_work:
                    result.no_work += 1
                    return
                if any(call.status == 0 or call.status >= 500 for call in tick.calls):
                    await asyncio.sleep(0.01)
        finally:
            annotator.close()

    # Logging in (a memory-hard hash each) and the first task come before the clock starts.
    await asyncio.wait_for(asyncio.gather(*(start_one(annotator) for annotator in annotators)), timeout=600)
    window_start = time.perf_counter() + warmup
    window_end = window_start + duration
    await asyncio.wait_for(
        asyncio.gather(marker(), *(run_one(annotator) for annotator in annotators)),
        timeout=warmup + duration + 120,
    )
    return result


def run_drive(annotators: list[Annotator], **kwargs: Any) -> DriveResult:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(drive(annotators, **kwargs))
    return uvloop.run(drive(annotators, **kwargs))


def make_annotators(
    surface: str, *, port: int, slug: str, accounts: list[dict[str, str]], seed: int = 0
) -> list[Annotator]:
    host = "127.0.0.1"
    if surface == "api":
        return [
            ApiAnnotator(host, port, slug, random.Random(seed + n), token=entry["token"])
            for n, entry in enumerate(accounts)
        ]
    return [
        HtmlAnnotator(host, port, slug, random.Random(seed + n), email=entry["email"])
        for n, entry in enumerate(accounts)
    ]


def prepare_cell(
    database_url: str, *, slug: str, have: int, want: int, password: bool = False, lease_seconds: int | None = None
) -> list[dict[str, str]]:
    """Before the server starts: annotators `have+1..want` (members, with tokens), a shared
    password for the login form, a shorter lease."""
    from app.principal import command_line_principal
    from app.security import hash_password
    from app.services import accounts, projects
    from preference_store.engine import build_engine, session_factory
    from preference_store.models import Role

    engine = build_engine(database_url, pool_size=2)
    added: list[dict[str, str]] = []
    try:
        with session_factory(engine)() as session:
            for n in range(have + 1, want + 1):
                email = f"annotator{n:03d}@bench.example.org"
                accounts.create_user(session, email=email, name=f"Annotator {n}", role=Role.ANNOTATOR, password=None)
                added.append({"email": email, "token": accounts.create_api_token(session, email=email).token})
            if added:
                projects.add_members(
                    session, principal=command_line_principal(), slug=slug, emails=[a["email"] for a in added]
                )
        with engine.begin() as connection:
            if password:
                connection.execute(
                    text("UPDATE app_user SET password_hash = :h WHERE email LIKE 'annotator%@bench.example.org'"),
                    {"h": hash_password(BENCH_PASSWORD)},
                )
            if lease_seconds is not None:
                connection.execute(
                    text("UPDATE project SET lease_seconds = :s WHERE slug = :slug"), {"s": lease_seconds, "slug": slug}
                )
    finally:
        engine.dispose()
    return added


# ------------------------------------------------------------------ server
@contextmanager
def prefstack_server(
    *,
    prefstack: Path,
    database_url: str,
    workers: int,
    log_path: Path,
    cwd: Path,
    port: int | None = None,
    secret_key: str | None = None,
    append_log: bool = False,
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`prefstack serve` in its own session on a free port; stopped by its pid afterwards."""
    port = port or free_port()
    env = {
        **os.environ,
        "PREFSTACK_DATABASE_URL": database_url,
        "PREFSTACK_HOST": "127.0.0.1",
        "PREFSTACK_PORT": str(port),
        "PREFSTACK_WORKERS": str(workers),
        "PREFSTACK_ENVIRONMENT": "development",
        # Without one, development mode writes a generated secret beside the database
        # (into the working directory for PostgreSQL).
        "PREFSTACK_SECRET_KEY": secret_key or secrets.token_urlsafe(48),
    }
    log_start = log_path.stat().st_size if append_log and log_path.exists() else 0
    with log_path.open("a" if append_log else "w") as server_log:
        server = subprocess.Popen(
            [str(prefstack), "serve", "--workers", str(workers)],
            env=env,
            cwd=cwd,
            stdout=server_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                        answer.read()
                    break
                except OSError as error:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"prefstack did not come up: {error}; see {log_path}") from error
                    time.sleep(0.1)
            # /healthz answers once one worker is up; the others may still be starting, and
            # connections opened meanwhile would all stay with the first for the whole cell.
            while started_workers(log_path, log_start) < workers:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{workers} workers did not all start; see {log_path}")
                time.sleep(0.05)
            yield server, port
        finally:
            stop(server)


STARTUP_COMPLETE = b"Application startup complete"  # uvicorn's line, in text and JSON logs alike


def started_workers(log_path: Path, offset: int) -> int:
    """How many of the server's workers logged the end of their startup (after `offset`)."""
    with log_path.open("rb") as log_file:
        log_file.seek(offset)
        return log_file.read().count(STARTUP_COMPLETE)


def stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server we started (uvicorn passes it to its workers), SIGKILL to its group if stuck."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)  # the session/group created for this server only
        server.wait(timeout=5)


@contextmanager
def py_spy(pid: int, *, mode: str | None, delay: float, seconds: float, out: Path) -> Iterator[None]:
    """Sample the server with py-spy for the measurement window (it costs CPU: flagged in the row).

    `gil`: only the thread holding the GIL (where the Python CPU goes); `active`: every thread not idle.
    """
    if mode is None:
        yield
        return
    binary = Path(sys.executable).parent / "py-spy"
    command = [str(binary), "record", "--pid", str(pid), "--subprocesses", "--format", "raw", "--rate", "100"]
    command += ["--duration", str(max(1, int(seconds))), "--output", str(out)]
    command += ["--gil"] if mode == "gil" else []
    runner = subprocess.Popen(
        ["/bin/sh", "-c", f'sleep {delay:.2f} && exec "$@"', "py-spy", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        try:
            runner.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            runner.kill()
            runner.wait(timeout=5)


# ------------------------------------------------------------------ verify
VERIFY_SQL = {
    "judgments": "SELECT count(*) FROM judgment WHERE project_id = :p",
    "assignments": "SELECT count(*) FROM assignment WHERE project_id = :p",
    "leased": "SELECT count(*) FROM assignment WHERE project_id = :p AND state = 'leased'",
    "items_judged": "SELECT count(DISTINCT item_id) FROM judgment WHERE project_id = :p",
    "items_over_overlap": (
        "SELECT count(*) FROM (SELECT item_id FROM judgment WHERE project_id = :p "
        "GROUP BY item_id HAVING count(*) > :o) AS x"
    ),
    "items_over_overlap_live": (
        "SELECT count(*) FROM (SELECT item_id FROM assignment WHERE project_id = :p "
        "AND state IN ('leased', 'submitted') GROUP BY item_id HAVING count(*) > :o) AS x"
    ),
    "duplicate_annotator_item": (
        "SELECT count(*) FROM (SELECT annotator_id, item_id FROM judgment WHERE project_id = :p "
        "GROUP BY annotator_id, item_id HAVING count(*) > 1) AS x"
    ),
    "judgment_on_unsubmitted": (
        "SELECT count(*) FROM judgment j JOIN assignment a ON a.id = j.assignment_id "
        "WHERE j.project_id = :p AND a.state != 'submitted'"
    ),
    "queue_slot_mismatch": (
        "SELECT count(*) FROM item_queue q LEFT JOIN (SELECT item_id, count(*) AS n FROM assignment "
        "WHERE project_id = :p AND state IN ('leased', 'submitted') GROUP BY item_id) a ON a.item_id = q.item_id "
        "WHERE q.project_id = :p AND q.open_slots != :o - coalesce(a.n, 0)"
    ),
}


def verify(database_url: str, *, project_id: int, overlap: int, acknowledged: int) -> dict[str, Any]:
    """Check the cell's database: overlap held, no annotator twice on an item, every 201 stored once."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            found: dict[str, Any] = {
                name: int(connection.execute(text(sql), {"p": project_id, "o": overlap}).scalar_one())
                for name, sql in VERIFY_SQL.items()
            }
    finally:
        engine.dispose()
    found["acknowledged_201"] = acknowledged
    found["ok"] = (
        found["items_over_overlap"] == 0
        and found["items_over_overlap_live"] == 0
        and found["duplicate_annotator_item"] == 0
        and found["judgment_on_unsubmitted"] == 0
        and found["queue_slot_mismatch"] == 0
        and found["judgments"] == acknowledged
    )
    return found


# ------------------------------------------------------------------ cells
def git_revision() -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def append(out: Path, row: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as stream:
        stream.write(json.dumps(row) + "\n")


def generic_cell(a: argparse.Namespace, target: Target, *, conc: int, workers: int, run_id: str) -> dict[str, Any]:
    """A cell driven by `drive`: the HTML surface, or either surface in open loop."""
    meta = target.seeded()
    think = a.think if a.open_loop else 0.0
    warmup = max(a.warmup, think) if a.open_loop else a.warmup
    mode = "open" if a.open_loop else "closed"
    name = f"{target.label}-{a.surface}-{mode}-c{conc}-w{workers}"
    row: dict[str, Any] = {
        "kind": "prefstack",
        "run_id": run_id,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_rev": git_revision(),
        "backend": target.backend,
        "surface": a.surface,
        "mode": mode,
        "think_s": think,
        "items": target.items,
        "slug": target.slug,
        "conc": conc,
        "workers": workers,
        "warmup_s": warmup,
        "duration_s": a.duration,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "profiled": None,
        "analyzed_after_warmup": analyzes(a, target),
    }
    cell_db = name.replace("-", "_") + f"_{os.getpid()}"
    server_log = a.workdir / f"server-{name}.log"
    with cell_database(target, cell_db) as url:
        accounts = meta["tokens"] + prepare_cell(
            url, slug=target.slug, have=len(meta["tokens"]), want=conc, password=a.surface == "html"
        )
        with prefstack_server(
            prefstack=a.prefstack, database_url=url, workers=workers, log_path=server_log, cwd=a.workdir
        ) as (server, port):
            annotators = make_annotators(a.surface, port=port, slug=target.slug, accounts=accounts[:conc])
            meter = CostMeter(server.pid, database_is_postgres=target.backend == "postgresql")
            result = run_drive(
                annotators, think=think, warmup=warmup, duration=a.duration, meter=meter, settle=settler(a, target, url)
            )
            row["server_peak_rss_mb"] = peak_rss_mb(process_tree(server.pid))
        row["verify"] = verify(
            url, project_id=meta["project_id"], overlap=meta["overlap"], acknowledged=len(result.acknowledged)
        )
    # HTML: the POST answers with the next task, so "judgment" is the submit and "next" the two
    # fragments fetched after it from a server that does not send them with it.
    nexts = (
        result.latency.get("next", [])
        if a.surface == "api"
        else [
            *result.latency.get("progress", []),
            *result.latency.get("recent", []),
        ]
    )
    lag = latency_summary(result.lag)
    row.update(
        {
            "cycles": result.cycles,
            "cycles_per_s": round(result.cycles / a.duration, 1),
            "offered_cycles_per_s": round(conc / think, 1) if think else None,
            "calls_ms": {call: latency_summary(values) for call, values in sorted(result.latency.items())},
            "calls_per_s": {
                call: round(len(values) / a.duration, 1) for call, values in sorted(result.latency.items())
            },
            "next_ms": latency_summary(nexts),
            "judgment_ms": latency_summary(result.latency.get("judgment" if a.surface == "api" else "submit", [])),
            "statuses": dict(result.statuses),
            "no_work_204": result.no_work,
            "errors": dict(result.errors),
            "error_count": sum(result.errors.values()),
            "schedule_lag_ms": lag,
            **result.costs.fields(result.cycles),
            "server_log": str(server_log),
        }
    )
    return row


def analyzes(a: argparse.Namespace, target: Target) -> bool:
    return target.backend == "postgresql" and bool(a.analyze)


def settler(a: argparse.Namespace, target: Target, url: str) -> Callable[[], None] | None:
    return functools.partial(analyze, url) if analyzes(a, target) else None


def prefstack_cell(a: argparse.Namespace, target: Target, *, conc: int, workers: int, run_id: str) -> dict[str, Any]:
    if a.surface != "api" or a.open_loop:
        return generic_cell(a, target, conc=conc, workers=workers, run_id=run_id)
    meta = target.seeded()
    tokens = [entry["token"] for entry in meta["tokens"]]
    name = f"{target.label}-c{conc}-w{workers}"
    row: dict[str, Any] = {
        "kind": "prefstack",
        "run_id": run_id,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_rev": git_revision(),
        "backend": target.backend,
        "items": target.items,
        "slug": target.slug,
        "conc": conc,
        "workers": workers,
        "warmup_s": a.warmup,
        "duration_s": a.duration,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "profiled": a.py_spy,
        "analyzed_after_warmup": analyzes(a, target),
    }
    cell_db = name.replace("-", "_") + f"_{os.getpid()}"
    server_log = a.workdir / f"server-{name}.log"
    profile_out = a.workdir / f"profile-{name}.txt"
    with cell_database(target, cell_db) as url:
        with prefstack_server(
            prefstack=a.prefstack, database_url=url, workers=workers, log_path=server_log, cwd=a.workdir
        ) as (server, port):
            with py_spy(server.pid, mode=a.py_spy, delay=a.warmup, seconds=a.duration, out=profile_out):
                result = run_load(
                    port=port,
                    slug=target.slug,
                    tokens=tokens[:conc],
                    warmup=a.warmup,
                    duration=a.duration,
                    meter=CostMeter(server.pid, database_is_postgres=target.backend == "postgresql"),
                    settle=settler(a, target, url),
                )
            row["server_peak_rss_mb"] = peak_rss_mb(process_tree(server.pid))
        row["verify"] = verify(url, project_id=meta["project_id"], overlap=meta["overlap"], acknowledged=result.created)
    row.update(
        {
            "cycles": result.cycles,
            "cycles_per_s": round(result.cycles / a.duration, 1),
            "next_ms": latency_summary(result.next_latency),
            "judgment_ms": latency_summary(result.judgment_latency),
            "next_ok_total": result.next_ok,
            "judgment_201_total": result.created,
            "judgment_200_total": result.repeated,
            "no_work_204": result.no_work,
            "errors": dict(result.errors),
            "error_count": sum(result.errors.values()),
            "next_bytes": result.next_bytes,
            **result.costs.fields(result.cycles),
            "server_log": str(server_log),
        }
    )
    if a.py_spy:
        row["profile"] = str(profile_out)
    return row


def reference_cell(a: argparse.Namespace, *, template: Path, variant: str, conc: int, run_id: str) -> dict[str, Any]:
    """One cell of the reference server, by its own driver (`ceiling_load.py bench --client raw`)."""
    workdir = a.workdir / "reference"
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = workdir / f"result-{uuid.uuid4().hex[:8]}.jsonl"
    loadavg = [round(x, 2) for x in os.getloadavg()]
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    command = [sys.executable, str(a.shared / "ceiling_load.py"), "bench", "--client", "raw"]
    command += ["--variant", variant, "--workers", "1", "--conc", str(conc), "--port", str(free_port())]
    command += ["--warmup", str(a.warmup), "--duration", str(a.duration)]
    command += ["--template", str(template), "--workdir", str(workdir), "--out", str(scratch)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=a.warmup + a.duration + 180)
    raw = json.loads(scratch.read_text().strip().splitlines()[-1])
    scratch.unlink()
    remove_sqlite(workdir / "run.db")
    errors = raw.get("errors", {})
    verified = raw.get("verify", {})
    return {
        "kind": "reference",
        "run_id": run_id,
        "started_at": started,
        "backend": f"reference-{variant}",
        "variant": variant,
        "items": REFERENCE_ITEMS,
        "conc": conc,
        "workers": raw["workers"],
        "warmup_s": a.warmup,
        "duration_s": a.duration,
        "loadavg_before": loadavg,
        "cycles": raw["cycles"],
        "cycles_per_s": raw["cycles_per_s"],
        "next_ms": raw["next_ms"],
        "judgment_ms": raw["judgment_ms"],
        "errors": errors,
        "error_count": sum(errors.values()),
        "no_work_204": 0,
        "next_bytes": raw.get("next_bytes"),
        "server_cpu_s": raw["server_cpu_s"],
        "server_cpu_ms_per_cycle": raw["server_cpu_ms_per_cycle"],
        "server_processes": raw.get("server_processes"),
        "server_peak_rss_mb": raw["server_peak_rss_mb"],
        "loadgen_cpu_s": raw.get("loadgen_cpu_s"),
        "verify": {
            "ok": verified.get("ok"),
            "judgments": verified.get("judgments"),
            "acknowledged_201": verified.get("acked_judgments"),
        },
        "reference_raw": raw,
    }


def summary(row: dict[str, Any]) -> str:
    return (
        f"{row['backend']} {row.get('surface', 'api')} {row.get('mode', 'closed')} "
        f"items={size_label(row['items'])} C={row['conc']} W={row['workers']}: "
        f"{row['cycles_per_s']} cycles/s, next p50 {row['next_ms']['p50']} ms, judgment p50 "
        f"{row['judgment_ms']['p50']} ms, errors {row['error_count']}, 204s {row['no_work_204']}, "
        f"server CPU {row['server_cpu_s']} s, verify {'ok' if row['verify']['ok'] else 'FAIL'}"
    )


def run(a: argparse.Namespace, *, reference_variants: list[str]) -> None:
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{os.getpid()}"
    a.workdir.mkdir(parents=True, exist_ok=True)
    targets = [Target(backend, parse_size(size), a.workdir, a.pg_url) for backend in a.backends for size in a.sizes]
    for target in targets:
        meta = target.seeded()
        seeded = len(meta["tokens"])
        if max(a.conc) > seeded and a.surface == "api" and not a.open_loop:
            raise SystemExit(f"--conc {max(a.conc)} needs as many annotators; {target.label} has {seeded}")
    if a.open_loop:
        a.conc, reference_variants = [a.annotators], []  # the reference has no open-loop driver
    reference_template = seed_reference(a.shared, a.workdir) if reference_variants else None
    count = len(a.conc) * (len(reference_variants) + len(targets) * len(a.workers))
    log(f"run {run_id}: {count} cells of {a.warmup:g}+{a.duration:g} s -> {a.out}")
    done = 0
    failed: list[str] = []
    # Reference cells sit next to prefstack's at each concurrency, so drifting load on a shared
    # box touches both sides of a ratio alike.
    for conc in a.conc:
        for variant in reference_variants:
            assert reference_template is not None
            row = reference_cell(a, template=reference_template, variant=variant, conc=conc, run_id=run_id)
            append(a.out, row)
            done += 1
            log(f"[{done}/{count}] {summary(row)}")
        for target in targets:
            for workers in a.workers:
                row = prefstack_cell(a, target, conc=conc, workers=workers, run_id=run_id)
                append(a.out, row)
                done += 1
                log(f"[{done}/{count}] {summary(row)}")
                if not row["verify"]["ok"] or row["error_count"]:
                    failed.append(f"{target.label} C={conc} W={workers}")
    if failed:
        raise SystemExit(f"errors or failed database checks in: {', '.join(failed)} (see {a.out})")


# ------------------------------------------------------------------ table
def _spread(latency: dict[str, Any]) -> str:
    return f"{latency['p99'] / latency['p50']:.1f}" if latency.get("p50") and latency.get("p99") else "-"


def _triple(latency: dict[str, Any]) -> str:
    return f"{latency['p50']} / {latency['p95']} / {latency['p99']}"


def reference_for(rows: list[dict[str, Any]], row: dict[str, Any], variant: str = "A") -> dict[str, Any] | None:
    """The reference cell at the same concurrency: from the same run if there is one, else the latest."""
    same = [r for r in rows if r["kind"] == "reference" and r["variant"] == variant and r["conc"] == row["conc"]]
    in_run = [r for r in same if r["run_id"] == row["run_id"]]
    pool = in_run or same
    return pool[-1] if pool else None


def _ratio_to_reference(rows: list[dict[str, Any]], row: dict[str, Any], variant: str) -> str:
    """Closed-loop cycles/s over the reference variant's at the same concurrency ("-" without one)."""
    reference = reference_for(rows, row, variant) if row.get("mode", "closed") == "closed" else None
    if reference is None or not reference["cycles_per_s"]:
        return "-"
    ratio = f"{row['cycles_per_s'] / reference['cycles_per_s']:.2f}"
    return ratio + ("" if reference["run_id"] == row["run_id"] else " (other run)")


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def table(path: Path, *, last_run: bool) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if last_run and rows:
        rows = [r for r in rows if r["run_id"] == rows[-1]["run_id"]]
    variants = ["A"] + (["D"] if any(r["kind"] == "reference" and r["variant"] == "D" for r in rows) else [])
    ratio_heads = "".join(f" vs ref {variant} |" for variant in variants)
    header = (
        f"| backend | items | C | workers | cycles/s |{ratio_heads} next p50 / p95 / p99 ms | "
        "judgment p50 / p95 / p99 ms | p99/p50 next, judgment | errors | 204s | server CPU s | CPU ms/cycle | "
        "PostgreSQL CPU ms/cycle | busy cores | CPU s by server process | peak RSS MB | verify |"
    )
    out = [header, "|---" * (header.count("|") - 1) + "|"]
    for row in rows:
        ratios = " | ".join(_ratio_to_reference(rows, row, variant) for variant in variants)
        verified = row["verify"]
        check = "n/a" if verified.get("ok") is None else ("ok" if verified["ok"] else "FAIL")
        if verified.get("judgments") is not None:
            check += f" ({verified['judgments']}={verified['acknowledged_201']})"
        name = row["backend"] + (" (py-spy)" if row.get("profiled") else "")
        if row["kind"] == "prefstack" and (row.get("surface", "api") != "api" or row.get("mode") == "open"):
            name += f" {row['surface']}" + (f" open {row['think_s']:g} s" if row["mode"] == "open" else "")
        out.append(
            f"| {name} | {size_label(row['items'])} | {row['conc']} | {row['workers']} | {row['cycles_per_s']} | "
            f"{ratios} | {_triple(row['next_ms'])} | {_triple(row['judgment_ms'])} | "
            f"{_spread(row['next_ms'])}, {_spread(row['judgment_ms'])} | {row['error_count']} | "
            f"{row['no_work_204']} | {row['server_cpu_s']} | {row['server_cpu_ms_per_cycle']} | "
            f"{_or_dash(row.get('database_cpu_ms_per_cycle'))} | {_or_dash(row.get('machine_busy_cores'))} | "
            f"{' / '.join(map(str, row.get('server_process_cpu_s') or [])) or '-'} | "
            f"{row['server_peak_rss_mb']} | {check} |"
        )
    return "\n".join(out)


# ------------------------------------------------------------------ profile
# py-spy's idle detection misses threads parked in a lock inside this VM: an idle threadpool
# worker shows up as Condition.wait under Queue.get. Such samples are dropped from the shares.
IDLE_LEAF = "Condition.wait (threading.py"
IDLE_CALLER = "Queue.get (queue.py"
IDLE_WORKER = "WorkerThread.run (anyio/"
OUR_PACKAGES = ("app/api", "app/services", "app/deps", "app/main", "preference_store/", "annotation_ui/")


def profile_top(path: Path, *, limit: int) -> str:
    """Shares of a py-spy `raw` file (one `frame;frame;... count` line per stack).

    Split by thread kind (event loop or threadpool worker), then the hottest leaf frames, then
    prefstack's own functions by inclusive share.
    """
    own: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [frame for frame in stack.split(";") if not frame.startswith(("process ", "thread "))]
        if not frames or not count_text.isdigit():
            continue
        count = int(count_text)
        worker = any(frame.startswith(IDLE_WORKER) for frame in frames)
        if worker and frames[-1].startswith(IDLE_LEAF) and any(frame.startswith(IDLE_CALLER) for frame in frames):
            idle += count
            continue
        total += count
        threads["threadpool workers" if worker else "event loop thread"] += count
        own[frames[-1]] += count
        for frame in set(frames):
            if frame.partition("(")[2].startswith(OUR_PACKAGES):
                ours[frame] += count

    def shares(counter: Counter[str]) -> list[str]:
        return [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in counter.most_common(limit)]

    lines = [f"{total} samples (and {idle} of idle threadpool workers, left out)", "", "threads:"]
    lines += [*shares(threads), "", "self (leaf frames):", *shares(own)]
    lines += ["", "inclusive, prefstack's code:", *shares(ours)]
    return "\n".join(lines)


def clean(a: argparse.Namespace) -> None:
    """Drop the PostgreSQL templates and any cell databases left behind, and the work folder."""
    for name in drop_databases(a.pg_url, "prefstack_bench_"):
        log(f"dropped database {name}")
    if a.workdir.exists():
        shutil.rmtree(a.workdir)
        log(f"removed {a.workdir}")


# ------------------------------------------------------------------ command line
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="templates, cell copies, logs")
        p.add_argument(
            "--pg-url",
            default=os.environ.get("PREFSTACK_BENCH_PG_URL", DEFAULT_PG_URL),
            help="PostgreSQL admin URL (templates and cell databases are created beside it)",
        )
        p.add_argument(
            "--shared",
            type=Path,
            default=Path(os.environ.get("PREFSTACK_BENCH_SHARED", DEFAULT_SHARED)),
            help="folder with the reference's ceiling_server.py and ceiling_load.py",
        )

    seed_parser = sub.add_parser("seed", help="build a template database")
    common(seed_parser)
    seed_parser.add_argument("--backend", type=str_list, default=["sqlite"], help="sqlite, postgresql or both")
    seed_parser.add_argument("--size", type=str_list, default=["10k"], help="items, e.g. 10k,100k")
    seed_parser.add_argument("--users", type=int, default=64, help="annotators with API tokens (>= max conc)")
    seed_parser.add_argument("--batch", type=int, default=5000, help="items per insert_items call")
    seed_parser.add_argument("--reference", action="store_true", help="also seed the reference's 100k template")

    def cells(p: argparse.ArgumentParser) -> None:
        common(p)
        p.add_argument("--conc", type=int_list, default=[1, 8, 32, 64], help="concurrent annotators, e.g. 1,8,32,64")
        p.add_argument("--duration", type=float, default=20.0, help="measured seconds per cell")
        p.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before the window")
        p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results .jsonl (appended)")

    run_parser = sub.add_parser("run", help="measure prefstack cells (and the reference)")
    cells(run_parser)
    run_parser.add_argument("--backends", type=str_list, default=["sqlite", "postgresql"])
    run_parser.add_argument("--sizes", type=str_list, default=["10k", "100k"])
    run_parser.add_argument("--workers", type=int_list, default=[1], help="uvicorn workers, e.g. 1,2")
    run_parser.add_argument("--with-reference", action="store_true", help="reference cells at each concurrency")
    run_parser.add_argument("--reference-variants", type=str_list, default=["A"], help="e.g. A,D")
    run_parser.add_argument("--prefstack", type=Path, default=Path(sys.executable).parent / "prefstack")
    run_parser.add_argument("--surface", choices=["api", "html"], default="api", help="JSON API or the htmx pages")
    run_parser.add_argument(
        "--analyze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="PostgreSQL: ANALYZE each cell's database half-way through the warm-up, as autovacuum would",
    )
    run_parser.add_argument(
        "--open-loop", action="store_true", help="--annotators each step every --think s (+-25 %%), not back to back"
    )
    run_parser.add_argument("--annotators", type=int, default=500, help="open loop: annotators (accounts added)")
    run_parser.add_argument("--think", type=float, default=20.0, help="open loop: seconds between an annotator's steps")
    run_parser.add_argument(
        "--py-spy", choices=["gil", "active"], default=None, help="profile the server during each window"
    )

    reference_parser = sub.add_parser("reference", help="measure only the reference server")
    cells(reference_parser)
    reference_parser.add_argument("--variants", type=str_list, default=["A"], help="e.g. A,D")

    table_parser = sub.add_parser("table", help="markdown table of a results file")
    table_parser.add_argument("path", type=Path, nargs="?", default=DEFAULT_OUT)
    table_parser.add_argument("--last-run", action="store_true", help="only the newest run in the file")

    profile_parser = sub.add_parser("profile", help="top frames of a py-spy raw profile")
    profile_parser.add_argument("path", type=Path)
    profile_parser.add_argument("--limit", type=int, default=25)

    clean_parser = sub.add_parser("clean", help="drop the PostgreSQL templates and remove the work folder")
    common(clean_parser)

    a = parser.parse_args()
    if a.command == "seed":
        for backend in a.backend:
            for size in a.size:
                seed(Target(backend, parse_size(size), a.workdir, a.pg_url), users=a.users, batch=a.batch)
        if a.reference:
            seed_reference(a.shared, a.workdir)
    elif a.command == "run":
        run(a, reference_variants=a.reference_variants if a.with_reference else [])
    elif a.command == "reference":
        a.backends, a.sizes, a.workers, a.py_spy = [], [], [1], None
        a.surface, a.open_loop = "api", False
        run(a, reference_variants=a.variants)
    elif a.command == "table":
        print(table(a.path, last_run=a.last_run))
    elif a.command == "profile":
        print(profile_top(a.path, limit=a.limit))
    else:
        clean(a)


if __name__ == "__main__":
    main()
