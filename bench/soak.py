"""Soak (issue 7): 64 annotators for 10 minutes on the JSON API, with the faults a real crowd makes.

Each annotator loops GET next -> POST judgment (closed loop, `--think` seconds between steps). Of
the tasks served, about 5 % are skipped, about 2 % are submitted twice (half of them by two
connections at once, half as a retry after a response the client dropped: the first request is
written and its connection closed before the answer), and for about 3 % a drop-in account (one
that is not one of the 64) claims an item and never comes back, so its lease must lapse and the item
return to the pool. The project's lease is cut to `--lease` seconds (default 30) so that happens
during the run.

At the end the script waits out the leases, triggers the sweep (a claim, then a skip of it) and,
with the server stopped, checks the database: no 5xx answer, every acknowledged judgment (the
judgment id of each 200/201) stored exactly once on its assignment, no judgment that was not
acknowledged, every double submission answered with one judgment id, no item over its overlap, no
annotator twice on an item, no lease left, the abandoned leases expired, the queue's open slots
consistent. It prints a summary, appends a JSON line to bench/results/soak.jsonl and exits 1 on
any violation.

  .venv/bin/python bench/soak.py --backend postgresql --minutes 10 --workers 2

The templates are annotate.py's (`annotate.py seed --backend ... --size 100k`): a 10k project
holds 30,000 judgments, which 64 annotators with no think time can exhaust in ten minutes.
bench/crash.py drives the same load through a SIGKILL of the server.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from annotate import (
    CALL_ERRORS,
    DEFAULT_PG_URL,
    DEFAULT_WORKDIR,
    VERIFY_SQL,
    Connection,
    Target,
    append,
    cell_database,
    cpu_seconds,
    git_revision,
    latency_summary,
    peak_rss_mb,
    prefstack_server,
    prepare_cell,
    process_tree,
)
from benchlib import log, parse_size
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "results" / "soak.jsonl"
HOST = "127.0.0.1"
SKIP_SHARE, ABANDON_SHARE, DOUBLE_SHARE = 0.05, 0.03, 0.02
DROP_INS = 48
"""Extra accounts for the abandoned claims: each waits a lease (and a sweep) before it claims again."""


@dataclass
class Ledger:
    """Everything the clients saw, to be checked against the database afterwards."""

    statuses: Counter[str] = field(default_factory=Counter)
    latency: dict[str, list[float]] = field(default_factory=dict)
    acknowledged: dict[int, int] = field(default_factory=dict)  # judgment id -> assignment id
    ack_conflicts: list[str] = field(default_factory=list)
    doubles: list[dict[str, Any]] = field(default_factory=list)
    skipped: set[int] = field(default_factory=set)
    abandoned: set[int] = field(default_factory=set)
    held: dict[int, int] = field(default_factory=dict)  # annotator -> assignment claimed, its answer not begun
    judgments_sent: int = 0

    def acknowledge(self, judgment_id: int, assignment_id: int) -> None:
        known = self.acknowledged.setdefault(judgment_id, assignment_id)
        if known != assignment_id:
            self.ack_conflicts.append(
                f"judgment {judgment_id} acknowledged for assignments {known} and {assignment_id}"
            )

    def server_errors(self) -> int:
        return sum(n for key, n in self.statuses.items() if key.rsplit(" ", 1)[1].startswith("5"))


class Crowd:
    """The soak's annotators on one server (its port can change when it is restarted)."""

    def __init__(
        self, *, port: int, slug: str, tokens: list[str], drop_ins: list[str], lease: float, think: float
    ) -> None:
        self.port, self.slug, self.lease, self.think = port, slug, lease, think
        self.tokens, self.drop_ins = tokens, drop_ins
        self.ledger = Ledger()
        self.stopping = False
        self.walk_away: set[int] = set()  # annotators who stop coming back (crash.py)
        self.timeline: list[tuple[float, float, str, int, bytes]] | None = None  # every call (crash.py)
        self.drop_in_free = dict.fromkeys(range(len(drop_ins)), 0.0)

    async def call(self, conn: Connection, name: str, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        t0 = time.perf_counter()
        try:
            status, content = await asyncio.wait_for(conn.request(head, body), timeout=30)
        except CALL_ERRORS as error:
            conn.close()
            self.ledger.statuses[f"{name} {type(error).__name__}"] += 1
            if self.timeline is not None:
                self.timeline.append((t0, time.perf_counter(), name, 0, type(error).__name__.encode()))
            return 0, b""
        if self.timeline is not None:
            self.timeline.append((t0, time.perf_counter(), name, status, content[:300] if status >= 400 else b""))
        self.ledger.latency.setdefault(name, []).append(time.perf_counter() - t0)
        self.ledger.statuses[f"{name} {status}"] += 1
        return status, content

    @staticmethod
    def auth(token: str) -> str:
        return f"host: {HOST}\r\nauthorization: Bearer {token}\r\n"

    def next_head(self, token: str) -> bytes:
        return f"GET /api/v1/projects/{self.slug}/next HTTP/1.1\r\n{self.auth(token)}\r\n".encode()

    def post_head(self, token: str, path: str, body: bytes) -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\n{self.auth(token)}content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode()

    def judgment(self, token: str, assignment: int, rnd: random.Random) -> tuple[bytes, bytes]:
        body = orjson.dumps({"choice": rnd.choice("AB"), "time_spent_ms": rnd.randint(3000, 60000)})
        return self.post_head(token, f"/api/v1/assignments/{assignment}/judgment", body), body

    async def submit(self, conn: Connection, token: str, assignment: int, rnd: random.Random) -> None:
        self.ledger.judgments_sent += 1
        status, content = await self.call(conn, "judgment", *self.judgment(token, assignment, rnd))
        if status in (200, 201):
            self.ledger.acknowledge(orjson.loads(content)["judgment_id"], assignment)

    async def submit_twice(self, conn: Connection, token: str, assignment: int, rnd: random.Random) -> None:
        """The same judgment twice: by two connections at once, or again after a dropped answer."""
        head, body = self.judgment(token, assignment, rnd)
        self.ledger.judgments_sent += 2
        if rnd.random() < 0.5:
            other = Connection(HOST, self.port)
            answers: list[tuple[int, bytes]] = list(
                await asyncio.gather(
                    self.call(conn, "judgment_double", head, body), self.call(other, "judgment_double", head, body)
                )
            )
            other.close()
            how = "concurrent"
        else:
            dropped = Connection(HOST, self.port)
            try:
                dropped.reader, dropped.writer = await asyncio.open_connection(HOST, self.port)
                dropped.writer.write(head + body)
                await dropped.writer.drain()
            except OSError:
                pass
            dropped.close()  # the answer is never read
            answers = [await self.call(conn, "judgment_retry", head, body)]
            how = "retry"
        ids = sorted({orjson.loads(content)["judgment_id"] for status, content in answers if status in (200, 201)})
        for judgment_id in ids:
            self.ledger.acknowledge(judgment_id, assignment)
        self.ledger.doubles.append(
            {"how": how, "assignment": assignment, "statuses": [s for s, _ in answers], "judgment_ids": ids}
        )

    async def abandon(self, rnd: random.Random) -> None:
        """A drop-in account claims an item and never comes back."""
        now = time.monotonic()
        free = [n for n, at in self.drop_in_free.items() if at <= now]
        if not free:
            return
        number = rnd.choice(free)
        self.drop_in_free[number] = now + self.lease + 10  # its own next would hand back the same lease
        conn = Connection(HOST, self.port)
        status, content = await self.call(conn, "next_abandoned", self.next_head(self.drop_ins[number]))
        conn.close()
        if status == 200:
            self.ledger.abandoned.add(orjson.loads(content)["assignment_id"])

    async def annotator(self, number: int) -> None:
        token, rnd = self.tokens[number], random.Random(number)
        conn = Connection(HOST, self.port)
        backoff = 0.05
        try:
            while not self.stopping and number not in self.walk_away:
                if conn.port != self.port:
                    conn.close()
                    conn.port = self.port
                status, content = await self.call(conn, "next", self.next_head(token))
                if status == 204:
                    self.ledger.statuses["annotator ran dry"] += 1
                    return
                if status != 200:
                    await asyncio.sleep(backoff)  # the server is down or refused: try again
                    backoff = min(1.0, backoff * 2)
                    continue
                backoff = 0.05
                assignment = orjson.loads(content)["assignment_id"]
                self.ledger.held[number] = assignment
                if self.think:
                    await asyncio.sleep(self.think * rnd.uniform(0.5, 1.5))
                self.ledger.held.pop(number, None)  # answering it now (a kill may cut the answer off)
                draw = rnd.random()
                if draw < SKIP_SHARE:
                    body = b'{"reason":"soak: skipped"}'
                    path = f"/api/v1/assignments/{assignment}/skip"
                    if (await self.call(conn, "skip", self.post_head(token, path, body), body))[0] == 204:
                        self.ledger.skipped.add(assignment)
                elif draw < SKIP_SHARE + DOUBLE_SHARE:
                    await self.submit_twice(conn, token, assignment, rnd)
                else:
                    if draw < SKIP_SHARE + DOUBLE_SHARE + ABANDON_SHARE:
                        await self.abandon(rnd)
                    await self.submit(conn, token, assignment, rnd)
        finally:
            conn.close()

    async def run(self, seconds: float | None) -> None:
        """For `seconds`, or until `stopping` is set."""

        async def timer() -> None:
            if seconds is not None:
                await asyncio.sleep(seconds)
                self.stopping = True

        await asyncio.gather(timer(), *(self.annotator(n) for n in range(len(self.tokens))))

    async def sweep(self) -> None:
        """After the leases ran out: one claim (which sweeps the lapsed leases), given back by a skip."""
        conn = Connection(HOST, self.port)
        token = self.drop_ins[-1]
        status, content = await self.call(conn, "next_sweep", self.next_head(token))
        if status == 200:
            assignment = orjson.loads(content)["assignment_id"]
            body = b'{"reason":"soak: sweep"}'
            path = f"/api/v1/assignments/{assignment}/skip"
            await self.call(conn, "skip_sweep", self.post_head(token, path, body), body)
        conn.close()


def check(
    database_url: str,
    *,
    project_id: int,
    overlap: int,
    ledger: Ledger,
    acknowledged_before: set[int] | None = None,
    interrupted: set[int] | None = None,
) -> dict[str, Any]:
    """The database against what the clients saw. `acknowledged_before`: a crash run's judgments
    acknowledged before the kill (extra, unacknowledged judgments are then allowed: a submit
    the kill interrupted may have committed without its answer reaching the client)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            found: dict[str, Any] = {
                name: int(connection.execute(text(sql), {"p": project_id, "o": overlap}).scalar_one())
                for name, sql in VERIFY_SQL.items()
            }
            stored: dict[int, int] = dict(
                connection.execute(
                    text("SELECT id, assignment_id FROM judgment WHERE project_id = :p"), {"p": project_id}
                ).all()
            )
            states: dict[int, str] = dict(
                connection.execute(
                    text("SELECT id, state FROM assignment WHERE project_id = :p"), {"p": project_id}
                ).all()
            )
    finally:
        engine.dispose()
    missing = [j for j in ledger.acknowledged if j not in stored]
    moved = [j for j, a in ledger.acknowledged.items() if j in stored and stored[j] != a]
    unacknowledged = [j for j in stored if j not in ledger.acknowledged]
    doubles_split = [d for d in ledger.doubles if len(d["judgment_ids"]) > 1]
    abandoned_not_expired = [a for a in ledger.abandoned if states.get(a) != "expired"]
    skipped_wrong = [a for a in ledger.skipped if states.get(a) != "skipped"]
    held = set(ledger.held.values()) | (interrupted or set())
    held_wrong = [a for a in held if states.get(a) not in ("submitted", "expired", "skipped")]
    violations: dict[str, Any] = {
        "server_errors_5xx": ledger.server_errors(),
        "acknowledged_missing": len(missing),
        "acknowledged_on_other_assignment": len(moved) + len(ledger.ack_conflicts),
        "double_submissions_with_two_judgments": len(doubles_split),
        "items_over_overlap": found["items_over_overlap"] + found["items_over_overlap_live"],
        "duplicate_annotator_item": found["duplicate_annotator_item"],
        "judgment_on_unsubmitted": found["judgment_on_unsubmitted"],
        "leases_left": found["leased"],
        "queue_slot_mismatch": found["queue_slot_mismatch"],
        "abandoned_not_expired": len(abandoned_not_expired),
        "skipped_not_skipped": len(skipped_wrong),
        "interrupted_not_returned": len(held_wrong),
    }
    if acknowledged_before is None:
        violations["judgments_not_acknowledged"] = len(unacknowledged)
    else:
        violations["acknowledged_before_kill_missing"] = len([j for j in acknowledged_before if j not in stored])
    return {
        "counts": found | {"stored_judgments": len(stored), "unacknowledged_judgments": len(unacknowledged)},
        "violations": violations,
        "ok": not any(violations.values()),
        "examples": {"missing": missing[:5], "abandoned_not_expired": abandoned_not_expired[:5]},
    }


def ledger_summary(ledger: Ledger, seconds: float) -> dict[str, Any]:
    how = Counter(d["how"] for d in ledger.doubles)
    double_statuses = Counter(",".join(map(str, sorted(d["statuses"]))) for d in ledger.doubles)
    return {
        "statuses": dict(sorted(ledger.statuses.items())),
        "latency_ms": {name: latency_summary(values) for name, values in sorted(ledger.latency.items())},
        "judgments_acknowledged": len(ledger.acknowledged),
        "judgments_per_s": round(len(ledger.acknowledged) / seconds, 1),
        "skips": len(ledger.skipped),
        "abandoned_leases": len(ledger.abandoned),
        "double_submissions": dict(how),
        "double_submission_statuses": dict(double_statuses),
    }


def run_async(coroutine: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def soak(a: argparse.Namespace) -> dict[str, Any]:
    target = Target(a.backend, parse_size(a.size), a.workdir, a.pg_url)
    meta = target.seeded()
    seconds = a.minutes * 60
    row: dict[str, Any] = {
        "kind": "soak",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_rev": git_revision(),
        "backend": a.backend,
        "items": target.items,
        "annotators": a.annotators,
        "workers": a.workers,
        "minutes": a.minutes,
        "lease_s": a.lease,
        "think_s": a.think,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }
    name = f"soak-{target.label}-w{a.workers}"
    server_log = a.workdir / f"server-{name}.log"
    with cell_database(target, f"soak_{target.label.replace('-', '_')}_{os.getpid()}") as url:
        extra = prepare_cell(
            url,
            slug=target.slug,
            have=len(meta["tokens"]),
            want=max(a.annotators, 64) + DROP_INS,
            lease_seconds=a.lease,
        )
        tokens = [entry["token"] for entry in (meta["tokens"] + extra)[: a.annotators]]
        drop_ins = [entry["token"] for entry in extra[-DROP_INS:]]
        with prefstack_server(
            prefstack=a.prefstack, database_url=url, workers=a.workers, log_path=server_log, cwd=a.workdir
        ) as (server, port):
            crowd = Crowd(port=port, slug=target.slug, tokens=tokens, drop_ins=drop_ins, lease=a.lease, think=a.think)
            log(f"{name}: {a.annotators} annotators for {a.minutes:g} min on port {port}, lease {a.lease} s")
            cpu0, usage0 = cpu_seconds(process_tree(server.pid)), resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            run_async(crowd.run(seconds))
            elapsed = time.perf_counter() - started
            pids = process_tree(server.pid)
            cpu1, usage1 = cpu_seconds(pids), resource.getrusage(resource.RUSAGE_SELF)
            row["server_peak_rss_mb"] = peak_rss_mb(pids)
            log(f"{name}: load done ({len(crowd.ledger.acknowledged)} judgments); waiting {a.lease + 8} s for leases")
            time.sleep(a.lease + 8)
            run_async(crowd.sweep())
        row["server_cpu_s"] = round(sum(cpu1) - sum(cpu0), 1)
        row["loadgen_cpu_s"] = round(usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime, 1)
        row["elapsed_s"] = round(elapsed, 1)
        row |= ledger_summary(crowd.ledger, elapsed)
        row["check"] = check(url, project_id=meta["project_id"], overlap=meta["overlap"], ledger=crowd.ledger)
    row["server_log"] = str(server_log)
    return row


def print_summary(row: dict[str, Any]) -> None:
    checked = row["check"]
    log(
        f"{row['kind']} {row['backend']} W={row['workers']}: {row['judgments_acknowledged']} judgments "
        f"({row['judgments_per_s']}/s), {row['skips']} skips, {row['abandoned_leases']} abandoned, "
        f"doubles {row['double_submissions']} -> {row['double_submission_statuses']}"
    )
    log(f"statuses: {row['statuses']}")
    log(f"latency ms: { {k: (v['p50'], v['p99']) for k, v in row['latency_ms'].items()} } (p50, p99)")
    bad = {k: v for k, v in checked["violations"].items() if v}
    log(f"check: {'ok' if checked['ok'] else 'VIOLATIONS ' + json.dumps(bad)} {checked['counts']}")


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--size", default="100k", help="the annotate.py template to copy (10k or 100k)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--annotators", type=int, default=64)
    parser.add_argument("--lease", type=int, default=30, help="the project's lease, seconds (>= 30)")
    parser.add_argument("--think", type=float, default=0.0, help="mean seconds between next and the answer")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--pg-url", default=os.environ.get("PREFSTACK_BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--prefstack", type=Path, default=Path(sys.executable).parent / "prefstack")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results .jsonl (appended)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_arguments(parser)
    parser.add_argument("--minutes", type=float, default=10.0)
    a = parser.parse_args()
    row = soak(a)
    append(a.out, row)
    print_summary(row)
    if not row["check"]["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
