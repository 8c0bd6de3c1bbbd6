"""Crash and restart (issue 7): the soak's load through faults, then the database checked.

  server      the soak's crowd (bench/soak.py) for --before s, then SIGKILL to the server's whole
              process group, a restart on the same database and port, --after s more; a quarter of
              the annotators holding a task at the kill (--walk-away) never come back, so those items
              must return to the pool when their lease lapses (prefstack does nothing on restart:
              a lease runs out, or its holder's next `next` hands it back to them). Then the soak's
              checks, where every judgment acknowledged before the kill must be stored and a
              judgment the kill cut off may be stored without an acknowledgement.
  import      `prefstack import` of a large native JSONL file (bench/import_items.py gen) into the bench
              project, SIGKILLed when it has read half of the file (its read offset in
              /proc/<pid>/fdinfo); then: the item count unchanged, SQLite `PRAGMA integrity_check`,
              on PostgreSQL no session of the database left (idle in transaction or otherwise), and a
              small import afterwards succeeds (no stale lock).
  pg-restart  a private PostgreSQL instance (initdb + pg_ctl as the postgres user on a free port; the
              shared server is never touched), a small template on it, the crowd against `prefstack
              serve`, `pg_ctl restart -m fast` in the middle: requests in flight fail (status and
              body recorded, none hangs), and requests after the restart succeed with the same server
              process (connections idle over a second are pinged; the first one found dropped
              empties the pool).
  all         the three, on the backends given.

One JSON line per scenario into bench/results/crash.jsonl; exit 1 on any violation.

  .venv/bin/python bench/crash.py all --backend sqlite,postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

from annotate import (
    DEFAULT_PG_URL,
    DEFAULT_WORKDIR,
    Target,
    append,
    cell_database,
    free_port,
    git_revision,
    prefstack_server,
    prepare_cell,
    process_tree,
    seed,
)
from benchlib import log, parse_size, size_label, str_list
from import_items import data_file
from soak import DROP_INS, Crowd, check, ledger_summary, run_async
from sqlalchemy import bindparam, create_engine, make_url, text

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "results" / "crash.jsonl"
STATES_OF = text("SELECT state FROM assignment WHERE id IN :ids").bindparams(bindparam("ids", expanding=True))


def base_row(kind: str, backend: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_rev": git_revision(),
        "backend": backend,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }


def crowd_accounts(
    url: str, meta: dict[str, Any], *, slug: str, annotators: int, lease: int | None
) -> tuple[list[str], list[str]]:
    extra = prepare_cell(
        url, slug=slug, have=len(meta["tokens"]), want=max(annotators, 64) + DROP_INS, lease_seconds=lease
    )
    tokens = [entry["token"] for entry in (meta["tokens"] + extra)[:annotators]]
    return tokens, [entry["token"] for entry in extra[-DROP_INS:]]


# ------------------------------------------------------------------ server SIGKILL
def server_crash(a: argparse.Namespace, backend: str) -> dict[str, Any]:
    target = Target(backend, parse_size(a.size), a.workdir, a.pg_url)
    meta = target.seeded()
    row = base_row("crash-server", backend) | {"items": target.items, "annotators": a.annotators, "workers": a.workers}
    row |= {"before_s": a.before, "after_s": a.after, "lease_s": a.lease}
    server_log = a.workdir / f"server-crash-{target.label}.log"
    with cell_database(target, f"crash_{target.label.replace('-', '_')}_{os.getpid()}") as url:
        tokens, drop_ins = crowd_accounts(url, meta, slug=target.slug, annotators=a.annotators, lease=a.lease)
        port, secret = free_port(), os.urandom(32).hex()
        serve = {"prefstack": a.prefstack, "database_url": url, "workers": a.workers, "cwd": a.workdir}
        serve |= {"log_path": server_log, "port": port, "secret_key": secret}
        crowd = Crowd(port=port, slug=target.slug, tokens=tokens, drop_ins=drop_ins, lease=a.lease, think=a.think)
        facts: dict[str, Any] = {}
        with ExitStack() as stack:
            server, _ = stack.enter_context(prefstack_server(**serve))

            async def scenario() -> None:
                load = asyncio.create_task(crowd.run(None))
                await asyncio.sleep(a.before)
                while len(crowd.ledger.held) < 2:  # the kill must find leases in hand
                    await asyncio.sleep(0.01)
                os.killpg(server.pid, signal.SIGKILL)  # the group of the server this script started
                killed = time.perf_counter()
                held = dict(crowd.ledger.held)
                facts["acknowledged_before"] = set(crowd.ledger.acknowledged)
                facts["interrupted"] = set(held.values())
                # Some of those holding a task never come back: their leases must lapse.
                crowd.walk_away = set(list(held)[: max(1, round(len(held) * a.walk_away))])
                facts["walked_away_holding"] = {held[n] for n in crowd.walk_away}
                await asyncio.to_thread(server.wait)
                restarted, _ = await asyncio.to_thread(
                    stack.enter_context, prefstack_server(**serve | {"append_log": True})
                )
                facts["restart_s"] = round(time.perf_counter() - killed, 1)
                facts["restarted_pid"] = restarted.pid
                await asyncio.sleep(a.after)
                crowd.stopping = True
                await load

            log(f"crash {target.label}: {a.annotators} annotators, SIGKILL after {a.before:g} s")
            run_async(scenario())
            log(f"crash {target.label}: restarted in {facts['restart_s']} s; waiting {a.lease + 8} s for leases")
            time.sleep(a.lease + 8)
            run_async(crowd.sweep())
        checked = check(
            url,
            project_id=meta["project_id"],
            overlap=meta["overlap"],
            ledger=crowd.ledger,
            acknowledged_before=facts["acknowledged_before"],
            interrupted=facts["interrupted"],
        )
        engine = create_engine(url)
        with engine.connect() as connection:
            held = sorted(facts["interrupted"])
            states = Counter(
                state
                for (state,) in connection.execute(
                    STATES_OF,
                    {"ids": held or [0]},
                )
            )
            away = sorted(facts["walked_away_holding"]) or [0]
            away_states = Counter(
                state
                for (state,) in connection.execute(
                    STATES_OF,
                    {"ids": away},
                )
            )
            if backend == "sqlite":
                checked["integrity_check"] = connection.exec_driver_sql("PRAGMA integrity_check").scalar_one()
                checked["ok"] = checked["ok"] and checked["integrity_check"] == "ok"
        engine.dispose()
    row |= ledger_summary(crowd.ledger, a.before + a.after)
    row |= {
        "restart_s": facts["restart_s"],
        "acknowledged_before_kill": len(facts["acknowledged_before"]),
        "interrupted_leases": len(facts["interrupted"]),
        "interrupted_final_states": dict(states),
        "walked_away_leases": len(facts["walked_away_holding"]),
        "walked_away_final_states": dict(away_states),
        "check": checked,
        "server_log": str(server_log),
    }
    bad = {k: v for k, v in checked["violations"].items() if v}
    log(
        f"crash {target.label}: {row['acknowledged_before_kill']} acknowledged before the kill, "
        f"{checked['counts']['unacknowledged_judgments']} stored without an answer; interrupted leases "
        f"{dict(states)}, of those walked away {dict(away_states)}; statuses {row['statuses']}; "
        f"check {'ok' if checked['ok'] else 'VIOLATIONS ' + json.dumps(bad)}"
    )
    return row


# ------------------------------------------------------------------ import SIGKILL
def import_file(workdir: Path, items: str) -> Path:
    path = data_file(workdir, parse_size(items))
    if not (workdir / f"import-{size_label(parse_size(items))}.done").exists() and not path.exists():
        subprocess.run(
            [
                sys.executable,
                str(REPO / "bench" / "import_items.py"),
                "--workdir",
                str(workdir),
                "gen",
                "--items",
                items,
            ],
            check=True,
        )
    return path


def read_offset(pid: int, path: Path) -> int | None:
    """How far process `pid` has read `path` (its file descriptor's offset), if it has it open."""
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                    for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
                        if line.startswith("pos:"):
                            return int(line.split()[1])
            except OSError:
                continue
    except OSError:
        return None
    return None


def item_count(url: str, project_id: int) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text("SELECT count(*) FROM item WHERE project_id = :p"), {"p": project_id}
                ).scalar_one()
            )
    finally:
        engine.dispose()


def import_crash(a: argparse.Namespace, backend: str) -> dict[str, Any]:
    target = Target(backend, parse_size(a.size), a.workdir, a.pg_url)
    meta = target.seeded()
    source = import_file(a.workdir, a.import_items).resolve()
    row = base_row("crash-import", backend) | {"file": str(source), "file_bytes": source.stat().st_size}
    with cell_database(target, f"crashimp_{target.label.replace('-', '_')}_{os.getpid()}") as url:
        before = item_count(url, meta["project_id"])
        env = {**os.environ, "PREFSTACK_DATABASE_URL": url, "PREFSTACK_ENVIRONMENT": "development"}
        env["PREFSTACK_SECRET_KEY"] = os.urandom(32).hex()
        started = time.perf_counter()
        importer = subprocess.Popen(
            [str(a.prefstack), "import", target.slug, str(source)],
            env=env,
            cwd=a.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        offset = 0
        while importer.poll() is None and offset < row["file_bytes"] * a.kill_at:
            offset = read_offset(importer.pid, source) or offset
            time.sleep(0.05)
        finished_first = importer.poll() is not None
        if not finished_first:
            os.killpg(importer.pid, signal.SIGKILL)  # the session this script started for the import
        importer.wait()
        row |= {"killed_after_s": round(time.perf_counter() - started, 1), "read_bytes_at_kill": offset}
        row["read_share_at_kill"] = round(offset / row["file_bytes"], 2)
        row["import_finished_before_kill"] = finished_first
        time.sleep(1.0)
        after = item_count(url, meta["project_id"])
        row |= {"items_before": before, "items_after": after}
        engine = create_engine(url)
        with engine.connect() as connection:
            if backend == "sqlite":
                row["integrity_check"] = connection.exec_driver_sql("PRAGMA integrity_check").scalar_one()
                leftovers = 0
            else:
                database = make_url(url).database
                leftovers = int(
                    connection.execute(
                        text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND pid != pg_backend_pid()"),
                        {"d": database},
                    ).scalar_one()
                )
                row["integrity_check"] = "n/a"
            row["other_sessions_left"] = leftovers
        engine.dispose()
        small = a.workdir / f"crash-import-small-{os.getpid()}.jsonl"
        with source.open() as lines, small.open("w") as out:
            for _, line in zip(range(50), lines, strict=False):
                out.write(line)
        again = subprocess.run(
            [str(a.prefstack), "import", target.slug, str(small)],
            check=False,
            env=env,
            cwd=a.workdir,
            capture_output=True,
            text=True,
        )
        small.unlink()
        row["import_after_exit_code"] = again.returncode
        row["items_after_small_import"] = item_count(url, meta["project_id"])
    row["ok"] = (
        not finished_first
        and after == before
        and row["integrity_check"] in ("ok", "n/a")
        and row["other_sessions_left"] == 0
        and again.returncode == 0
        and row["items_after_small_import"] == before + 50
    )
    log(
        f"import kill {backend}: killed at {row['read_share_at_kill']:.0%} of the file after "
        f"{row['killed_after_s']} s; items {before} -> {after}; integrity {row['integrity_check']}; "
        f"sessions left {row['other_sessions_left']}; a small import afterwards: exit {again.returncode}, "
        f"items {row['items_after_small_import']}: {'ok' if row['ok'] else 'FAIL'}"
    )
    if again.returncode:
        log(again.stderr[-2000:])
    return row


# ------------------------------------------------------------------ PostgreSQL restart
class PrivatePostgres:
    """A throwaway PostgreSQL cluster in a temp folder, run as the postgres user on a free port."""

    def __init__(self, root: Path) -> None:
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
        if not versions:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
        self.bin = Path(versions[-1]).parent
        self.root = Path(tempfile.mkdtemp(prefix="prefstack-pg-", dir=root))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def run(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self.run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.pg_ctl("start")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self.run(
            str(self.bin / "pg_ctl"),
            action,
            "-D",
            str(self.data),
            "-w",
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            *extra,
        )

    def stop(self) -> None:
        with suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.run(str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)


def pg_restart(a: argparse.Namespace) -> dict[str, Any]:
    row = base_row("pg-restart", "postgresql-private") | {"annotators": a.annotators, "workers": a.workers}
    cluster = PrivatePostgres(a.workdir)
    try:
        pg_url = cluster.start()
        row["postgres"] = str(cluster.bin)
        workdir = a.workdir / "private-pg"
        target = Target("postgresql", 2000, workdir, pg_url)
        seed(target, users=64, batch=1000)
        meta = target.seeded()
        server_log = a.workdir / "server-pg-restart.log"
        with cell_database(target, "prefstack_bench_pgrestart") as url:
            tokens, drop_ins = crowd_accounts(url, meta, slug=target.slug, annotators=a.annotators, lease=None)
            with prefstack_server(
                prefstack=a.prefstack, database_url=url, workers=a.workers, log_path=server_log, cwd=a.workdir
            ) as (server, port):
                crowd = Crowd(port=port, slug=target.slug, tokens=tokens, drop_ins=drop_ins, lease=1800, think=a.think)
                crowd.timeline = []
                window: dict[str, float] = {}

                async def scenario() -> None:
                    load = asyncio.create_task(crowd.run(None))
                    await asyncio.sleep(a.before)
                    window["start"] = time.perf_counter()
                    await asyncio.to_thread(cluster.pg_ctl, "restart", "-m", "fast")
                    window["end"] = time.perf_counter()
                    await asyncio.sleep(a.after)
                    crowd.stopping = True
                    await load

                log(f"pg-restart: {a.annotators} annotators, pg_ctl restart -m fast after {a.before:g} s")
                run_async(scenario())
                row["server_survived"] = server.poll() is None and bool(process_tree(server.pid))
        row |= restart_report(crowd.timeline, window, settle=a.settle)
        row["summary"] = ledger_summary(crowd.ledger, a.before + a.after)
    finally:
        cluster.stop()
    log(
        f"pg-restart: restart took {row['restart_s']} s; calls overlapping it: {row['during']}; "
        f"longest call {row['longest_call_s']} s; after +{a.settle:g} s: {row['after']}; "
        f"error bodies {row['error_bodies']}; {'ok' if row['ok'] else 'FAIL'}"
    )
    return row


def restart_report(
    timeline: list[tuple[float, float, str, int, bytes]], window: dict[str, float], *, settle: float
) -> dict[str, Any]:
    start, end = window["start"], window["end"]
    during = Counter(str(status) for t0, t1, _, status, _ in timeline if t1 >= start and t0 <= end + settle)
    after = Counter(str(status) for t0, _, _, status, _ in timeline if t0 > end + settle)
    before = Counter(str(status) for _, t1, _, status, _ in timeline if t1 < start)
    bodies = Counter(
        body[:120].decode(errors="replace") for *_, status, body in timeline if status >= 400 or status == 0
    )
    recovered = [t1 - end for t0, t1, name, status, _ in timeline if t0 > end and status in (200, 201, 204)]
    longest = max((t1 - t0 for t0, t1, *_ in timeline), default=0.0)
    ok_after = all(status in ("200", "201", "204") for status in after)
    return {
        "restart_s": round(end - start, 2),
        "before": dict(before),
        "during": dict(during),
        "after": dict(after),
        "error_bodies": dict(bodies.most_common(5)),
        "first_success_after_restart_s": round(min(recovered), 2) if recovered else None,
        "longest_call_s": round(longest, 2),
        "ok": ok_after and bool(after) and longest < 30,
    }


# ------------------------------------------------------------------ command line
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["server", "import", "pg-restart", "all"])
    parser.add_argument("--backend", type=str_list, default=["sqlite", "postgresql"], help="server and import")
    parser.add_argument("--size", default="10k", help="annotate.py template to copy")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--annotators", type=int, default=64)
    parser.add_argument(
        "--think", type=float, default=0.2, help="mean seconds an annotator holds a task (so a kill finds leases held)"
    )
    parser.add_argument("--lease", type=int, default=30)
    parser.add_argument("--before", type=float, default=20.0, help="seconds of load before the fault")
    parser.add_argument("--after", type=float, default=20.0, help="seconds of load after it")
    parser.add_argument(
        "--walk-away",
        type=float,
        default=0.25,
        help="share of the annotators holding a task at the kill who never come back",
    )
    parser.add_argument("--settle", type=float, default=2.0, help="pg-restart: seconds after it still excused")
    parser.add_argument("--import-items", default="100k", help="the bench/import_items.py file to import")
    parser.add_argument("--kill-at", type=float, default=0.5, help="share of the file read when the import is killed")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--pg-url", default=os.environ.get("PREFSTACK_BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--prefstack", type=Path, default=Path(sys.executable).parent / "prefstack")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for backend in a.backend if a.scenario in ("server", "all") else []:
        rows.append(server_crash(a, backend))
    for backend in a.backend if a.scenario in ("import", "all") else []:
        rows.append(import_crash(a, backend))
    if a.scenario in ("pg-restart", "all"):
        rows.append(pg_restart(a))
    failed = [row["kind"] + " " + row["backend"] for row in rows if not row.get("ok", row.get("check", {}).get("ok"))]
    for row in rows:
        append(a.out, row)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)} (see {a.out})")


if __name__ == "__main__":
    main()
